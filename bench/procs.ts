import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Client, closedLoop, type StepResult } from './load.js';
import { freePortSync } from './ports.js';

/** Whether `taskset` can pin processes to cores here. */
export function canPin(): boolean {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return os.cpus().length >= 2;
  } catch {
    return false;
  }
}

/** Starts `node --import tsx bench/serve.mjs ...args`, pinned to `core` when possible; resolves when it prints `ready`. */
export async function startServe(args: string[], core: number | null): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const cmd = core === null ? process.execPath : 'taskset';
  // BENCH_CP_NODE_ARGS: flags for the control plane's `node` (e.g. `--max-semi-space-size=64`), not the baseline's.
  const flags = args[0] === 'cp' ? (process.env.BENCH_CP_NODE_ARGS ?? '').split(/\s+/).filter(Boolean) : [];
  const argv = core === null ? [...flags, 'bench/serve.mjs', ...args] : ['-c', String(core), process.execPath, ...flags, 'bench/serve.mjs', ...args];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FLOTILLA_LOG_LEVEL: 'warn' } });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`server ${args[0]} did not start`)), 60_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`server ${args[0]} exited ${code}`)));
  });
  return { child, stop: () => stopChild(child) };
}

/**
 * The baseline of the load benchmarks: a hello-world server on the same Hono + Node stack (pinned
 * to `core` when given), `n` closed-loop samples of `seconds` each, 64 requests in flight.
 */
export async function helloSamples(core: number | null, n: number, seconds: number): Promise<StepResult[]> {
  const port = freePortSync();
  const hello = await startServe(['hello', String(port)], core);
  const c = new Client(port);
  try {
    await closedLoop(c, () => ({ method: 'GET', path: '/' }), 32, 1);
    const out: StepResult[] = [];
    for (let i = 0; i < n; i++) out.push(await closedLoop(c, () => ({ method: 'GET', path: '/' }), 64, seconds));
    return out;
  } finally {
    c.close();
    await hello.stop();
  }
}

/** Facts about the machine, printed with every result. */
export function machineFacts(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. */
export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

/** Polls `f` until it returns something truthy (errors count as "not yet"); throws after `timeoutMs`. */
export async function until<T>(what: string, f: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A compiled CLI process (`dist/cli/main.js ...args`) with its output collected. */
export interface CliProc {
  child: ChildProcess;
  out(): string;
  stop(): Promise<void>;
}

/** Starts the compiled CLI (the control plane and agents as they ship), or `command` when given. */
export function startCliProc(args: string[], env: Record<string, string>, command?: string[]): CliProc {
  const [cmd, ...argv] = command ?? [process.execPath, 'dist/cli/main.js', ...args];
  const child = spawn(cmd as string, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => (buf += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (buf += d.toString()));
  return { child, out: () => buf, stop: () => stopChild(child) };
}

/** A Node control plane (compiled CLI) in `dir`, an admin API client, and a way to add agents. */
export interface BenchControlPlane {
  url: string;
  server: CliProc;
  api(method: string, path: string, body?: unknown): Promise<any>;
  /** Starts an agent (its own enrollment token, data dir under `dir`, `agentEnv` over the control plane's); resolves once it runs, with its node id. */
  startAgent(name: string, agentEnv?: Record<string, string>): Promise<{ name: string; proc: CliProc; id: string }>;
}

export async function startBenchControlPlane(dir: string, env: Record<string, string>): Promise<BenchControlPlane> {
  const server = startCliProc(['server', '--no-agent', '--port', '0', '--data-dir', join(dir, 'cp')], env);
  const m = await until('control plane', () => server.out().match(/control plane on (http:\/\/\S+); admin token in (\S+)/), 60_000).catch(async (e) => {
    await server.stop();
    throw e;
  });
  const url = m?.[1] as string;
  const token = readFileSync(m?.[2] as string, 'utf8').trim();
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(new URL(path, url), { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
    return r.json() as Promise<any>;
  };
  return {
    url,
    server,
    api,
    async startAgent(name, agentEnv = {}) {
      const enroll = ((await api('POST', '/v1/enrollment-tokens', { uses: 1, ttl: '1h' })) as { token: string }).token;
      const proc = startCliProc(['agent', '--server', url, '--token', enroll, '--name', name, '--data-dir', join(dir, name)], { ...env, ...agentEnv });
      await until(`agent ${name}`, () => proc.out().includes(`agent "${name}" running`), 60_000, 100);
      const nodes = (await api('GET', '/v1/nodes')).items as Array<{ metadata: { name: string; uid: string } }>;
      return { name, proc, id: nodes.find((n) => n.metadata.name === name)?.metadata.uid as string };
    },
  };
}

/** Removes the Docker networks agents made (label dev.flotilla.managed) that no container uses. */
export async function removeUnusedNetworks(): Promise<void> {
  const { default: Docker } = await import('dockerode');
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  const nets = await docker.listNetworks({ filters: { label: ['dev.flotilla.managed=true'] } }).catch(() => []);
  // The engine refuses to remove a network a container uses: those are kept.
  for (const n of nets)
    await docker
      .getNetwork(n.Id)
      .remove()
      .catch(() => undefined);
}

/** RSS (bytes; NaN when gone) and CPU time (user + system, ms) of a process, from /proc. */
export function procSample(pid: number): { rss: number; cpuMs: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) * 1024;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rss, cpuMs: (Number(fields[11]) + Number(fields[12])) * 10 }; // clock ticks of 1/100 s (USER_HZ)
}
