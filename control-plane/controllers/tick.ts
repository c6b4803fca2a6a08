import { and, eq, inArray, isNull, lt, or, sql } from 'drizzle-orm';
import { randomSuffix, specDigest } from '../../shared/digest.js';
import type { Deployment } from '../../shared/manifest.js';
import type { Deps } from '../context.js';
import { planDeployment, planFinalize, planOrphans } from '../core/deployment.js';
import { planPlacement } from '../core/placement.js';
import type { DeploymentView, NodeView } from '../core/types.js';
import type { Db } from '../store/db.js';
import { insertEvent, pruneEvents } from '../store/events.js';
import { assignPod, bumpNodes, podSnapshotColumns, toPodView } from '../store/pods.js';
import { controllerLocks, deployments, nodeLeases, nodes, pods } from '../store/schema.js';

/** What one tick did, for logs and tests. */
export interface TickResult {
  created: number;
  stopped: number;
  finalized: number;
  assigned: number;
  conflicts: number;
}

type Stmt = Parameters<Db['batch']>[0][number];

/**
 * One pass of every controller: deployments (create/stop pods), orphans, finalization, placement.
 *
 * Concurrency: any number of ticks may run at once on any number of instances. Each Deployment's
 * changes are guarded by a compare-and-set on its plan_version that also writes a stamp unique to
 * this tick; every statement of that Deployment's plan is conditional on the stamp, so a plan made
 * from a stale snapshot changes nothing. Placement is conditional per pod (node_id IS NULL). A
 * conflicting tick reloads and retries, a bounded number of times.
 */
export async function runTick(deps: Deps, maxAttempts = 3): Promise<TickResult> {
  const result: TickResult = { created: 0, stopped: 0, finalized: 0, assigned: 0, conflicts: 0 };
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const conflicts = await tickOnce(deps, result);
    if (conflicts === 0) break;
    result.conflicts += conflicts;
  }
  return result;
}

/**
 * Whether any controller has work, decided inside SQLite with one aggregate query (no rows come back
 * to JavaScript): pods to place, terminating pods to forget, orphans, or a Deployment whose pods do
 * not match its replicas and revision. An idle cluster then costs one cheap query per tick instead of
 * a full snapshot, which at thousands of nodes took long enough to stall the event loop.
 */
export async function hasWork(db: Db, now: number, skewMs: number): Promise<boolean> {
  const row = await db.get<{ work: number }>(sql`SELECT
    EXISTS (SELECT 1 FROM pods WHERE desired = 'run' AND node_id IS NULL)
    OR EXISTS (SELECT 1 FROM pods p WHERE p.desired = 'stop' AND (p.node_id IS NULL OR NOT EXISTS (
         SELECT 1 FROM nodes n JOIN node_leases l ON l.node_id = n.id
         WHERE n.id = p.node_id AND n.revoked_at IS NULL AND l.lease_expires_at >= ${now - skewMs})))
    OR EXISTS (SELECT 1 FROM pods p WHERE p.desired = 'run' AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.id = p.deployment_id))
    OR EXISTS (SELECT 1 FROM deployments d WHERE
         json_extract(d.spec, '$.replicas') != (SELECT count(*) FROM pods p WHERE p.deployment_id = d.id AND p.desired = 'run' AND p.revision = d.revision)
         OR EXISTS (SELECT 1 FROM pods p WHERE p.deployment_id = d.id AND p.desired = 'run' AND p.revision != d.revision))
    AS work`);
  return Boolean(row?.work);
}

async function tickOnce(deps: Deps, result: TickResult): Promise<number> {
  const { db, clock, config } = deps;
  const now = clock();
  if (!(await hasWork(db, now, config.clockSkewMs))) return 0;
  // A narrow snapshot: wide columns (pod specs and statuses, node facts and keys) are what made
  // a tick expensive, and libSQL's native calls block the event loop while rows are read.
  const [depRows, podRows, nodeRows] = await Promise.all([
    db.select().from(deployments).all(),
    db.select(podSnapshotColumns).from(pods).all(),
    db
      .select({ id: nodes.id, name: nodes.name, labels: nodes.labels, lastSeenAt: nodeLeases.lastSeenAt, leaseExpiresAt: nodeLeases.leaseExpiresAt, cordoned: nodes.cordoned })
      .from(nodes)
      .innerJoin(nodeLeases, eq(nodeLeases.nodeId, nodes.id))
      .where(isNull(nodes.revokedAt))
      .all(),
  ]);
  // Specs only for the pods placement needs them for (pending ones).
  const pendingIds = podRows.filter((p) => p.nodeId === null && p.desired === 'run').map((p) => p.id);
  const specs = new Map<string, Record<string, unknown>>();
  for (let i = 0; i < pendingIds.length; i += 500) {
    const rows = await db
      .select({ id: pods.id, spec: pods.spec })
      .from(pods)
      .where(inArray(pods.id, pendingIds.slice(i, i + 500)))
      .all();
    for (const r of rows) specs.set(r.id, r.spec);
  }
  const nodeLease = new Map(nodeRows.map((n) => [n.id, n.leaseExpiresAt]));
  const views = podRows.map((p) => toPodView({ ...p, spec: specs.get(p.id) }, nodeLease));
  const stmts: Stmt[] = [];
  const guards: { depId: string; index: number }[] = [];
  const touched = new Set<string>();
  const newPods: ReturnType<typeof toPodView>[] = [];
  const nodeViews: NodeView[] = nodeRows.map((n) => ({ id: n.id, name: n.name, labels: n.labels, ready: now - n.lastSeenAt <= config.nodeGraceMs, cordoned: n.cordoned }));
  const nameOf = new Map(podRows.map((p) => [p.id, p]));
  const pendingInserts: { depId: string; stamp: string; row: typeof pods.$inferInsert }[] = [];

  for (const d of depRows) {
    const spec = d.spec as Deployment['spec'];
    const view: DeploymentView = { id: d.id, namespace: d.namespace, name: d.name, replicas: spec.replicas, revision: d.revision };
    const plan = planDeployment(view, views);
    if (plan.create === 0 && plan.stop.length === 0) continue;
    const stamp = crypto.randomUUID();
    guards.push({ depId: d.id, index: stmts.length });
    stmts.push(
      db
        .update(deployments)
        .set({ planVersion: d.planVersion + 1, planStamp: stamp })
        .where(and(eq(deployments.id, d.id), eq(deployments.planVersion, d.planVersion), eq(deployments.generation, d.generation)))
        .returning({ id: deployments.id }),
    );
    const hash = d.templateDigest.slice(0, 10);
    for (let i = 0; i < plan.create; i++) {
      const id = crypto.randomUUID();
      const name = `${d.name}-${hash}-${randomSuffix()}`;
      const row = {
        id,
        namespace: d.namespace,
        name,
        deploymentId: d.id,
        workload: d.name,
        revision: d.revision,
        spec: spec.template.spec as Record<string, unknown>,
        specDigest: '',
        labels: { ...spec.template.metadata.labels, 'pod-template-hash': hash },
        createdAt: now,
        updatedAt: now,
      };
      pendingInserts.push({ depId: d.id, stamp, row });
      newPods.push({
        id,
        deploymentId: d.id,
        revision: d.revision,
        nodeId: null,
        desired: 'run',
        phase: 'Pending',
        ready: false,
        createdAt: now,
        leaseExpiresAt: 0,
        nodeSelector: spec.template.spec.nodeSelector ?? {},
      });
    }
    for (const s of plan.stop) {
      const p = nameOf.get(s.podId);
      stmts.push(stopPod(db, s.podId, now, { depId: d.id, stamp }));
      if (p?.nodeId) touched.add(p.nodeId);
      if (p)
        stmts.push(
          insertEvent(db, { namespace: p.namespace, kind: 'Pod', name: p.name, type: 'Normal', reason: 'Killing', message: `stopping pod (${s.reason})`, source: 'deployment-controller', at: now }),
        );
    }
    if (plan.create > 0)
      stmts.push(
        insertEvent(db, {
          namespace: d.namespace,
          kind: 'Deployment',
          name: d.name,
          type: 'Normal',
          reason: 'ScalingReplicaSet',
          message: `creating ${plan.create} pod(s) of revision ${d.revision}`,
          source: 'deployment-controller',
          at: now,
        }),
      );
    result.stopped += plan.stop.length;
  }

  // Orphans: their Deployment is gone.
  for (const id of planOrphans(new Set(depRows.map((d) => d.id)), views)) {
    const p = nameOf.get(id);
    stmts.push(stopPod(db, id, now));
    if (p?.nodeId) touched.add(p.nodeId);
    result.stopped++;
  }
  // Finalize terminating pods that no agent will report on.
  const finalize = planFinalize(views, now, config.clockSkewMs);
  if (finalize.length > 0) {
    // Re-checked in SQL: the node's lease may have been renewed since the snapshot.
    const lapsed = sql`NOT EXISTS (SELECT 1 FROM nodes WHERE nodes.id = ${pods.nodeId} AND nodes.revoked_at IS NULL AND EXISTS (SELECT 1 FROM node_leases l WHERE l.node_id = nodes.id AND l.lease_expires_at >= ${now - config.clockSkewMs}))`;
    stmts.push(db.delete(pods).where(and(inArray(pods.id, finalize), eq(pods.desired, 'stop'), or(isNull(pods.nodeId), lapsed))));
    result.finalized += finalize.length;
  }

  // Placement of pending pods, including the ones this tick creates.
  const live = views.filter((p) => p.desired === 'run');
  const pending = [...live.filter((p) => p.nodeId === null), ...newPods];
  const plan = planPlacement(
    pending,
    nodeViews,
    live.filter((p) => p.nodeId !== null),
  );
  const assigned = new Map(plan.assign.map((a) => [a.podId, a.nodeId]));
  const nodeName = new Map(nodeRows.map((n) => [n.id, n.name]));
  const unschedulable = new Map(plan.unschedulable.map((u) => [u.podId, u.reason]));
  for (const ins of pendingInserts) {
    const nodeId = assigned.get(ins.row.id) ?? null;
    const digest = await podDigest(ins.row.spec);
    const reason = unschedulable.get(ins.row.id) ?? null;
    stmts.push(insertPodGuarded(db, { ...ins.row, specDigest: digest, nodeId, epoch: nodeId ? 1 : 0, reason, message: reason ? 'Unschedulable' : null }, ins.stamp));
    if (nodeId) {
      touched.add(nodeId);
      stmts.push(
        insertEvent(db, {
          namespace: ins.row.namespace,
          kind: 'Pod',
          name: ins.row.name,
          type: 'Normal',
          reason: 'Scheduled',
          message: `assigned to ${nodeName.get(nodeId)}`,
          source: 'scheduler',
          at: now,
        }),
      );
    }
    result.created++;
  }
  for (const a of plan.assign) {
    const existing = nameOf.get(a.podId);
    if (!existing) continue; // created above
    stmts.push(assignPod(db, a.podId, a.nodeId, now));
    stmts.push(
      insertEvent(db, {
        namespace: existing.namespace,
        kind: 'Pod',
        name: existing.name,
        type: 'Normal',
        reason: 'Scheduled',
        message: `assigned to ${nodeName.get(a.nodeId)}`,
        source: 'scheduler',
        at: now,
      }),
    );
    touched.add(a.nodeId);
    result.assigned++;
  }
  for (const u of plan.unschedulable) {
    const existing = nameOf.get(u.podId);
    const row = existing ?? pendingInserts.find((i) => i.row.id === u.podId)?.row;
    if (!row) continue;
    if (existing && existing.reason === u.reason) continue; // unchanged: no write, no duplicate event
    if (existing)
      stmts.push(
        db
          .update(pods)
          .set({ reason: u.reason, message: 'Unschedulable', updatedAt: now })
          .where(and(eq(pods.id, u.podId), isNull(pods.nodeId))),
      );
    stmts.push(insertEvent(db, { namespace: row.namespace, kind: 'Pod', name: row.name, type: 'Warning', reason: 'FailedScheduling', message: u.reason, source: 'scheduler', at: now }));
  }
  if (touched.size > 0) stmts.push(bumpNodes(db, [...touched]));
  // Pruning old events is housekeeping: at most once a minute per instance, in a batch with real work.
  if (stmts.length > 0 && now - (lastPrune.get(deps.cluster) ?? 0) > 60_000) {
    stmts.push(pruneEvents(db, now - config.eventRetentionMs));
    lastPrune.set(deps.cluster, now);
  }

  const res = stmts.length > 0 ? await db.batch(stmts as [Stmt, ...Stmt[]]) : [];
  let conflicts = 0;
  for (const g of guards) if (((res[g.index] as unknown[]) ?? []).length !== 1) conflicts++;
  if (touched.size > 0) deps.notifier?.notify(touched);
  return conflicts;
}

/** When this instance last pruned events, per cluster. */
const lastPrune = new WeakMap<object, number>();

/** Marks a pod terminating; with a guard, only if the Deployment still carries this tick's stamp. */
function stopPod(db: Db, podId: string, now: number, guard?: { depId: string; stamp: string }) {
  const cond = guard
    ? and(eq(pods.id, podId), eq(pods.desired, 'run'), sql`EXISTS (SELECT 1 FROM deployments WHERE id = ${guard.depId} AND plan_stamp = ${guard.stamp})`)
    : and(eq(pods.id, podId), eq(pods.desired, 'run'));
  return db.update(pods).set({ desired: 'stop', deletionRequestedAt: now, updatedAt: now }).where(cond);
}

/** Inserts a pod only if the Deployment still carries this tick's stamp. */
function insertPodGuarded(db: Db, row: typeof pods.$inferInsert, stamp: string) {
  const cols = [
    'id',
    'namespace',
    'name',
    'deployment_id',
    'workload',
    'revision',
    'spec',
    'spec_digest',
    'labels',
    'node_id',
    'epoch',
    'desired',
    'phase',
    'ready',
    'reason',
    'message',
    'created_at',
    'updated_at',
  ];
  const vals = [
    row.id,
    row.namespace,
    row.name,
    row.deploymentId,
    row.workload,
    row.revision,
    JSON.stringify(row.spec),
    row.specDigest,
    JSON.stringify(row.labels ?? {}),
    row.nodeId ?? null,
    row.epoch ?? 0,
    'run',
    'Pending',
    0,
    row.reason ?? null,
    row.message ?? null,
    row.createdAt,
    row.updatedAt,
  ];
  return db.run(
    sql`INSERT INTO pods (${sql.raw(cols.join(', '))}) SELECT ${sql.join(
      vals.map((v) => sql`${v}`),
      sql`, `,
    )} WHERE EXISTS (SELECT 1 FROM deployments WHERE id = ${row.deploymentId} AND plan_stamp = ${stamp})`,
  );
}

const digestCache = new WeakMap<object, string>();
async function podDigest(spec: Record<string, unknown>): Promise<string> {
  const hit = digestCache.get(spec);
  if (hit) return hit;
  const d = await specDigest(spec);
  digestCache.set(spec, d);
  return d;
}

/**
 * Runs a tick if none ran in the last tick interval (a DB-held rate limit shared by all instances).
 * Used to piggyback controller work on agent requests.
 */
export async function maybeTick(deps: Deps): Promise<TickResult | null> {
  const { db, clock, config } = deps;
  const now = clock();
  const won = await db
    .insert(controllerLocks)
    .values({ name: 'tick', until: now + config.tickIntervalMs })
    .onConflictDoUpdate({ target: controllerLocks.name, set: { until: now + config.tickIntervalMs }, setWhere: lt(controllerLocks.until, now) })
    .returning({ until: controllerLocks.until });
  if (won.length === 0) return null;
  return runTick(deps);
}
