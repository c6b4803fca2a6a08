import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import './lean-docker.js'; // before dockerode: defers its SSH and BuildKit modules
import Docker from 'dockerode';
import type { ContainerSpec } from '../shared/manifest.js';
import { LABELS } from '../shared/protocol.js';
import { parseCpu, parseMemory } from '../shared/quantity.js';
import { plainEnv } from './podconfig.js';
import type { ActualContainer, Step, StepArgs } from './reconcile.js';
import type { VolumeToEnsure } from './volumes.js';

/** Options of the Docker runtime. */
export interface RuntimeOptions {
  nodeId: string;
  /** Host IP ports are published on (default 127.0.0.1). */
  hostIp: string;
  /** Seconds a container gets between SIGTERM and SIGKILL. */
  stopTimeoutSec: number;
}

/** The Docker network of a namespace's pods on one node. */
export function networkName(nodeId: string, namespace: string): string {
  return `flotilla-${nodeId.slice(0, 8)}-${namespace}`;
}

/** Connects to the engine named by a URL (unix:///path, tcp://host:port) or the default socket. */
export function connectDocker(url?: string): Docker {
  if (!url) return new Docker(process.env.DOCKER_HOST ? undefined : { socketPath: '/var/run/docker.sock' });
  if (url.startsWith('unix://')) return new Docker({ socketPath: url.slice('unix://'.length) });
  const u = new URL(url.replace(/^tcp:/, 'http:'));
  return new Docker({ host: u.hostname, port: Number(u.port || 2375), protocol: 'http' });
}

type ContainerDetails = Pick<ActualContainer, 'exitCode' | 'finishedAt' | 'startedAt' | 'startedAtMs' | 'oomKilled' | 'hostPorts'>;

/** A container event from the engine (`die`, `destroy`). */
export interface ContainerEvent {
  action: string;
  id: string;
}

/** Executes steps against one Docker engine and reads back the containers labelled with our node id. */
export class DockerRuntime {
  private readonly details = new Map<string, ContainerDetails>();

  constructor(
    readonly docker: Docker,
    private readonly opts: RuntimeOptions,
  ) {}

  /**
   * Follows the engine's `die` and `destroy` events of this node's containers, calling `onEvent` with
   * each (and with nothing once the stream opens), until the stream ends (resolves) or fails
   * (rejects), or `signal` aborts (resolves).
   */
  async followContainerEvents(signal: AbortSignal, onEvent: (e?: ContainerEvent) => void): Promise<void> {
    if (signal.aborted) return;
    const stream = (await this.docker.getEvents({
      filters: { type: ['container'], event: ['die', 'destroy'], label: [`${LABELS.node}=${this.opts.nodeId}`] },
      abortSignal: signal,
    } as Docker.GetEventsOptions)) as NodeJS.ReadableStream & { destroy(): void };
    onEvent();
    let pending = '';
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        signal.removeEventListener('abort', stop);
        resolve();
      };
      const stop = () => {
        stream.destroy();
        done();
      };
      if (signal.aborted) return stop();
      signal.addEventListener('abort', stop, { once: true });
      stream.on('data', (chunk: Buffer) => {
        // One JSON object per line; a chunk may end inside one.
        const lines = (pending + chunk.toString('utf8')).split('\n');
        pending = (lines.pop() ?? '').slice(0, 65_536);
        for (const line of lines) {
          if (!line.trim()) continue;
          try {
            const e = JSON.parse(line) as { Action?: string; id?: string };
            onEvent({ action: String(e.Action ?? ''), id: String(e.id ?? '') });
          } catch {
            onEvent({ action: 'unknown', id: '' });
          }
        }
      });
      stream.once('end', done);
      stream.once('close', done);
      stream.once('error', (e: Error) => {
        signal.removeEventListener('abort', stop);
        reject(e);
      });
    });
  }

  /** Every container this node created, rebuilt from labels (never anyone else's). */
  async listActual(): Promise<ActualContainer[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${this.opts.nodeId}`] } });
    const out: ActualContainer[] = [];
    const seen = new Set<string>();
    for (const c of list) {
      const l = c.Labels;
      const state = c.State === 'running' ? 'running' : c.State === 'created' ? 'created' : c.State === 'exited' || c.State === 'dead' ? 'exited' : 'other';
      const a: ActualContainer = {
        id: c.Id,
        podId: l[LABELS.pod] ?? '',
        podName: l[LABELS.podName] ?? '',
        namespace: l[LABELS.namespace] ?? '',
        workload: l[LABELS.workload] ?? '',
        container: l[LABELS.container] ?? '',
        digest: l[LABELS.digest] ?? '',
        epoch: Number(l[LABELS.epoch] ?? 0),
        image: c.Image,
        state,
        restarts: Number(l[LABELS.restarts] ?? 0),
        backoff: Number(l[LABELS.backoff] ?? l[LABELS.restarts] ?? 0),
        ...(/^\d+$/.test(l[LABELS.grace] ?? '') ? { graceSec: Number(l[LABELS.grace]) } : {}),
        hostPorts: [],
        ...(l['dev.flotilla.netns-owner'] ? { netnsOwner: l['dev.flotilla.netns-owner'] } : {}),
      };
      if (state === 'running' || state === 'exited') {
        const key = `${c.Id}:${state}`;
        seen.add(key);
        const details = this.details.get(key) ?? (await this.inspect(c.Id, state));
        if (details) {
          this.details.set(key, details);
          Object.assign(a, details);
        }
      }
      out.push(a);
    }
    for (const key of this.details.keys()) if (!seen.has(key)) this.details.delete(key);
    return out;
  }

  /**
   * Exit code, start/finish time and published ports need an inspect. They cannot change while a
   * container stays in one state, so they are kept per (container, state) and a reconcile pass over
   * healthy containers costs one list call, not one inspect per container.
   */
  private async inspect(id: string, state: 'running' | 'exited'): Promise<ContainerDetails | null> {
    const info = await this.docker
      .getContainer(id)
      .inspect()
      .catch(() => null);
    if (!info) return null;
    const d: ContainerDetails = { hostPorts: [] };
    d.startedAt = info.State.StartedAt;
    d.startedAtMs = Date.parse(info.State.StartedAt) || 0;
    if (state === 'exited') {
      d.exitCode = info.State.ExitCode;
      d.finishedAt = Date.parse(info.State.FinishedAt) || 0;
      if (info.State.OOMKilled) d.oomKilled = true;
    }
    if (info.HostConfig?.NetworkMode === 'host')
      // The node's network: every exposed port is a port of the node itself.
      for (const key of Object.keys(info.Config?.ExposedPorts ?? {})) {
        const [port, proto] = key.split('/');
        d.hostPorts.push({ containerPort: Number(port), protocol: proto === 'udp' ? 'UDP' : 'TCP', hostIP: '127.0.0.1', hostPort: Number(port) });
      }
    for (const [key, binds] of Object.entries(info.NetworkSettings?.Ports ?? {})) {
      const [port, proto] = key.split('/');
      for (const b of binds ?? []) d.hostPorts.push({ containerPort: Number(port), protocol: proto === 'udp' ? 'UDP' : 'TCP', hostIP: b.HostIp, hostPort: Number(b.HostPort) });
    }
    return d;
  }

  /** Image references present in the engine (name:tag). */
  async images(): Promise<Set<string>> {
    const imgs = await this.docker.listImages();
    const s = new Set<string>();
    for (const i of imgs) for (const t of i.RepoTags ?? []) s.add(t);
    return s;
  }

  /** Creates a named volume unless it exists (a pod's emptyDir: shared by its containers, kept across their restarts). */
  private async ensureVolume(v: VolumeToEnsure): Promise<void> {
    try {
      await this.docker.getVolume(v.name).inspect();
      return;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 404) throw e;
    }
    await this.docker.createVolume({ Name: v.name, Driver: 'local', Labels: v.labels, ...(v.driverOpts ? { DriverOpts: v.driverOpts } : {}) });
  }

  private readonly networks = new Map<string, Promise<string>>();
  /** This node's namespace networks that no container uses, by name: their namespace, and when first found unused (ms). */
  private readonly unusedSince = new Map<string, { namespace: string; since: number }>();

  /**
   * The bridge network of a namespace on this node (`flotilla-<node>-<namespace>`), created on first
   * use; resolves to its gateway address, where this node's service proxy serves the namespace's
   * services to its pods.
   */
  ensureNetwork(namespace: string): Promise<string> {
    const name = networkName(this.opts.nodeId, namespace);
    this.unusedSince.delete(name);
    let p = this.networks.get(name);
    if (!p) {
      p = (async () => {
        const gateway = async () => {
          const info = (await this.docker.getNetwork(name).inspect()) as { IPAM?: { Config?: { Gateway?: string }[] } };
          const gw = info.IPAM?.Config?.find((c) => c.Gateway && !c.Gateway.includes(':'))?.Gateway;
          if (!gw) throw new Error(`network ${name} has no IPv4 gateway`);
          return gw;
        };
        try {
          return await gateway();
        } catch (e) {
          if ((e as { statusCode?: number }).statusCode !== 404) throw e;
        }
        const create = () =>
          this.docker
            .createNetwork({ Name: name, Driver: 'bridge', CheckDuplicate: true, Labels: { [LABELS.managed]: 'true', [LABELS.node]: this.opts.nodeId, [LABELS.namespace]: namespace } })
            .catch((e: { statusCode?: number }) => {
              if (e.statusCode !== 409) throw e;
            });
        try {
          await create();
        } catch (e) {
          // The engine's address pools are used up: give back the networks kept unused, then try again.
          if (!/address pool|non-overlapping/i.test((e as Error).message) || !(await this.removeUnusedNetworks(0))) throw e;
          await create();
        }
        return gateway();
      })();
      p.catch(() => this.networks.delete(name));
      this.networks.set(name, p);
    }
    return p;
  }

  /** Whether this agent has already made (or found) the namespace's network. */
  hasNetwork(namespace: string): boolean {
    return this.networks.has(networkName(this.opts.nodeId, namespace));
  }

  /** Gateways of this node's namespace networks (namespace -> address), including ones made before an agent restart. */
  async gateways(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const list = await this.docker.listNetworks({ filters: { label: [`${LABELS.node}=${this.opts.nodeId}`] } });
    for (const n of list) {
      const ns = n.Labels?.[LABELS.namespace];
      const gw = (n.IPAM?.Config as { Gateway?: string }[] | undefined)?.find((c) => c.Gateway && !c.Gateway.includes(':'))?.Gateway;
      if (ns !== undefined && gw) out.set(ns, gw);
    }
    return out;
  }

  /** Removes a container that cannot start any more (its network is gone), and forgets that network. */
  async removeStale(containerId: string): Promise<void> {
    const info = await this.docker.getContainer(containerId).inspect();
    const ns = info.Config.Labels?.[LABELS.namespace];
    if (ns !== undefined) this.networks.delete(networkName(this.opts.nodeId, ns));
    await this.docker.getContainer(containerId).remove({ force: true });
  }

  /**
   * Keeps track of this node's namespace networks that no container uses (all but `keep`), and
   * removes those unused for `idleMs` or longer. A namespace whose pods come back within that time (a
   * Recreate rollout, a pod replaced, a deployment applied again) finds its network, which saves the
   * engine's network create on the way to running. A container that exists but does not run
   * (created, not yet started) is not in the network's list: any container of the namespace on this
   * node keeps its network.
   */
  async pruneNetworks(keep: ReadonlySet<string>, idleMs = 0, now = Date.now()): Promise<void> {
    const list = await this.docker.listNetworks({ filters: { label: [`${LABELS.node}=${this.opts.nodeId}`] } });
    const names = new Set(list.map((n) => n.Name));
    for (const name of this.unusedSince.keys()) if (!names.has(name)) this.unusedSince.delete(name);
    for (const n of list) {
      const ns = n.Labels?.[LABELS.namespace];
      if (ns === undefined) continue;
      if (keep.has(ns) || (await this.networkInUse(n.Id, ns))) {
        this.unusedSince.delete(n.Name);
        continue;
      }
      const since = this.unusedSince.get(n.Name)?.since ?? now;
      this.unusedSince.set(n.Name, { namespace: ns, since });
      if (now - since >= idleMs) await this.removeNetwork(n.Name);
    }
  }

  /** When the first of the networks kept unused is due for removal (ms since the epoch), if any is kept. */
  unusedNetworksDueAt(idleMs: number): number | undefined {
    let first: number | undefined;
    for (const { since } of this.unusedSince.values()) first = Math.min(first ?? since, since);
    return first === undefined ? undefined : first + idleMs;
  }

  /** Removes the networks kept unused for at least `idleMs` (still unused); whether any went. */
  async removeUnusedNetworks(idleMs: number, now = Date.now()): Promise<boolean> {
    let removed = false;
    for (const [name, { namespace, since }] of [...this.unusedSince]) {
      if (now - since < idleMs) continue;
      if (await this.networkInUse(name, namespace)) {
        this.unusedSince.delete(name);
        continue;
      }
      removed = (await this.removeNetwork(name)) || removed;
    }
    return removed;
  }

  private async networkInUse(idOrName: string, namespace: string): Promise<boolean> {
    const users = await this.docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${this.opts.nodeId}`, `${LABELS.namespace}=${namespace}`] } });
    if (users.length > 0) return true;
    const info = (await this.docker
      .getNetwork(idOrName)
      .inspect()
      .catch(() => null)) as { Containers?: Record<string, unknown> } | null;
    return info !== null && Object.keys(info.Containers ?? {}).length > 0;
  }

  private async removeNetwork(name: string): Promise<boolean> {
    this.unusedSince.delete(name);
    this.networks.delete(name);
    return this.docker
      .getNetwork(name)
      .remove()
      .then(() => true)
      .catch(() => false);
  }

  /** Removes a claim's volume; false while a container still uses it. A volume already gone counts as removed. */
  async removeVolume(name: string): Promise<boolean> {
    try {
      await this.docker.getVolume(name).remove();
      return true;
    } catch (e) {
      const code = (e as { statusCode?: number }).statusCode;
      if (code === 404) return true;
      if (code === 409) return false;
      throw e;
    }
  }

  /** Removes the named volumes of a pod that is gone (its emptyDirs). */
  async removePodVolumes(podId: string): Promise<void> {
    const { Volumes } = await this.docker.listVolumes({ filters: { label: [`${LABELS.node}=${this.opts.nodeId}`, `${LABELS.pod}=${podId}`] } });
    for (const v of Volumes ?? []) await this.docker.getVolume(v.Name).remove();
  }

  /** Executes one step. */
  run(step: Step): Promise<void> {
    return (this.executors[step.action] as (s: Step) => Promise<void>)(step);
  }

  // A mapped type: adding a step kind without an executor does not compile.
  private readonly executors: { [A in keyof StepArgs]: (s: Extract<Step, { action: A }>) => Promise<void> } = {
    pull: async (s) => {
      // Credentials travel in the X-Registry-Auth header (dockerode strips them from the query).
      const stream = await this.docker.pull(s.image, s.auth ? { authconfig: s.auth } : {});
      await new Promise<void>((res, rej) =>
        this.docker.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) => {
          const e = err ?? (out.find((o) => o.error) ? new Error(out.find((o) => o.error)?.error) : null);
          if (e) rej(e);
          else res();
        }),
      );
    },
    create: async (s) => {
      const spec = s.pod.spec;
      const c = spec.containers[s.index] as ContainerSpec;
      const labels: Record<string, string> = {
        [LABELS.managed]: 'true',
        [LABELS.node]: this.opts.nodeId,
        [LABELS.pod]: s.pod.id,
        [LABELS.podName]: s.pod.name,
        [LABELS.namespace]: s.pod.namespace,
        [LABELS.workload]: s.pod.workload,
        [LABELS.container]: c.name,
        [LABELS.revision]: String(s.pod.revision),
        [LABELS.digest]: s.pod.specDigest,
        [LABELS.epoch]: String(s.pod.epoch),
        [LABELS.restarts]: String(s.restarts),
        [LABELS.backoff]: String(s.backoff),
        ...(spec.terminationGracePeriodSeconds !== undefined ? { [LABELS.grace]: String(spec.terminationGracePeriodSeconds) } : {}),
      };
      const m = s.mounts;
      const binds = [...(m?.binds ?? [])];
      for (const v of m?.ensure ?? []) await this.ensureVolume(v);
      for (const sp of m?.subPaths ?? []) {
        // A subPath of a named volume: bound from the volume's directory on this host (the agent runs beside the engine).
        const dir = join((await this.docker.getVolume(sp.volume).inspect()).Mountpoint, sp.subPath);
        mkdirSync(dir, { recursive: true });
        binds.push(`${dir}:${sp.target}${sp.readOnly ? ':ro' : ''}`);
      }
      // Service names resolve through a hosts file the agent keeps current (bound read-only).
      if (s.hostsFile) binds.push(`${s.hostsFile}:/etc/hosts:ro`);
      const hostConfig: Docker.ContainerCreateOptions['HostConfig'] = {
        RestartPolicy: { Name: 'no' },
        ...resourceLimits(c),
        ...(binds.length ? { Binds: binds } : {}),
        ...(m?.mounts.length ? { Mounts: m.mounts } : {}),
      };
      const exposed: Record<string, object> = {};
      if (s.index === 0 && spec.hostNetwork) {
        // The node's network namespace: nothing to publish, container ports are the node's.
        for (const ctr of spec.containers) for (const p of ctr.ports ?? []) exposed[`${p.containerPort}/${p.protocol.toLowerCase()}`] = {};
        hostConfig.NetworkMode = 'host';
      } else if (s.index === 0) {
        if (s.network) hostConfig.NetworkMode = s.network;
        // The pod's first container owns its network namespace, so every container port of the pod is published here.
        const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
        for (const ctr of spec.containers)
          for (const p of ctr.ports ?? []) {
            const key = `${p.containerPort}/${p.protocol.toLowerCase()}`;
            exposed[key] = {};
            bindings[key] = [{ HostIp: p.hostIP ?? this.opts.hostIp, HostPort: p.hostPort ? String(p.hostPort) : '' }];
          }
        hostConfig.PortBindings = bindings;
      } else {
        if (!s.netnsOwner) throw new Error('a non-first container needs the pod network owner');
        hostConfig.NetworkMode = `container:${s.netnsOwner}`;
        labels['dev.flotilla.netns-owner'] = s.netnsOwner;
      }
      const name = `fl_${s.pod.namespace}_${s.pod.name}_${c.name}_${s.restarts}_${Math.random().toString(36).slice(2, 6)}`;
      const created = await this.docker.createContainer({
        name,
        Image: c.image,
        ...(c.command ? { Entrypoint: c.command, Cmd: c.args ?? [] } : c.args ? { Cmd: c.args } : {}),
        ...(c.workingDir ? { WorkingDir: c.workingDir } : {}),
        Env: s.env ?? plainEnv(c),
        Labels: labels,
        ...(s.index === 0 ? { ExposedPorts: exposed, ...(spec.hostNetwork ? {} : { Hostname: s.pod.name.slice(0, 63) }) } : {}),
        HostConfig: hostConfig,
      });
      await created.start();
    },
    start: async (s) => {
      await this.docker.getContainer(s.containerId).start();
    },
    stop: async (s) => {
      await this.docker
        .getContainer(s.containerId)
        .stop({ t: s.timeoutSec ?? this.opts.stopTimeoutSec })
        .catch((e: { statusCode?: number }) => {
          if (e.statusCode !== 304 && e.statusCode !== 404) throw e; // already stopped / gone
        });
    },
    remove: async (s) => {
      await this.docker
        .getContainer(s.containerId)
        .remove({ force: true, v: true })
        .catch((e: { statusCode?: number }) => {
          if (e.statusCode !== 404) throw e;
        });
    },
  };
}

/**
 * Docker resource settings of a container: CPU and memory limits are enforced by the engine
 * (NanoCpus, Memory with no extra swap); requests become CPU shares and a memory reservation, so a
 * busy node divides CPU in proportion to what each container asked for.
 */
export function resourceLimits(c: ContainerSpec): Partial<NonNullable<Docker.ContainerCreateOptions['HostConfig']>> {
  const out: Partial<NonNullable<Docker.ContainerCreateOptions['HostConfig']>> = {};
  const lim = c.resources?.limits;
  const req = c.resources?.requests;
  const cpuLimit = lim?.cpu !== undefined ? parseCpu(lim.cpu) : null;
  const memLimit = lim?.memory !== undefined ? parseMemory(lim.memory) : null;
  const cpuReq = req?.cpu !== undefined ? parseCpu(req.cpu) : cpuLimit;
  const memReq = req?.memory !== undefined ? parseMemory(req.memory) : null;
  if (cpuLimit) out.NanoCpus = cpuLimit * 1_000_000;
  if (memLimit) {
    out.Memory = memLimit;
    out.MemorySwap = memLimit;
  }
  if (cpuReq) out.CpuShares = Math.max(2, Math.round((cpuReq * 1024) / 1000));
  if (memReq && (!memLimit || memReq <= memLimit)) out.MemoryReservation = memReq;
  return out;
}
