import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { configFromEnv, silentLogger } from '../control-plane/config.js';
import type { Deps } from '../control-plane/context.js';
import { runTick } from '../control-plane/controllers/tick.js';
import { schedule } from '../control-plane/core/scheduler.js';
import type { NodeView, PodView } from '../control-plane/core/types.js';
import { Keyring } from '../control-plane/keys.js';
import type { Db } from '../control-plane/store/db.js';
import { migrateLibsql, openLibsql } from '../control-plane/store/libsql.js';
import { ensureCluster } from '../control-plane/store/meta.js';
import { pods } from '../control-plane/store/schema.js';
import { applyWorkload } from '../control-plane/store/workloads.js';
import { parseWorkload } from '../shared/manifest.js';

// How fast the scheduler places pods: the pure core alone, and committed end to end (a controller
// tick on the embedded libSQL file: create the pods, place them, write everything in one batch),
// against raw batched inserts of the same rows into the same kind of database, in the same run.

/** One fleet size's result. */
export interface ScheduleRow {
  nodes: number;
  pods: number;
  /** Pure scheduler placements per second (no I/O). */
  pureRate: number;
  /** Pods created, placed and committed per second by a controller tick. */
  committedRate: number;
  /** Raw batched inserts of the same pod rows per second. */
  rawRate: number;
  ratio: number;
}

export interface ScheduleOptions {
  sizes: Array<{ nodes: number; pods: number }>;
}

export const QUICK: ScheduleOptions = { sizes: [{ nodes: 1000, pods: 1000 }] };
export const FULL: ScheduleOptions = {
  sizes: [
    { nodes: 1000, pods: 5000 },
    { nodes: 10_000, pods: 5000 },
  ],
};

const GiB = 1024 ** 3;

function pureRate(nodes: number, podCount: number): number {
  const nv: NodeView[] = Array.from({ length: nodes }, (_, i) => ({
    id: `n${i}`,
    name: `node-${String(i).padStart(6, '0')}`,
    labels: { site: `s${i % 10}` },
    taints: [],
    allocatable: { cpu: 4000, memory: 8 * GiB },
    ready: true,
    cordoned: false,
    draining: false,
  }));
  const pv: PodView[] = Array.from({ length: podCount }, (_, i) => ({
    id: `p${i}`,
    deploymentId: `d${i % 20}`,
    revision: 1,
    nodeId: null,
    desired: 'run',
    phase: 'Pending',
    ready: false,
    readySince: null,
    restarts: 0,
    createdAt: i,
    leaseExpiresAt: 0,
    cpu: 250,
    memory: 256 * 1024 ** 2,
    hostPorts: [],
    policy: 'stop',
    pinnedNode: null,
    constraints: { nodeSelector: {}, affinityTerms: [], tolerations: [], topologySpread: [], scoring: 'MostAllocated' },
  }));
  // A control plane runs for a long time: measure the warm (JIT-compiled) scheduler, after one run.
  schedule({ nodes: nv, placed: [], pending: pv });
  const t0 = performance.now();
  const plan = schedule({ nodes: nv, placed: [], pending: pv });
  const ms = performance.now() - t0;
  if (plan.assign.length !== podCount) throw new Error(`pure scheduler placed ${plan.assign.length}/${podCount}`);
  return (podCount / ms) * 1000;
}

async function freshDb(): Promise<{ db: Db; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-sched-'));
  const { db, close } = await openLibsql(`file:${join(dir, 'bench.db')}`);
  await migrateLibsql(db, 'migrations');
  return {
    db,
    async close() {
      await close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function addNodes(db: Db, n: number, now: number): Promise<void> {
  const facts = JSON.stringify({ hostname: 'h', os: 'linux', arch: 'x64', cpus: 4, memoryBytes: 8 * GiB, dockerVersion: 'bench', agentVersion: 'bench' });
  for (let i = 0; i < n; i += 500) {
    const stmts = [];
    for (let j = i; j < Math.min(n, i + 500); j++) {
      const id = `node-${j}`;
      stmts.push(
        db.run(
          sql`INSERT INTO nodes (id, name, public_key, labels, facts, enrolled_at) VALUES (${id}, ${`node-${String(j).padStart(6, '0')}`}, '{}', ${JSON.stringify({ site: `s${j % 10}` })}, ${facts}, ${now})`,
        ),
      );
      stmts.push(db.run(sql`INSERT INTO node_leases (node_id, last_seen_at, lease_expires_at) VALUES (${id}, ${now}, ${now + 3_600_000})`));
    }
    await db.batch(stmts as never);
  }
}

const manifest = (replicas: number) =>
  parseWorkload({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'bench' },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'bench' } },
      template: {
        metadata: { labels: { app: 'bench' } },
        spec: { containers: [{ name: 'web', image: 'local/busybox:1', resources: { requests: { cpu: '250m', memory: '256Mi' } } }] },
      },
    },
  });

async function committedRate(nodes: number, podCount: number): Promise<number> {
  const { db, close } = await freshDb();
  try {
    const now = Date.now();
    const cluster = await ensureCluster(db, now);
    await addNodes(db, nodes, now);
    // One tick places every pod: the scheduler's committed rate. A running control plane creates at
    // most FLOTILLA_TICK_BURST pods a tick (500) and the next ticks the rest; placing is the same.
    const config = configFromEnv({ FLOTILLA_LEASE_TTL: '1h', FLOTILLA_TICK_BURST: '0' });
    const deps: Deps = { db, config, logger: silentLogger, clock: () => Date.now(), keys: new Keyring(db, config.leaseTtlMs), cluster };
    await applyWorkload(db, manifest(podCount), 'default', now, 'bench');
    const batch = db.batch.bind(db);
    let batchMs = 0;
    (db as { batch: unknown }).batch = async (q: never) => {
      const b0 = performance.now();
      try {
        return await batch(q);
      } finally {
        batchMs += performance.now() - b0;
      }
    };
    const t0 = performance.now();
    const r = await runTick(deps);
    const ms = performance.now() - t0;
    if (process.env.BENCH_DEBUG) console.log(`tick ${ms.toFixed(0)} ms, of which batch ${batchMs.toFixed(0)} ms`);
    const placed = await db.get<{ n: number }>(sql`SELECT count(*) AS n FROM pods WHERE node_id IS NOT NULL`);
    if (r.created !== podCount || Number(placed?.n) !== podCount) throw new Error(`tick created ${r.created}, placed ${placed?.n} of ${podCount}`);
    return (podCount / ms) * 1000;
  } finally {
    await close();
  }
}

async function rawRate(nodes: number, podCount: number): Promise<number> {
  const { db, close } = await freshDb();
  try {
    const now = Date.now();
    const spec = manifest(1).spec.template.spec as Record<string, unknown>;
    const rows = Array.from({ length: podCount }, (_, i) => ({
      id: crypto.randomUUID(),
      namespace: 'default',
      name: `bench-${i}`,
      deploymentId: 'd',
      workload: 'bench',
      revision: 1,
      spec,
      specDigest: 'x',
      labels: { app: 'bench' },
      cpuRequest: 250,
      memoryRequest: 256 * 1024 ** 2,
      nodeId: `node-${i % nodes}`,
      epoch: 1,
      createdAt: now,
      updatedAt: now,
    }));
    const t0 = performance.now();
    await db.batch(rows.map((r) => db.insert(pods).values(r)) as never);
    const ms = performance.now() - t0;
    return (podCount / ms) * 1000;
  } finally {
    await close();
  }
}

/** Runs the schedule benchmark at each size. */
export async function benchSchedule(o: ScheduleOptions, log: (s: string) => void): Promise<ScheduleRow[]> {
  const out: ScheduleRow[] = [];
  for (const { nodes, pods: podCount } of o.sizes) {
    const pure = pureRate(nodes, podCount);
    // Warm up the tick path once on a small fleet (a running control plane has compiled it).
    await committedRate(Math.min(nodes, 200), 200);
    // Raw first and last, committed in between: the baseline brackets the measurement (noisy machine).
    const raw1 = await rawRate(nodes, podCount);
    const committed = await committedRate(nodes, podCount);
    const raw2 = await rawRate(nodes, podCount);
    const raw = (raw1 + raw2) / 2;
    const row = { nodes, pods: podCount, pureRate: pure, committedRate: committed, rawRate: raw, ratio: committed / raw };
    log(`  ${nodes} nodes, ${podCount} pods: pure ${Math.round(pure)}/s, committed ${Math.round(committed)}/s, raw inserts ${Math.round(raw)}/s, ratio ${row.ratio.toFixed(2)}`);
    out.push(row);
  }
  return out;
}
