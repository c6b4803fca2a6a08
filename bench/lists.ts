import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromEnv } from '../control-plane/config.js';
import { workReasons } from '../control-plane/controllers/tick.js';
import { allocatableOf } from '../control-plane/core/scheduler.js';
import { openLibsql } from '../control-plane/store/libsql.js';
import { largestAllocatable, listNodes } from '../control-plane/store/nodes.js';
import { enrollHollow, type Hollow, runningReport } from './hollow.js';
import { freePortSync } from './ports.js';
import { startServe } from './procs.js';

// Operator reads at fleet size, one request at a time (no load): `npm run bench:lists` (N=2500 by
// default). A Node control plane (embedded libSQL, pinned to core 0 when possible) with N simulated
// nodes enrolled over the real protocol and a Deployment of N pods, each reported Running and Ready
// once by its node; then 25 requests of each operator read (pages followed with `continue`; watches
// from before the enrollments and before the status reports), median and p90, and 25 runs of the controllers' idle check on the same database (KEEP=1 keeps the data
// directory for a closer look: EXPLAIN QUERY PLAN and the like). A diagnostic for bench/FINDINGS.md, not part of `npm run bench`.

execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' }); // the server runs from dist/, as in `npm run bench`
const N = Number(process.env.N ?? 2500);
const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-lists-'));
const port = freePortSync();
process.env.FLOTILLA_LEASE_TTL = '3600s'; // nodes stay Ready without heartbeats: no load during the reads
const cp = await startServe(['cp', String(port), dir], 0);
const base = `http://127.0.0.1:${port}`;
const admin = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
const headers = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
const api = async (method: string, path: string, body?: unknown): Promise<any> => {
  const r = await fetch(base + path, { method, headers, ...(body ? { body: JSON.stringify(body) } : {}) });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json();
};
/** Runs `f` 25 times, one at a time, and prints the median and p90 with what its last run said. */
async function timed(label: string, f: (i: number) => Promise<string>): Promise<void> {
  const ms: number[] = [];
  let said = '';
  for (let i = 0; i < 25; i++) {
    const t0 = performance.now();
    said = await f(i);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  console.log(`  ${label.padEnd(44)} median ${(ms[12] as number).toFixed(1)} ms, p90 ${(ms[22] as number).toFixed(1)} ms; ${said}`);
}

/** Runs `f` over `xs`, `k` at a time. */
async function pool<T>(xs: T[], k: number, f: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: k }, async () => {
      while (i < xs.length) await f(xs[i++] as T);
    }),
  );
}

try {
  const rvStart = (await api('GET', '/v1/nodes?limit=1')).metadata.resourceVersion as string;
  const { token } = await api('POST', '/v1/enrollment-tokens', { uses: N, ttl: '2h' });
  const hollows: Hollow[] = [];
  await pool([...Array(N).keys()], 20, async (i) => {
    hollows.push(await enrollHollow(port, token, `h${String(i).padStart(5, '0')}`));
  });
  const container = { name: 'c', image: 'local/busybox:1', command: ['sleep', '1d'], resources: { requests: { cpu: '10m', memory: '8Mi' } } };
  await api('PUT', '/v1/namespaces/default/deployments/fleet', {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'fleet' },
    spec: { replicas: N, selector: { matchLabels: { app: 'fleet' } }, template: { metadata: { labels: { app: 'fleet' } }, spec: { containers: [container] } } },
  });
  for (let t = 0; t < 600; t++) {
    const pods = (await api('GET', '/v1/namespaces/default/pods')).items as Array<{ spec: { nodeName: string | null } }>;
    if (pods.length === N && pods.every((p) => p.spec.nodeName)) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const rvPlaced = (await api('GET', '/v1/pods?limit=1')).metadata.resourceVersion as string;
  // Each node reports its pod Running and Ready once (so pods carry statuses, as in a real fleet).
  await pool(hollows, 20, async (h) => {
    const auth = `Bearer ${await h.jwt()}`;
    const desired = (await (await fetch(`${base}/v1/agent/desired`, { headers: { authorization: auth } })).json()) as { pods: any[] };
    const pods = desired.pods.map(runningReport);
    const r = await fetch(`${base}/v1/agent/heartbeat`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify({ pods }) });
    if (!r.ok) throw new Error(`heartbeat: ${r.status}`);
  });
  await new Promise((r) => setTimeout(r, 5000));
  console.log(`${N} nodes, ${N} pods; one request at a time, 25 each:`);
  // Watches from before the enrollments and from before the status reports: batches of 500 changes
  // (nodes, pods with their node names, the Deployment with its counts).
  const watch = (list: string, rv: string) => `${list}?watch=1&resourceVersion=${rv}&timeoutSeconds=0`;
  for (const path of [
    '/v1/nodes?limit=100',
    '/v1/namespaces/default/pods?limit=100',
    '/v1/pods?limit=100',
    '/v1/namespaces/default/deployments/fleet',
    '/v1/nodes',
    '/v1/namespaces/default/pods',
    watch('/v1/nodes', rvStart),
    watch('/v1/namespaces/default/pods', rvPlaced),
    watch('/v1/namespaces/default/deployments', rvStart),
  ]) {
    let cont = '';
    await timed(path.replace(/resourceVersion=\d+/, 'resourceVersion=N'), async (i) => {
      const body = (await (await fetch(base + path + (cont ? `&continue=${cont}` : ''), { headers })).json()) as { metadata?: { continue?: string }; items?: unknown[] };
      cont = path.includes('limit=') && i % 5 !== 4 ? (body.metadata?.continue ?? '') : ''; // five pages, then from the start
      return `${body.items?.length ?? 1} items`;
    });
  }
  // The controllers' idle check (one query per tick, on every instance; it blocks the event loop
  // while it runs), here from this process on the same database file.
  const config = configFromEnv({ FLOTILLA_LEASE_TTL: '3600s' });
  const { db, close } = await openLibsql(`file:${join(dir, 'flotilla.db')}`);
  try {
    await timed('controller idle check (workReasons)', async () => `work: [${(await workReasons(db, Date.now(), config.clockSkewMs, config.nodeGraceMs)).join(', ')}]`);
    // Apply's could-it-ever-fit check: every node read and the rule applied in JS (until 2026-11-26)
    // against the one aggregate that replaced it.
    const reserve = { cpu: config.reservedCpu, memory: config.reservedMemory };
    await timed('fit check: every node, rule in JS', async () => {
      const a = (await listNodes(db)).map((n) => allocatableOf({ ...(n.facts as { cpus: number; memoryBytes: number }), allocatable: n.allocatable }, reserve));
      return JSON.stringify({ cpu: Math.max(...a.map((x) => x.cpu)), memory: Math.max(...a.map((x) => x.memory)) });
    });
    await timed('fit check: largestAllocatable (SQL)', async () => JSON.stringify(await largestAllocatable(db, reserve)));
  } finally {
    await close();
  }
} finally {
  await cp.stop();
  if (process.env.KEEP) console.log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
