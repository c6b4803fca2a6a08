import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import type Docker from 'dockerode';
import { type DesiredPod, LABELS } from '../shared/protocol.js';
import { parseMemory } from '../shared/quantity.js';
import { ConfigError } from './podconfig.js';

// Pod volumes on the device. Secrets and ConfigMaps are files the agent writes (podconfig.ts);
// `emptyDir` is a Docker named volume per pod and volume (local driver on disk, or tmpfs for
// `medium: Memory`), labelled with the node and pod, created before the pod's first container and
// removed with the pod, so it survives container restarts and is shared by the pod's containers;
// `hostPath` is a bind mount, only under the prefixes the agent allows; a PersistentVolumeClaim is a
// Docker named volume per claim, kept across pods until the claim is deleted with reclaim Delete.

/** A named volume a container needs: created (with these labels and driver options) if missing. */
export interface VolumeToEnsure {
  name: string;
  labels: Record<string, string>;
  driverOpts?: Record<string, string>;
}

/** How one container's volumes are mounted. */
export interface MountPlan {
  binds: string[];
  mounts: Docker.MountConfig;
  ensure: VolumeToEnsure[];
  /** Named volumes mounted through a subPath: bound from the volume's directory on the host. */
  subPaths: { volume: string; subPath: string; target: string; readOnly: boolean }[];
}

/** The label naming the pod volume a Docker volume belongs to. */
export const VOLUME_LABEL = 'dev.flotilla.volume';

/** The label naming the claim a Docker volume holds the data of (no pod label: it is not the pod's). */
export const CLAIM_LABEL = 'dev.flotilla.claim';

/** The Docker volume name of a pod's emptyDir. */
export function emptyDirName(podId: string, volume: string): string {
  return `flotilla-${podId}-${volume}`.replace(/[^a-zA-Z0-9_.-]/g, '-');
}

/** Whether `path` is one of the allowed prefixes or below one (whole path segments). */
export function hostPathAllowed(path: string, allowed: readonly string[]): boolean {
  const p = posix.normalize(path);
  return allowed.some((a) => {
    const prefix = posix.normalize(a).replace(/\/+$/, '') || '/';
    return prefix === '/' || p === prefix || p.startsWith(`${prefix}/`);
  });
}

/** Checks (and for the *OrCreate types creates) a hostPath as its `type` asks, as the kubelet does. */
function checkHostPath(path: string, type: string, volume: string): void {
  const where = `hostPath "${path}" (volume "${volume}")`;
  const st = existsSync(path) ? statSync(path) : undefined;
  switch (type) {
    case 'DirectoryOrCreate':
      if (!st) mkdirSync(path, { recursive: true, mode: 0o755 });
      else if (!st.isDirectory()) throw new ConfigError(`${where} is not a directory`, 'FailedMount');
      break;
    case 'Directory':
      if (!st?.isDirectory()) throw new ConfigError(`${where} is not an existing directory`, 'FailedMount');
      break;
    case 'FileOrCreate':
      if (!st) writeFileSync(path, '', { mode: 0o644, flag: 'wx' });
      else if (!st.isFile()) throw new ConfigError(`${where} is not a file`, 'FailedMount');
      break;
    case 'File':
      if (!st?.isFile()) throw new ConfigError(`${where} is not an existing file`, 'FailedMount');
      break;
    case 'Socket':
      if (!st?.isSocket()) throw new ConfigError(`${where} is not an existing socket`, 'FailedMount');
      break;
  }
}

/**
 * The mounts of container `index` of a pod: Secret/ConfigMap directories (`configDirs`, written
 * already) bound read-only; emptyDirs as named volumes; hostPaths bound if allowed. Throws a
 * ConfigError (the pod waits with its reason) for a hostPath that is not allowed or not as its
 * type says.
 */
export function planMounts(pod: DesiredPod, index: number, nodeId: string, configDirs: Readonly<Record<string, string>>, allowedHostPaths: readonly string[]): MountPlan {
  const c = pod.spec.containers[index];
  const plan: MountPlan = { binds: [], mounts: [], ensure: [], subPaths: [] };
  if (!c) return plan;
  const volumes = new Map((pod.spec.volumes ?? []).map((v) => [v.name, v]));
  for (const m of c.volumeMounts ?? []) {
    const v = volumes.get(m.name);
    if (!v) continue; // refused at apply
    const ro = m.readOnly === true;
    if (v.secret || v.configMap) {
      const dir = configDirs[v.name];
      // A subPath of a projected volume is a fixed copy (as in Kubernetes: it does not follow updates).
      if (dir) plan.binds.push(`${m.subPath ? join(dir, '..data', m.subPath) : dir}:${m.mountPath}:ro`);
    } else if (v.emptyDir) {
      const name = emptyDirName(pod.id, v.name);
      const memory = v.emptyDir.medium === 'Memory';
      const size = v.emptyDir.sizeLimit !== undefined ? parseMemory(v.emptyDir.sizeLimit) : null;
      plan.ensure.push({
        name,
        labels: { [LABELS.managed]: 'true', [LABELS.node]: nodeId, [LABELS.pod]: pod.id, [LABELS.namespace]: pod.namespace, [VOLUME_LABEL]: v.name },
        // tmpfs without sizeLimit: the kernel's default (half the RAM), bounded by the container's memory limit as it is charged to it.
        ...(memory ? { driverOpts: { type: 'tmpfs', device: 'tmpfs', ...(size ? { o: `size=${size}` } : {}) } } : {}),
      });
      if (m.subPath) plan.subPaths.push({ volume: name, subPath: m.subPath, target: m.mountPath, readOnly: ro });
      else plan.mounts.push({ Type: 'volume', Source: name, Target: m.mountPath, ReadOnly: ro, VolumeOptions: { NoCopy: true } } as Docker.MountSettings);
    } else if (v.persistentVolumeClaim) {
      // A claim: the Docker volume named in the desired state (its data outlives every pod using it).
      const claim = v.persistentVolumeClaim.claimName;
      const name = pod.volumeClaims?.[claim];
      if (!name) throw new ConfigError(`persistentvolumeclaim "${claim}" (volume "${v.name}") is not bound to this node`, 'FailedMount');
      plan.ensure.push({ name, labels: { [LABELS.managed]: 'true', [LABELS.node]: nodeId, [LABELS.namespace]: pod.namespace, [CLAIM_LABEL]: claim } });
      const readOnly = ro || v.persistentVolumeClaim.readOnly === true;
      if (m.subPath) plan.subPaths.push({ volume: name, subPath: m.subPath, target: m.mountPath, readOnly });
      else plan.mounts.push({ Type: 'volume', Source: name, Target: m.mountPath, ReadOnly: readOnly, VolumeOptions: { NoCopy: true } } as Docker.MountSettings);
    } else if (v.hostPath) {
      const path = posix.normalize(v.hostPath.path);
      if (!hostPathAllowed(path, allowedHostPaths))
        throw new ConfigError(
          `hostPath "${path}" (volume "${v.name}") is not under a path this node allows${allowedHostPaths.length ? ` (${allowedHostPaths.join(', ')})` : ' (none: start the agent with --allow-host-path PREFIX)'}`,
          'FailedMount',
        );
      checkHostPath(path, v.hostPath.type ?? '', v.name);
      plan.binds.push(`${m.subPath ? join(path, m.subPath) : path}:${m.mountPath}${ro ? ':ro' : ''}`);
    }
  }
  return plan;
}
