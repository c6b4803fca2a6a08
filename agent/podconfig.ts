import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PodSpec } from '../shared/manifest.js';
import type { PodConfig } from '../shared/protocol.js';

/** A pod's configuration or volumes cannot be built: the pod waits with this reason (CreateContainerConfigError, FailedMount) and message. */
export class ConfigError extends Error {
  constructor(
    message: string,
    readonly reason = 'CreateContainerConfigError',
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** A Secret value (base64, as delivered) as UTF-8 text. */
export function secretText(b64: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
}

/**
 * The environment of one container, Kubernetes' way: `envFrom` sources in order (keys that are not
 * valid variable names are skipped), then `env` entries, which win. A reference to a missing
 * Secret, ConfigMap or key fails unless marked optional.
 */
/** A container's environment from its plain `env` entries (no Secret or ConfigMap references). */
export function plainEnv(c: PodSpec['containers'][number]): string[] {
  return (c.env ?? []).map((e) => `${e.name}=${e.value ?? ''}`);
}

export function containerEnv(c: PodSpec['containers'][number], cfg: PodConfig, namespace: string): string[] {
  const vars = new Map<string, string>();
  for (const src of c.envFrom ?? []) {
    const prefix = src.prefix ?? '';
    if (src.secretRef) {
      const s = cfg.secrets[src.secretRef.name];
      if (!s) {
        if (src.secretRef.optional) continue;
        throw new ConfigError(`secret "${namespace}/${src.secretRef.name}" not found`);
      }
      for (const [k, v] of Object.entries(s.data)) if (ENV_NAME.test(prefix + k)) vars.set(prefix + k, secretText(v));
    } else if (src.configMapRef) {
      const m = cfg.configMaps[src.configMapRef.name];
      if (!m) {
        if (src.configMapRef.optional) continue;
        throw new ConfigError(`configmap "${namespace}/${src.configMapRef.name}" not found`);
      }
      for (const [k, v] of Object.entries(m.data)) if (ENV_NAME.test(prefix + k)) vars.set(prefix + k, v);
    }
  }
  for (const e of c.env ?? []) {
    const from = e.valueFrom;
    if (!from) {
      vars.set(e.name, e.value ?? '');
      continue;
    }
    const ref = from.secretKeyRef ?? from.configMapKeyRef;
    if (!ref) continue;
    const kind = from.secretKeyRef ? 'secret' : 'configmap';
    const obj = from.secretKeyRef ? cfg.secrets[ref.name] : cfg.configMaps[ref.name];
    const raw = obj?.data[ref.key];
    if (raw === undefined) {
      if (ref.optional) continue;
      throw new ConfigError(obj ? `key "${ref.key}" not found in ${kind} "${namespace}/${ref.name}"` : `${kind} "${namespace}/${ref.name}" not found`);
    }
    vars.set(e.name, from.secretKeyRef ? secretText(raw) : raw);
  }
  return [...vars].map(([k, v]) => `${k}=${v}`);
}

/**
 * Writes a pod's Secret and ConfigMap volumes as files under `base/<podId>/<volume>`, laid out as
 * Kubernetes does so an update can be swapped in atomically: the files live in a timestamped
 * directory, `..data` is a symlink to it (replaced by a rename), and each top-level name is a
 * symlink into `..data`. Mode 0400 unless the volume's `defaultMode` (or an item's `mode`) says
 * otherwise. Returns the bind mounts, per container, read-only.
 */
/** Writes a pod's Secret and ConfigMap volumes; returns each one's directory by volume name. */
export function writeVolumes(spec: PodSpec, cfg: PodConfig, namespace: string, base: string, podId: string): Record<string, string> {
  const dirs = new Map<string, string>();
  for (const v of spec.volumes ?? []) {
    const src = v.secret
      ? { kind: 'secret', name: v.secret.secretName, obj: cfg.secrets[v.secret.secretName], items: v.secret.items, mode: v.secret.defaultMode, optional: v.secret.optional, secret: true }
      : v.configMap
        ? { kind: 'configmap', name: v.configMap.name, obj: cfg.configMaps[v.configMap.name], items: v.configMap.items, mode: v.configMap.defaultMode, optional: v.configMap.optional, secret: false }
        : null;
    if (!src) continue;
    if (!src.obj && !src.optional) throw new ConfigError(`${src.kind} "${namespace}/${src.name}" not found (volume "${v.name}")`);
    const files: { path: string; bytes: Uint8Array; mode: number }[] = [];
    const data = src.obj?.data ?? {};
    const toBytes = (x: string) => (src.secret ? Uint8Array.from(atob(x), (c) => c.charCodeAt(0)) : new TextEncoder().encode(x));
    if (src.items) {
      for (const it of src.items) {
        const raw = data[it.key];
        if (raw === undefined) {
          if (src.optional) continue;
          throw new ConfigError(`key "${it.key}" not found in ${src.kind} "${namespace}/${src.name}" (volume "${v.name}")`);
        }
        files.push({ path: it.path, bytes: toBytes(raw), mode: it.mode ?? src.mode ?? 0o400 });
      }
    } else for (const [k, raw] of Object.entries(data)) files.push({ path: k, bytes: toBytes(raw), mode: src.mode ?? 0o400 });
    const dir = join(base, podId, v.name);
    swapIn(dir, files);
    dirs.set(v.name, dir);
  }
  return Object.fromEntries(dirs);
}

function swapIn(dir: string, files: { path: string; bytes: Uint8Array; mode: number }[]): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stamp = `..${Date.now()}_${Math.random().toString(36).slice(2, 8)}`;
  const next = join(dir, stamp);
  mkdirSync(next, { mode: 0o755 });
  for (const f of files) {
    const target = join(next, f.path);
    mkdirSync(join(target, '..'), { recursive: true, mode: 0o755 });
    writeFileSync(target, f.bytes, { mode: f.mode });
  }
  // Atomic: a reader sees the old set or the new one, never a mix.
  symlinkSync(stamp, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  const top = new Set(files.map((f) => f.path.split('/')[0] as string));
  for (const name of top) if (!existsSync(join(dir, name))) symlinkSync(join('..data', name), join(dir, name));
  for (const e of readdirSync(dir)) {
    if (e.startsWith('..') && e !== stamp && e !== '..data') rmSync(join(dir, e), { recursive: true, force: true });
    else if (!e.startsWith('..') && !top.has(e)) rmSync(join(dir, e), { force: true });
  }
}

/** Removes what was written for a pod. */
export function removeVolumes(base: string, podId: string): void {
  rmSync(join(base, podId), { recursive: true, force: true });
}
