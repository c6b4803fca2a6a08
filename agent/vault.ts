import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { PodConfig } from '../shared/protocol.js';
import { newMasterKey, parseMasterKey, type Sealed, SecretBox } from '../shared/secretbox.js';
import { writePrivate } from './identity.js';

/**
 * What the agent keeps of its pods' Secrets and ConfigMaps for offline autonomy: a pod that must be
 * (re)created while the control plane is unreachable (an agent restart, a reboot) gets its
 * configuration from here. Sealed with AES-256-GCM under a device key generated on this device
 * (`device.key`, 0600) that is never sent anywhere; each file is bound to its node and pod (the
 * additional data), so a file copied to another pod or device does not open. Removed with the pod.
 */
export class ConfigVault {
  private constructor(
    private readonly dir: string,
    private readonly nodeId: string,
    private readonly box: SecretBox,
  ) {}

  static async open(dataDir: string, nodeId: string): Promise<ConfigVault> {
    const keyPath = join(dataDir, 'device.key');
    if (!existsSync(keyPath)) writePrivate(keyPath, `${newMasterKey()}\n`);
    let raw: Uint8Array;
    try {
      raw = parseMasterKey(readFileSync(keyPath, 'utf8'));
    } catch {
      throw new Error(`${keyPath} is not a device key (base64 of 32 bytes): remove it to start over (sealed pod configs are then dropped)`);
    }
    const box = await SecretBox.fromKey(raw);
    const dir = join(dataDir, 'podconfig');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new ConfigVault(dir, nodeId, box);
  }

  private path(podId: string): string {
    return join(this.dir, `${podId.replace(/[^A-Za-z0-9_-]/g, '_')}.sealed`);
  }

  private aad(podId: string): string {
    return `flotilla/podconfig/${this.nodeId}/${podId}`;
  }

  async save(podId: string, cfg: PodConfig): Promise<void> {
    const sealed = await this.box.seal(new TextEncoder().encode(JSON.stringify(cfg)), this.aad(podId));
    writePrivate(this.path(podId), JSON.stringify(sealed));
  }

  /** The sealed copy of a pod's configuration, or undefined if there is none (or it does not open: a different device key). */
  async load(podId: string): Promise<PodConfig | undefined> {
    const p = this.path(podId);
    if (!existsSync(p)) return undefined;
    try {
      const plain = await this.box.open(JSON.parse(readFileSync(p, 'utf8')) as Sealed, this.aad(podId));
      return JSON.parse(new TextDecoder().decode(plain)) as PodConfig;
    } catch {
      return undefined;
    }
  }

  remove(podId: string): void {
    rmSync(this.path(podId), { force: true });
  }

  /** Removes the copies of pods that are not in `keep` (pods gone while the agent was down). */
  prune(keep: ReadonlySet<string>): void {
    const names = new Set([...keep].map((id) => this.path(id)));
    for (const f of readdirSync(this.dir)) if (!names.has(join(this.dir, f))) rmSync(join(this.dir, f), { force: true });
  }
}
