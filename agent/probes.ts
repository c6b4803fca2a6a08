import { connect } from 'node:net';
import type Docker from 'dockerode';
import { type ContainerSpec, HTTP_HEADER_NAME, HTTP_HEADER_VALUE, type PodSpec, type Probe } from '../shared/manifest.js';
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
    return httpProbe(host, hp.hostPort, requestPath(p.httpGet.path), p.httpGet.httpHeaders ?? [], timeoutMs);
  }
  return tcpProbe(host, hp.hostPort, timeoutMs);
}

function resolvePort(t: ProbeTarget, port: number | string): ContainerStatusReport['hostPorts'][number] | undefined {
  let containerPort = typeof port === 'number' ? port : undefined;
  if (typeof port === 'string') for (const c of t.spec.containers) for (const p of c.ports ?? []) if (p.name === port) containerPort = p.containerPort;
  return t.hostPorts.find((h) => h.containerPort === containerPort && h.protocol === 'TCP');
}

/**
 * A probe path as a request target, as a URL parser makes it: a leading slash, the fragment dropped,
 * and white space, control characters, non-ASCII and `"<>\`{}` percent-encoded (so nothing in it
 * can end the request line).
 */
function requestPath(path: string): string {
  const noFragment = path.split('#')[0] ?? '';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it encodes
  const encoded = noFragment.replace(/[\x00-\x20\x7f"<>`{}]|[^\x00-\x7f]/gu, (ch) => {
    try {
      return encodeURIComponent(ch);
    } catch {
      return '%EF%BF%BD'; // a lone surrogate: U+FFFD, as a URL parser writes it
    }
  });
  return encoded.startsWith('/') ? encoded : `/${encoded}`;
}

/** The most of a response read while looking for its status line (then the probe fails). */
const MAX_RESPONSE_HEAD = 16 * 1024;

/**
 * An httpGet probe: one HTTP/1.1 GET on a new connection (`Connection: close`), judged by the
 * status line alone, like Kubernetes (200-399 pass, redirects are not followed). Written on a plain
 * socket rather than fetch: a probe every few seconds per container is the agent's most frequent
 * work, and on a mostly idle agent fetch cost ~3 ms of CPU a probe against ~0.8 ms for this
 * (bench/FINDINGS.md). Interim 1xx responses are skipped; the connection closes once the final
 * status line has arrived, without reading the body.
 */
function httpProbe(host: string, port: number, path: string, headers: { name: string; value: string }[], timeoutMs: number): Promise<ProbeResult> {
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const url = `http://${authority}${path}`;
  // Apply refuses these (not the desired state: a workload stored before that check); checked again
  // here so that nothing can split the request.
  const bad = headers.find((h) => !HTTP_HEADER_NAME.test(h.name) || !HTTP_HEADER_VALUE.test(h.value));
  if (bad) return Promise.resolve({ ok: false, message: `Get "${url}": invalid header ${JSON.stringify(bad.name)}` });
  const given = new Set(headers.map((h) => h.name.toLowerCase()));
  let head = `GET ${path} HTTP/1.1\r\n`;
  if (!given.has('host')) head += `Host: ${authority}\r\n`;
  if (!given.has('user-agent')) head += 'User-Agent: flotilla-probe/1\r\n';
  if (!given.has('accept')) head += 'Accept: */*\r\n';
  for (const h of headers) if (h.name.toLowerCase() !== 'connection') head += `${h.name}: ${h.value}\r\n`;
  head += 'Connection: close\r\n\r\n';
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let received = '';
    let settled = false;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, message: `Get "${url}": timeout` }), timeoutMs);
    sock.setEncoding('latin1');
    sock.once('connect', () => sock.write(head));
    sock.on('data', (chunk: string) => {
      received += chunk;
      const status = finalStatus(received);
      if (typeof status === 'number') {
        done(status >= 200 && status < 400 ? { ok: true, message: `HTTP ${status}` } : { ok: false, message: `HTTP probe failed with statuscode: ${status}` });
      } else if (status === 'malformed' || received.length > MAX_RESPONSE_HEAD) {
        done({ ok: false, message: `Get "${url}": malformed HTTP response ${JSON.stringify(received.slice(0, 40))}` });
      }
    });
    sock.once('end', () => done({ ok: false, message: `Get "${url}": connection closed before a response` }));
    sock.once('error', (e) => done({ ok: false, message: `Get "${url}": ${e.message}` }));
  });
}

/**
 * The status code of the final response at the start of `text` (1xx interim responses skipped),
 * 'malformed' when its first line is not a status line, undefined until a whole line has arrived.
 */
function finalStatus(text: string): number | 'malformed' | undefined {
  let at = 0;
  for (;;) {
    const eol = text.indexOf('\n', at);
    if (eol < 0) return undefined;
    const m = /^HTTP\/\d\.\d (\d{3})(?:[ \r]|$)/.exec(text.slice(at, eol));
    if (!m) return 'malformed';
    const code = Number(m[1]);
    if (code >= 200 || code < 100) return code;
    const end = text.indexOf('\r\n\r\n', eol - 1);
    if (end < 0) return undefined;
    at = end + 4;
  }
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
