import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { enrollHollow, type Hollow, metric, runningReport } from './hollow.js';
import { Client, percentile, type StepResult } from './load.js';
import { freePortSync } from './ports.js';
import { canPin, helloSamples, procSample, startServe } from './procs.js';

/** Sizes of one fleet run: the simulated fleet grows through `sizes`; each size is measured for a window. */
export interface FleetOptions {
  sizes: number[];
  /** After each growth (enrollment, placement, first reports), before measuring. */
  settleSeconds: number;
  /** Measuring window of every size but the last. */
  windowSeconds: number;
  /** Measuring window of the last (largest) size: the hold. */
  holdSeconds: number;
  /** Lease TTL; agents heartbeat every sixth of it (60 s: every 10 s). */
  leaseTtlSeconds: number;
  helloSeconds: number;
}

export const FLEET_QUICK: FleetOptions = { sizes: [200, 500], settleSeconds: 10, windowSeconds: 8, holdSeconds: 10, leaseTtlSeconds: 60, helloSeconds: 1 };
export const FLEET_FULL: FleetOptions = { sizes: [500, 1000, 2000, 3000], settleSeconds: 45, windowSeconds: 60, holdSeconds: 120, leaseTtlSeconds: 60, helloSeconds: 5 };

/** One fleet size, measured over its window. */
export interface FleetWindow {
  agents: number;
  seconds: number;
  heartbeats: number;
  heartbeatP50: number;
  heartbeatP99: number;
  heartbeatMax: number;
  /** Polls of the desired state answered (200 or 304) in the window. */
  polls: number;
  /** Operator API calls (list nodes, get the deployment, list pods), one every 500 ms. */
  apiP50: number;
  apiP99: number;
  /** Requests sent in the window that failed (whenever they failed: a poll sent at its end may fail a minute later). */
  errors: number;
  errorKinds: Record<string, number>;
  /**
   * Requests sent while this size was reached (enrollment, placement, settling) that failed, even
   * if they failed inside the window: not part of the hold, reported beside it.
   */
  growthErrors: number;
  growthErrorKinds: Record<string, number>;
  /** Longest accept queue of the control plane's listening socket, sampled every second (NaN: no `ss`). */
  acceptQueueMax: number;
  growthAcceptQueueMax: number;
  /** Nodes the controller marked NotReady during the window (none stopped: all are false). */
  falseNotReady: number;
  /** Agent requests per second the control plane answered. */
  requestRate: number;
  /** Control plane CPU, share of one core. */
  serverCpuPercent: number;
  serverRssMb: number;
  /** Longest event-loop delay of the load generator in the window: latency it adds to every figure. */
  generatorStallMs: number;
  /** Pods of the fleet's Deployment ready at the end of the window. */
  readyPods: number;
  held: boolean;
}

export interface FleetResult {
  helloRate: number;
  windows: FleetWindow[];
  /** Largest size held: p99 of heartbeats and API calls <= 1 s, no error (of a request sent in the window), no false NotReady. */
  largestHeld: number;
  heartbeatMs: number;
  pinned: boolean;
  holdSeconds: number;
}

interface Sim {
  agent: Hollow;
  etag: string | null;
  known: Map<string, number>;
  reports: unknown[];
}

function procStat(pid: number): { cpuMs: number; rssMb: number } {
  const { rss, cpuMs } = procSample(pid);
  return { cpuMs, rssMb: rss / 2 ** 20 };
}

/** Enrollments per second while the fleet grows, in batches of ENROLL_BATCH. */
const ENROLL_RATE = 200;
const ENROLL_BATCH = 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Tally = { growth: Map<string, number>; window: Map<string, number>; growthQueue: number; windowQueue: number };
const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** A window's failures (by when their requests were sent), accept queues and verdict, from its tally. */
function tallyInto(w: FleetWindow, t: Tally | undefined, haveSs: boolean): void {
  if (!t) return;
  w.errors = sum(t.window);
  w.errorKinds = Object.fromEntries(t.window);
  w.growthErrors = sum(t.growth);
  w.growthErrorKinds = Object.fromEntries(t.growth);
  w.acceptQueueMax = haveSs ? t.windowQueue : NaN;
  w.growthAcceptQueueMax = haveSs ? t.growthQueue : NaN;
  w.held = w.heartbeats > 0 && w.heartbeatP99 <= 1000 && w.apiP99 <= 1000 && w.errors === 0 && w.falseNotReady === 0;
}

const kinds = (k: Record<string, number>) =>
  Object.entries(k)
    .map(([what, n]) => `${what}: ${n}`)
    .join(', ');

function errorsLine(w: FleetWindow): string {
  return (
    `failed requests sent in the window ${w.errors}${w.errors ? ` (${kinds(w.errorKinds)})` : ''}, sent while growing ${w.growthErrors}${w.growthErrors ? ` (${kinds(w.growthErrorKinds)})` : ''}; ` +
    `accept queue up to ${w.acceptQueueMax} in the window, ${w.growthAcceptQueueMax} while growing`
  );
}

/**
 * The largest simulated fleet the Node control plane holds: hollow agents (real protocol:
 * agent-signed JWTs, heartbeats at the server's cadence with lease renewals, ETag long-polls of the
 * desired state, status reports) grow through the sizes; each size is measured for a window, the
 * last one held for `holdSeconds`. Baseline: hello-world req/s of the same Hono + Node stack.
 */
export async function benchFleet(o: FleetOptions, log: (s: string) => void): Promise<FleetResult> {
  const pinned = canPin();
  const core = pinned ? 0 : null;
  log(pinned ? 'control plane and baseline pinned to core 0, load generator (all simulated agents) on core 1' : 'taskset unavailable or one core: processes are not pinned');
  const hello = await helloSamples(core, 3, o.helloSeconds);
  const base = hello.map((s) => s.achieved).sort((a, b) => a - b)[1] as number;
  log(`hello-world: ${hello.map((s: StepResult) => s.achieved.toFixed(0)).join(', ')} req/s (median ${base.toFixed(0)})`);

  const dir = mkdtempSync(join(tmpdir(), 'flotilla-fleet-'));
  const port = freePortSync();
  process.env.FLOTILLA_LEASE_TTL = `${o.leaseTtlSeconds}s`;
  const cp = await startServe(['cp', String(port), dir], core);
  delete process.env.FLOTILLA_LEASE_TTL;
  const pid = cp.child.pid as number;
  const largest = Math.max(...o.sizes);
  // Long-polls hold a connection each; heartbeats and reports share a smaller pool.
  const polls = new Client(port, largest + 64);
  const beats = new Client(port, 1024);
  const ops = new Client(port, 4);
  let running = true;
  let sampler: NodeJS.Timeout | undefined;
  const loops: Promise<void>[] = [];
  try {
    const admin = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    const adminHeaders = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
    const { token } = JSON.parse((await ops.fetch({ method: 'POST', path: '/v1/enrollment-tokens', headers: adminHeaders, body: JSON.stringify({ uses: largest, ttl: '2h' }) })).body) as {
      token: string;
    };

    // What the window records.
    let recording = false;
    let hb: number[] = [];
    let api: number[] = [];
    let pollCount = 0;
    // A failure is charged to the phase its request was sent in: size i's growth (enrollment,
    // placement, settling) or its window, whenever it failed. A poll sent while the fleet grew that
    // times out 60 s later, inside the window, is a growth failure, reported beside the window.
    const windowStarts: number[] = [];
    const windowEnds: number[] = [];
    const tally: Tally[] = o.sizes.map(() => ({ growth: new Map(), window: new Map(), growthQueue: 0, windowQueue: 0 }));
    const phaseOf = (t: number): { i: number; inWindow: boolean } | null => {
      for (let i = 0; i < o.sizes.length; i++) {
        const ws = windowStarts[i];
        const we = windowEnds[i];
        if (ws === undefined || t < ws) return { i, inWindow: false };
        if (we === undefined || t < we) return { i, inWindow: true };
      }
      return null; // after the last window: nothing is sent then
    };
    const fail = (what: string, sent: number) => {
      const p = phaseOf(sent);
      if (!p) return;
      const m = p.inWindow ? tally[p.i]?.window : tally[p.i]?.growth;
      m?.set(what, (m.get(what) ?? 0) + 1);
    };
    // The control plane's accept queue (connections the kernel completed that the server has not
    // accepted yet), every second: Node 20's libuv accepts one connection per event-loop
    // iteration, so a busy loop leaves arriving agents' connections queued (bench/FINDINGS.md).
    let haveSs = true;
    sampler = setInterval(() => {
      execFile('ss', ['-ltnH', `sport = :${port}`], (err, out) => {
        const q = Number(out.trim().split(/\s+/)[1]);
        if (err || !Number.isFinite(q)) {
          haveSs = false;
          return;
        }
        const p = phaseOf(performance.now());
        const t = p ? tally[p.i] : undefined;
        if (!p || !t) return;
        if (p.inWindow) t.windowQueue = Math.max(t.windowQueue, q);
        else t.growthQueue = Math.max(t.growthQueue, q);
      });
    }, 1000);
    // Off once the last window ends: the loops send nothing more, and what is in flight finishes.
    let sending = true;
    const heartbeatMs = (o.leaseTtlSeconds * 1000) / 6; // what the server hands out, jittered
    // When a connection error came, from the request's start: at once (a socket the server had
    // closed), at the end of a long-poll's wait, or at the client's timeout.
    const after = (ms: number) => (ms < 1000 ? 'within 1 s' : `after ${Math.round(ms / 1000)} s`);

    const heartbeatLoop = async (s: Sim) => {
      await sleep(Math.random() * heartbeatMs); // a real fleet's agents started at different times
      while (running && sending) {
        const sent = s.reports.splice(0);
        const body = sent.length > 0 ? { pods: sent } : {};
        const headers = { authorization: `Bearer ${await s.agent.jwt()}`, 'content-type': 'application/json' };
        const at = performance.now();
        const r = await beats.fetch({ method: 'POST', path: '/v1/agent/heartbeat', headers, body: JSON.stringify(body), timeoutMs: 30_000 });
        if (!running) return;
        if (r.status === 200) {
          if (recording) hb.push(r.ms);
          await sleep((JSON.parse(r.body) as { nextHeartbeatMs: number }).nextHeartbeatMs);
        } else {
          s.reports.unshift(...sent); // like a real agent: a report not acknowledged is sent again
          fail(`heartbeat ${r.status}${r.status === 0 ? ` ${r.body} ${after(r.ms)}` : ''}`, at);
          await sleep(1000);
        }
      }
    };
    const pollLoop = async (s: Sim) => {
      await sleep(Math.random() * 2000); // a real agent polls once its start-up is done
      while (running && sending) {
        const headers: Record<string, string> = { authorization: `Bearer ${await s.agent.jwt()}` };
        if (s.etag) headers['if-none-match'] = s.etag;
        const at = performance.now();
        const r = await polls.fetch({ method: 'GET', path: '/v1/agent/desired', headers, timeoutMs: 60_000 });
        if (!running) return;
        if (r.status === 200) {
          if (recording) pollCount++;
          s.etag = String(r.headers.etag ?? '');
          const state = JSON.parse(r.body) as { pods: Array<{ id: string; epoch: number; spec: { containers: Array<{ name: string; image: string }> } }> };
          // The fake runtime starts every new pod at once and reports it Running and Ready.
          for (const p of state.pods) {
            if (s.known.get(p.id) === p.epoch) continue;
            s.known.set(p.id, p.epoch);
            s.reports.push(runningReport(p));
          }
        } else if (r.status === 304) {
          if (recording) pollCount++;
        } else {
          fail(`poll ${r.status}${r.status === 0 ? ` ${r.body} ${after(r.ms)}` : ''}`, at);
          await sleep(1000);
        }
      }
    };
    const opsLoop = async () => {
      const calls = ['/v1/nodes?limit=100', '/v1/namespaces/default/deployments/fleet', '/v1/namespaces/default/pods?limit=100'];
      for (let i = 0; running && sending; i++) {
        const at = performance.now();
        const r = await ops.send({ method: 'GET', path: calls[i % calls.length] as string, headers: adminHeaders, timeoutMs: 30_000 });
        if (r.status === 200) {
          if (recording) api.push(r.ms);
        } else fail(`api ${r.status}`, at);
        await sleep(500);
      }
    };

    const sims: Sim[] = [];
    const windows: FleetWindow[] = [];
    for (const [i, size] of o.sizes.entries()) {
      const t0 = Date.now();
      // Devices come online at ENROLL_RATE a second, not all in the same instant (a burst of
      // thousands of enrollments is a storm of synchronous commits: see the findings).
      for (let n = sims.length; n < size; n += ENROLL_BATCH) {
        const due = Date.now() + (ENROLL_BATCH / ENROLL_RATE) * 1000;
        const batch = await Promise.all(Array.from({ length: Math.min(ENROLL_BATCH, size - n) }, (_, j) => enrollHollow(port, token, `hollow-${n + j}`)));
        await sleep(due - Date.now());
        for (const agent of batch) {
          const s: Sim = { agent, etag: null, known: new Map(), reports: [] };
          sims.push(s);
          loops.push(heartbeatLoop(s), pollLoop(s));
        }
      }
      // One pod per node (LeastAllocated spreads them), so renewals re-sign real leases.
      const manifest = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'fleet', annotations: { 'flotilla.dev/scoring': 'LeastAllocated' } },
        spec: { replicas: size, selector: { matchLabels: { app: 'fleet' } }, template: { metadata: { labels: { app: 'fleet' } }, spec: { containers: [{ name: 'c', image: 'local/busybox:1' }] } } },
      };
      const applied = await ops.send({ method: 'PUT', path: '/v1/namespaces/default/deployments/fleet', headers: adminHeaders, body: JSON.stringify(manifest), timeoutMs: 60_000 });
      if (applied.status >= 300) throw new Error(`apply: ${applied.status}`);
      // The operator starts once there is a Deployment to get.
      if (i === 0 && !process.env.BENCH_FLEET_NO_OPS) loops.push(opsLoop());
      log(`${size} agents enrolled and running, deployment scaled to ${size} (${((Date.now() - t0) / 1000).toFixed(1)} s); settling ${o.settleSeconds} s`);
      await sleep(o.settleSeconds * 1000);

      const seconds = i === o.sizes.length - 1 ? o.holdSeconds : o.windowSeconds;
      hb = [];
      api = [];
      pollCount = 0;
      const nr0 = await metric(port, admin, 'flotilla_node_not_ready_transitions_total');
      const st0 = procStat(pid);
      const w0 = Date.now();
      const loopDelay = monitorEventLoopDelay({ resolution: 10 });
      loopDelay.enable();
      recording = true;
      windowStarts[i] = performance.now();
      let rssMax = st0.rssMb;
      while (Date.now() - w0 < seconds * 1000) {
        await sleep(Math.min(5000, seconds * 1000 - (Date.now() - w0)));
        rssMax = Math.max(rssMax, procStat(pid).rssMb);
      }
      recording = false;
      windowEnds[i] = performance.now();
      loopDelay.disable();
      const elapsed = (Date.now() - w0) / 1000;
      const st1 = procStat(pid);
      const falseNotReady = (await metric(port, admin, 'flotilla_node_not_ready_transitions_total')) - nr0;
      const depRes = await ops.fetch({ method: 'GET', path: '/v1/namespaces/default/deployments/fleet', headers: adminHeaders, timeoutMs: 60_000 });
      const dep = (depRes.status === 200 ? JSON.parse(depRes.body) : {}) as { status?: { readyReplicas?: number } };
      hb.sort((a, b) => a - b);
      api.sort((a, b) => a - b);
      const w: FleetWindow = {
        agents: size,
        seconds: elapsed,
        heartbeats: hb.length,
        heartbeatP50: percentile(hb, 50),
        heartbeatP99: percentile(hb, 99),
        heartbeatMax: hb[hb.length - 1] ?? NaN,
        polls: pollCount,
        apiP50: percentile(api, 50),
        apiP99: percentile(api, 99),
        errors: 0,
        errorKinds: {},
        growthErrors: 0,
        growthErrorKinds: {},
        acceptQueueMax: 0,
        growthAcceptQueueMax: 0,
        falseNotReady,
        requestRate: (hb.length + pollCount) / elapsed,
        serverCpuPercent: ((st1.cpuMs - st0.cpuMs) / (elapsed * 1000)) * 100,
        serverRssMb: rssMax,
        generatorStallMs: loopDelay.max / 1e6,
        readyPods: dep.status?.readyReplicas ?? 0,
        held: false,
      };
      tallyInto(w, tally[i], haveSs);
      windows.push(w);
      log(
        `  ${size} agents, ${elapsed.toFixed(0)} s: ${w.heartbeats} heartbeats (p50 ${w.heartbeatP50.toFixed(1)} ms, p99 ${w.heartbeatP99.toFixed(1)} ms, max ${w.heartbeatMax.toFixed(0)} ms), ${w.polls} polls answered, API p99 ${w.apiP99.toFixed(1)} ms, ` +
          `${w.requestRate.toFixed(0)} agent req/s, control plane CPU ${w.serverCpuPercent.toFixed(0)} % of a core, generator loop stalled up to ${w.generatorStallMs.toFixed(0)} ms, RSS ${w.serverRssMb.toFixed(0)} MB, ${w.readyPods} pods ready, false NotReady ${w.falseNotReady}; ${errorsLine(w)} (so far)`,
      );
    }
    // Requests still in flight when the last window ended finish (a long-poll within its 25 s wait,
    // a failure within its 60 s timeout) before failures are counted; nothing new is sent.
    sending = false;
    await Promise.race([Promise.allSettled(loops), sleep(65_000)]);
    for (const [i, w] of windows.entries()) {
      tallyInto(w, tally[i], haveSs);
      log(`  ${w.agents} agents: ${errorsLine(w)}: ${w.held ? 'held' : 'NOT held'}`);
    }
    const held = windows.filter((w) => w.held);
    return { helloRate: base, windows, largestHeld: held.length > 0 ? Math.max(...held.map((w) => w.agents)) : 0, heartbeatMs, pinned, holdSeconds: o.holdSeconds };
  } finally {
    running = false;
    clearInterval(sampler);
    polls.close();
    beats.close();
    ops.close();
    await Promise.race([Promise.allSettled(loops), sleep(15_000)]);
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
