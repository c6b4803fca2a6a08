import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enrollHollow, type Hollow, metric } from './hollow.js';
import { againWhileUnavailable, Client, type Req } from './load.js';
import { freePortSync } from './ports.js';
import { procSample, startCliProc, until } from './procs.js';

// The Worker control plane under `wrangler dev` with a local D1: simulated agents heartbeat at the
// cadence the server hands out (default 30 s lease TTL: every 5 s) and poll their desired state with
// its ETag when a heartbeat's answer says its version changed, or once per `pollIntervalMs`, as
// agents do against a Worker (no long-poll there). Measured: the
// CPU time workerd spends per agent request (from /proc, idle time of the same length subtracted)
// against the 10 ms CPU a request may use on Workers' free plan, and D1 statements per heartbeat
// (counted by the Worker itself, `flotilla_db_statements_total`). Then the floor, in the same run:
// the same requests to a Worker that only answers, and to one that also runs as many trivial D1
// statements, under the same `wrangler dev` (workerd's CPU that is not Flotilla's).

export interface WorkerOptions {
  agents: number;
  seconds: number;
}
export const QUICK: WorkerOptions = { agents: 10, seconds: 10 };
export const FULL: WorkerOptions = { agents: 100, seconds: 60 };

export interface WorkerResult {
  agents: number;
  seconds: number;
  heartbeats: number;
  polls: number;
  renewals: number;
  cpuMsPerRequest: number;
  /** workerd CPU per heartbeat cycle (a heartbeat, and a poll when one was due). */
  cpuMsPerCycle?: number;
  idleCpuMs: number;
  statementsPerHeartbeat: number;
  batchesPerHeartbeat: number;
  writesPerHeartbeat: number;
  /** cpuMsPerRequest / 10 ms (the free plan's CPU limit per request). */
  ratio: number;
  p50: number;
  p99: number;
  /** Agent requests that failed in the window (logged with their status). */
  errors: number;
  /**
   * The same requests at the same cadence to a Worker that only answers (`hello`), and to one that
   * also runs as many trivial D1 statements per cycle as Flotilla did (`d1`), under the same
   * `wrangler dev`: workerd CPU per request that is the runtime's, wrangler dev's and local D1's own.
   */
  floor?: { helloCpuMsPerRequest: number; d1CpuMsPerRequest: number; d1StatementsPerCycle: number };
}

/** The floor Workers: one answers every request; with `?d1=K` it first runs K trivial D1 statements. */
const FLOOR_WORKER = `export default {
  async fetch(request, env) {
    const k = Number(new URL(request.url).searchParams.get('d1') ?? 0);
    for (let i = 0; i < k; i++) await env.DB.prepare('SELECT ?1 AS v').bind(i).first();
    if (request.method === 'POST') await request.text();
    return Response.json({ nextHeartbeatMs: 5000, leases: {} });
  },
};
`;

/** CPU time (ms) of workerd processes under `root`. */
function workerdCpuMs(root: number): number {
  const rows = execFileSync('ps', ['-e', '-o', 'pid=,ppid=,comm='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .map(([pid, ppid, comm]) => ({ pid: Number(pid), ppid: Number(ppid), comm: comm ?? '' }));
  const under = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of rows)
      if (under.has(r.ppid) && !under.has(r.pid)) {
        under.add(r.pid);
        grew = true;
      }
  }
  let ms = 0;
  for (const r of rows) {
    if (!under.has(r.pid) || !r.comm.startsWith('workerd')) continue;
    try {
      ms += procSample(r.pid).cpuMs;
    } catch {
      /* gone */
    }
  }
  return ms;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * workerd CPU (ms) per request of `agents` loops, each a POST then a GET every 5 s (the agents'
 * cadence) for `seconds`, against the floor Worker under `wrangler dev` (`d1` trivial statements
 * in each POST), minus workerd's idle CPU over a window of the same length.
 */
async function floorCpuMsPerRequest(agents: number, seconds: number, d1: number, headers: Record<string, string>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-floor-'));
  writeFileSync(join(dir, 'floor.mjs'), FLOOR_WORKER);
  writeFileSync(
    join(dir, 'wrangler.toml'),
    `name = "floor"\nmain = "floor.mjs"\ncompatibility_date = "2025-09-01"\n\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "floor"\ndatabase_id = "00000000-0000-0000-0000-000000000001"\n`,
  );
  const port = freePortSync();
  const wrangler = join(process.cwd(), 'node_modules', '.bin', 'wrangler');
  const proc = startCliProc([], { CI: 'true' }, [wrangler, 'dev', '--config', join(dir, 'wrangler.toml'), '--ip', '127.0.0.1', '--port', String(port), '--persist-to', join(dir, 'state')]);
  const client = new Client(port, 16);
  try {
    await until('wrangler dev (floor Worker) to answer', async () => (await fetch(`http://127.0.0.1:${port}/`)).ok, 120_000, 500);
    // A heartbeat per cycle (polls are rare: only on a change of desired state).
    const cycle = () => client.fetch({ method: 'POST', path: `/v1/agent/heartbeat?d1=${d1}`, headers, body: '{}' });
    for (let i = 0; i < agents; i++) await cycle(); // warm up
    await sleep(2000);
    const pid = proc.child.pid as number;
    const idle0 = workerdCpuMs(pid);
    await sleep(5000);
    const idleCpuMs = ((workerdCpuMs(pid) - idle0) / 5000) * seconds * 1000;
    const cpu0 = workerdCpuMs(pid);
    let requests = 0;
    const end = Date.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: agents }, async (_, i) => {
        await sleep((i / agents) * 5000);
        while (Date.now() < end) {
          const t0 = Date.now();
          await cycle();
          requests += 1;
          await sleep(Math.max(0, 5000 - (Date.now() - t0)));
        }
      }),
    );
    return Math.max(0, workerdCpuMs(pid) - cpu0 - idleCpuMs) / requests;
  } finally {
    client.close();
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A setup request to `wrangler dev` (see `againWhileUnavailable`). */
const setupFetch = (client: Client, r: Req) =>
  againWhileUnavailable(async () => {
    const res = await client.fetch(r);
    return { ...res, retryAfter: res.headers['retry-after'] !== undefined };
  });

export async function benchWorker(o: WorkerOptions, log: (s: string) => void): Promise<WorkerResult> {
  const state = mkdtempSync(join(tmpdir(), 'flotilla-bench-worker-'));
  const wrangler = join('node_modules', '.bin', 'wrangler');
  const env = { CI: 'true' };
  execFileSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', state], { stdio: 'ignore', env: { ...process.env, ...env }, timeout: 120_000 });
  const port = freePortSync();
  const admin = `flt_bench_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  const vars = [`FLOTILLA_BOOTSTRAP_TOKEN:${admin}`, 'FLOTILLA_ENROLL_RATE:100000', 'FLOTILLA_ENROLL_BURST:100000', 'FLOTILLA_LOG_LEVEL:warn'];
  const proc = startCliProc([], env, [wrangler, 'dev', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', state, ...vars.flatMap((v) => ['--var', v])]);
  const client = new Client(port, 16);
  let sample: { headers: Record<string, string>; result: WorkerResult };
  try {
    await until('wrangler dev to serve /healthz', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 120_000, 500);
    const h = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
    const tok = await setupFetch(client, { method: 'POST', path: '/v1/enrollment-tokens', headers: h, body: JSON.stringify({ uses: o.agents, ttl: '1h' }) });
    if (tok.status !== 201 && tok.status !== 200) throw new Error(`enrollment token: ${tok.status} ${tok.body}`);
    const { token } = JSON.parse(tok.body) as { token: string };
    const agents: Hollow[] = [];
    for (let i = 0; i < o.agents; i += 10) agents.push(...(await Promise.all(Array.from({ length: Math.min(10, o.agents - i) }, (_, j) => enrollHollow(port, token, `hollow-${i + j}`)))));
    // One pod per node, so renewals re-sign real leases.
    const manifest = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'fleet', annotations: { 'flotilla.dev/scoring': 'LeastAllocated' } },
      spec: {
        replicas: o.agents,
        selector: { matchLabels: { app: 'fleet' } },
        template: { metadata: { labels: { app: 'fleet' } }, spec: { containers: [{ name: 'c', image: 'local/busybox:1', resources: { requests: { cpu: '10m', memory: '16Mi' } } }] } },
      },
    };
    const applied = await setupFetch(client, { method: 'PUT', path: '/v1/namespaces/default/deployments/fleet', headers: h, body: JSON.stringify(manifest), timeoutMs: 60_000 });
    if (applied.status >= 300) throw new Error(`apply: ${applied.status} ${applied.body}`);
    log(`wrangler dev on 127.0.0.1:${port} (local D1); ${agents.length} simulated agents enrolled, one pod each`);

    // Per agent, what a real agent keeps: its desired state's version (ETag) and when it last polled.
    const seen = new Map<Hollow, { etag: string; version: string; at: number }>();
    const cycle = async (a: Hollow, lat: number[] | null, counts: { hb: number; polls: number; renewals: number; errors: number }) => {
      const hb = await client.fetch({ method: 'POST', path: '/v1/agent/heartbeat', headers: { authorization: `Bearer ${await a.jwt()}`, 'content-type': 'application/json' }, body: '{}' });
      if (hb.status !== 200) {
        counts.errors++;
        log(`  heartbeat failed: ${hb.status} ${hb.body.slice(0, 200)}`);
        return 5000;
      }
      lat?.push(hb.ms);
      counts.hb++;
      const r = JSON.parse(hb.body) as { nextHeartbeatMs: number; leases: Record<string, string>; desiredVersion: string; pollIntervalMs?: number };
      if (Object.keys(r.leases).length > 0) counts.renewals++;
      const known = seen.get(a);
      // Without pollIntervalMs (heartbeats whose version is only a hint): a poll every cycle.
      if (known && r.pollIntervalMs && r.desiredVersion === known.version && Date.now() - known.at < r.pollIntervalMs) return r.nextHeartbeatMs;
      const poll = await client.fetch({ method: 'GET', path: '/v1/agent/desired', headers: { authorization: `Bearer ${await a.jwt()}`, ...(known ? { 'if-none-match': known.etag } : {}) } });
      if (poll.status === 200 || poll.status === 304) {
        lat?.push(poll.ms);
        counts.polls++;
        if (poll.status === 200) seen.set(a, { etag: String(poll.headers.etag ?? ''), version: (JSON.parse(poll.body) as { version: string }).version, at: Date.now() });
        else if (known) known.at = Date.now();
      } else {
        counts.errors++;
        log(`  poll failed: ${poll.status} ${poll.body.slice(0, 200)}`);
      }
      return r.nextHeartbeatMs;
    };
    // Warm up: every agent once (first JWT verification, first desired state), then let it settle.
    const warm = { hb: 0, polls: 0, renewals: 0, errors: 0 };
    for (const a of agents) await cycle(a, null, warm);
    await sleep(2000);

    const pid = proc.child.pid as number;
    const idle0 = workerdCpuMs(pid);
    await sleep(5000);
    const idleCpuMs = ((workerdCpuMs(pid) - idle0) / 5000) * o.seconds * 1000;

    const s0 = [await metric(port, admin, 'flotilla_db_statements_total'), await metric(port, admin, 'flotilla_db_batches_total'), await metric(port, admin, 'flotilla_db_write_statements_total')];
    const cpu0 = workerdCpuMs(pid);
    const lat: number[] = [];
    const counts = { hb: 0, polls: 0, renewals: 0, errors: 0 };
    const end = Date.now() + o.seconds * 1000;
    await Promise.all(
      agents.map(async (a, i) => {
        await sleep((i / agents.length) * 5000); // agents started at different times
        while (Date.now() < end) await sleep(await cycle(a, lat, counts));
      }),
    );
    const cpu1 = workerdCpuMs(pid);
    const s1 = [await metric(port, admin, 'flotilla_db_statements_total'), await metric(port, admin, 'flotilla_db_batches_total'), await metric(port, admin, 'flotilla_db_write_statements_total')];
    // The metric calls above are two statements-free requests each (operator auth reads a token row: counted).
    const requests = counts.hb + counts.polls;
    const cpuMs = Math.max(0, cpu1 - cpu0 - idleCpuMs);
    lat.sort((x, y) => x - y);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)] ?? NaN;
    const d = (k: number) => ((s1[k] ?? 0) - (s0[k] ?? 0)) / counts.hb;
    const result: WorkerResult = {
      agents: o.agents,
      seconds: o.seconds,
      heartbeats: counts.hb,
      polls: counts.polls,
      renewals: counts.renewals,
      cpuMsPerRequest: cpuMs / requests,
      cpuMsPerCycle: cpuMs / counts.hb,
      idleCpuMs,
      statementsPerHeartbeat: d(0),
      batchesPerHeartbeat: d(1),
      writesPerHeartbeat: d(2),
      ratio: cpuMs / requests / 10,
      p50: pct(50),
      p99: pct(99),
      errors: counts.errors,
    };
    log(
      `  ${counts.hb} heartbeats (${counts.renewals} renewed leases) + ${counts.polls} polls in ${o.seconds} s: workerd CPU ${Math.round(cpuMs)} ms beyond idle (${Math.round(idleCpuMs)} ms idle) = ${result.cpuMsPerRequest.toFixed(2)} ms per request (${result.cpuMsPerCycle?.toFixed(2)} ms per heartbeat cycle); D1 statements per heartbeat cycle ${result.statementsPerHeartbeat.toFixed(2)} (writes ${result.writesPerHeartbeat.toFixed(2)}, batches ${result.batchesPerHeartbeat.toFixed(2)}); p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms`,
    );
    sample = { headers: { authorization: `Bearer ${await (agents[0] as Hollow).jwt()}`, 'content-type': 'application/json' }, result };
  } finally {
    client.close();
    await proc.stop();
    rmSync(state, { recursive: true, force: true });
  }
  // The floor, with Flotilla's wrangler dev stopped: the same agents, cadence, window and headers.
  const { headers, result } = sample;
  const d1 = Math.round(result.statementsPerHeartbeat);
  const hello = await floorCpuMsPerRequest(o.agents, o.seconds, 0, headers);
  const withD1 = await floorCpuMsPerRequest(o.agents, o.seconds, d1, headers);
  result.floor = { helloCpuMsPerRequest: hello, d1CpuMsPerRequest: withD1, d1StatementsPerCycle: d1 };
  log(`  floor under the same wrangler dev: ${hello.toFixed(2)} ms per request answering only; ${withD1.toFixed(2)} ms with ${d1} trivial D1 statements per cycle`);
  return result;
}
