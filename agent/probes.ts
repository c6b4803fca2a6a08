import { connect } from 'node:net';
import type Docker from 'dockerode';
import type { ContainerSpec, PodSpec, Probe } from '../shared/manifest.js';
import type { ContainerStatusReport } from '../shared/protocol.js';

// Health probes with Kubernetes semantics, run by the agent: httpGet and tcpSocket against the
// container's published port on the host (127.0.0.1), exec inside the container. A startup probe
// holds the other two until it passes; liveness failures kill the container (the reconcile loop
// then restarts it under the pod's restartPolicy and back-off); readiness sets the Ready condition.

/** What a probe runs against: one running container of a pod. */
export interface ProbeTarget {
  containerId: string;
  podId: string;
  podName: string;
  container: ContainerSpec;
  spec: PodSpec;
  /** Published ports of the pod (on its first container). */
  hostPorts: ContainerStatusReport['hostPorts'];
}

/** One probe attempt's outcome. */
export interface ProbeResult {
  ok: boolean;
  message: string;
}

type Kind = 'startup' | 'liveness' | 'readiness';

interface State {
  target: ProbeTarget;
  started: boolean;
  ready: boolean;
  timers: NodeJS.Timeout[];
  counts: Record<Kind, { ok: number; fail: number }>;
  stopped: boolean;
}

/** What the agent hears from the prober. */
export interface ProbeEvents {
  /** Liveness (or startup) failed past its threshold: kill the container. */
  kill(t: ProbeTarget, reason: string): void;
  /** Readiness or started changed: report statuses. */
  changed(): void;
  /** A probe failed (Kubernetes' "Unhealthy" event). */
  unhealthy(t: ProbeTarget, kind: Kind, message: string): void;
}

/** Runs one probe once, with its timeout. */
export async function runProbe(docker: Docker, t: ProbeTarget, p: Probe): Promise<ProbeResult> {
  const timeoutMs = p.timeoutSeconds * 1000;
  if (p.exec) return execProbe(docker, t.containerId, p.exec.command, timeoutMs);
  const port = p.httpGet?.port ?? p.tcpSocket?.port;
  const hp = resolvePort(t, port as number | string);
  if (!hp) return { ok: false, message: `port ${String(port)} is not published` };
  const host = hp.hostIP === '0.0.0.0' || hp.hostIP === '' ? '127.0.0.1' : hp.hostIP === '::' ? '::1' : hp.hostIP;
  if (p.httpGet) {
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${hp.hostPort}${p.httpGet.path.startsWith('/') ? '' : '/'}${p.httpGet.path}`;
    try {
      const res = await fetch(url, {
        headers: Object.fromEntries((p.httpGet.httpHeaders ?? []).map((h) => [h.name, h.value])),
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel();
      return res.status >= 200 && res.status < 400 ? { ok: true, message: `HTTP ${res.status}` } : { ok: false, message: `HTTP probe failed with statuscode: ${res.status}` };
    } catch (e) {
      return { ok: false, message: `Get "${url}": ${(e as Error).name === 'TimeoutError' ? 'timeout' : (e as Error).message}` };
    }
  }
  return tcpProbe(host, hp.hostPort, timeoutMs);
}

function resolvePort(t: ProbeTarget, port: number | string): ContainerStatusReport['hostPorts'][number] | undefined {
  let containerPort = typeof port === 'number' ? port : undefined;
  if (typeof port === 'string') for (const c of t.spec.containers) for (const p of c.ports ?? []) if (p.name === port) containerPort = p.containerPort;
  return t.hostPorts.find((h) => h.containerPort === containerPort && h.protocol === 'TCP');
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (r: ProbeResult) => {
      sock.destroy();
      resolve(r);
    };
    sock.setTimeout(timeoutMs, () => done({ ok: false, message: `dial tcp ${host}:${port}: timeout` }));
    sock.once('connect', () => done({ ok: true, message: 'connected' }));
    sock.once('error', (e) => done({ ok: false, message: `dial tcp ${host}:${port}: ${e.message}` }));
  });
}

async function execProbe(docker: Docker, containerId: string, cmd: string[], timeoutMs: number): Promise<ProbeResult> {
  const run = async (): Promise<ProbeResult> => {
    const exec = await docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    let out = '';
    await new Promise<void>((resolve) => {
      stream.on('data', (b: Buffer) => {
        // Docker's multiplexed stream has binary frame headers: keep printable text only.
        if (out.length < 1024) out += Array.from(b.toString('utf8'), (ch) => (ch >= ' ' || ch === '\n' ? ch : '')).join('');
      });
      stream.on('end', () => resolve());
      stream.on('close', () => resolve());
      stream.on('error', () => resolve());
    });
    const info = await exec.inspect();
    return info.ExitCode === 0 ? { ok: true, message: 'exit 0' } : { ok: false, message: `command ${JSON.stringify(cmd)} exited with ${info.ExitCode}: ${out.trim().slice(0, 200)}` };
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ProbeResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, message: `command ${JSON.stringify(cmd)} timed out after ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    return await Promise.race([run().catch((e: Error) => ({ ok: false, message: `exec failed: ${e.message}` })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Keeps one prober per running container with probes. `sync` is called after each reconcile pass
 * with the containers running now; probers of containers that are gone are stopped.
 */
export class ProbeManager {
  private readonly states = new Map<string, State>();

  constructor(
    private readonly docker: Docker,
    private readonly events: ProbeEvents,
    /** Scales probe periods and delays (tests use 1; values below 1 speed probes up). */
    private readonly timeScale = 1,
  ) {}

  /** Whether the container passed its startup probe (true without one). */
  started(containerId: string): boolean {
    return this.states.get(containerId)?.started ?? true;
  }

  /** Whether the container is ready by its readiness probe (true without one, once started). */
  ready(containerId: string): boolean {
    const s = this.states.get(containerId);
    if (!s) return true;
    return s.started && s.ready;
  }

  /** Whether a container has any probe (so its readiness depends on them). */
  static hasProbes(c: ContainerSpec): boolean {
    return Boolean(c.livenessProbe || c.readinessProbe || c.startupProbe);
  }

  /** Starts probers for new running containers, stops those of containers no longer running. */
  sync(targets: readonly ProbeTarget[]): void {
    const live = new Set<string>();
    for (const t of targets) {
      if (!ProbeManager.hasProbes(t.container)) continue;
      live.add(t.containerId);
      const existing = this.states.get(t.containerId);
      if (existing) {
        existing.target = t; // ports may have been learnt since
        continue;
      }
      const s: State = {
        target: t,
        started: !t.container.startupProbe,
        ready: !t.container.readinessProbe,
        timers: [],
        counts: { startup: { ok: 0, fail: 0 }, liveness: { ok: 0, fail: 0 }, readiness: { ok: 0, fail: 0 } },
        stopped: false,
      };
      this.states.set(t.containerId, s);
      if (t.container.startupProbe) this.schedule(s, 'startup', t.container.startupProbe, t.container.startupProbe.initialDelaySeconds);
      else this.startMain(s);
    }
    for (const [id, s] of this.states) {
      if (live.has(id)) continue;
      this.stopState(s);
      this.states.delete(id);
    }
  }

  /** Stops every prober. */
  stopAll(): void {
    for (const s of this.states.values()) this.stopState(s);
    this.states.clear();
  }

  private stopState(s: State): void {
    s.stopped = true;
    for (const t of s.timers) clearTimeout(t);
    s.timers = [];
  }

  private startMain(s: State): void {
    const c = s.target.container;
    if (c.livenessProbe) this.schedule(s, 'liveness', c.livenessProbe, c.livenessProbe.initialDelaySeconds);
    if (c.readinessProbe) this.schedule(s, 'readiness', c.readinessProbe, c.readinessProbe.initialDelaySeconds);
  }

  private schedule(s: State, kind: Kind, p: Probe, delaySeconds: number): void {
    if (s.stopped) return;
    const timer = setTimeout(
      () => {
        s.timers = s.timers.filter((t) => t !== timer);
        void this.attempt(s, kind, p);
      },
      delaySeconds * 1000 * this.timeScale,
    );
    timer.unref?.();
    s.timers.push(timer);
  }

  private async attempt(s: State, kind: Kind, p: Probe): Promise<void> {
    if (s.stopped) return;
    const r = await runProbe(this.docker, s.target, p);
    if (s.stopped) return;
    const n = s.counts[kind];
    if (r.ok) {
      n.ok++;
      n.fail = 0;
    } else {
      n.fail++;
      n.ok = 0;
      this.events.unhealthy(s.target, kind, r.message);
    }
    switch (kind) {
      case 'startup':
        if (r.ok) {
          s.started = true;
          this.events.changed();
          this.startMain(s);
          return; // the startup probe is done
        }
        if (n.fail >= p.failureThreshold) {
          this.stopState(s);
          this.events.kill(s.target, `startup probe failed ${n.fail} times: ${r.message}`);
          return;
        }
        break;
      case 'liveness':
        if (!r.ok && n.fail >= p.failureThreshold) {
          this.stopState(s);
          this.events.kill(s.target, `liveness probe failed ${n.fail} times: ${r.message}`);
          return;
        }
        break;
      case 'readiness': {
        const before = s.ready;
        if (r.ok && n.ok >= p.successThreshold) s.ready = true;
        if (!r.ok && n.fail >= p.failureThreshold) s.ready = false;
        if (before !== s.ready) this.events.changed();
        break;
      }
    }
    this.schedule(s, kind, p, p.periodSeconds);
  }
}
