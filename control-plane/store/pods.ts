import { and, eq, inArray, isNull, type SQL, sql } from 'drizzle-orm';
import type { SQLiteColumn } from 'drizzle-orm/sqlite-core';
import type { PodSpec } from '../../shared/manifest.js';
import { CRASH_LOOP_RESTARTS, type RolloutPods } from '../core/rollout.js';
import type { PodConstraints, PodView, Scoring } from '../core/types.js';
import { chunkRows, type Db, type Page, type PageQuery, readPage } from './db.js';
import { nodes, pods } from './schema.js';

/** A stored pod row. */
export type PodRow = typeof pods.$inferSelect;

/** The pod columns controllers need (no spec or status: those are large and rarely needed). */
export const podSnapshotColumns = {
  id: pods.id,
  namespace: pods.namespace,
  name: pods.name,
  deploymentId: pods.deploymentId,
  revision: pods.revision,
  nodeId: pods.nodeId,
  desired: pods.desired,
  phase: pods.phase,
  ready: pods.ready,
  readySince: pods.readySince,
  restarts: pods.restarts,
  reason: pods.reason,
  createdAt: pods.createdAt,
  cpuRequest: pods.cpuRequest,
  memoryRequest: pods.memoryRequest,
  hostPorts: pods.hostPorts,
  policy: pods.policy,
  pinnedNode: pods.pinnedNode,
};
/** A pod as the controllers' snapshot holds it. */
export type PodSnapshot = { [K in keyof typeof podSnapshotColumns]: PodRow[K] };

/** The scheduling constraints of a pod spec. */
export function constraintsOf(spec: PodSpec, scoring: Scoring): PodConstraints {
  return {
    nodeSelector: spec.nodeSelector ?? {},
    affinityTerms: (spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? []).map((t) => t.matchExpressions),
    tolerations: spec.tolerations ?? [],
    topologySpread: spec.topologySpreadConstraints ?? [],
    scoring,
  };
}

/** Projects a pod to the view the pure core uses; its lease expiry is its node's. Constraints only when the spec is given. */
export function toPodView(r: PodSnapshot & { spec?: Record<string, unknown> }, nodeLease: ReadonlyMap<string, number>, scoring: Scoring = 'MostAllocated'): PodView {
  return {
    id: r.id,
    deploymentId: r.deploymentId,
    revision: r.revision,
    nodeId: r.nodeId,
    desired: r.desired,
    phase: r.phase,
    ready: r.ready,
    readySince: r.readySince,
    restarts: r.restarts,
    createdAt: r.createdAt,
    leaseExpiresAt: r.nodeId ? (nodeLease.get(r.nodeId) ?? 0) : 0,
    cpu: r.cpuRequest,
    memory: r.memoryRequest,
    hostPorts: r.hostPorts,
    policy: r.policy,
    pinnedNode: r.pinnedNode,
    ...(r.spec ? { constraints: constraintsOf(r.spec as PodSpec, scoring) } : {}),
  };
}

/** Pods of one namespace (or all), optionally of one node. */
export function listPods(db: Db, q: { namespace?: string; nodeId?: string } = {}): Promise<PodRow[]> {
  const conds = [];
  if (q.namespace !== undefined) conds.push(eq(pods.namespace, q.namespace));
  if (q.nodeId !== undefined) conds.push(eq(pods.nodeId, q.nodeId));
  return db
    .select()
    .from(pods)
    .where(and(...conds))
    .orderBy(pods.namespace, pods.name)
    .all();
}

/**
 * Pods ordered by namespace and name, one page read in SQL (the (namespace, name) index: a page of
 * 100 reads 101 rows, not the cluster). `namespaces` limits them to the ones a token may see.
 */
export async function listPodsPage(db: Db, q: PageQuery & { namespace?: string; namespaces?: readonly string[] | null }): Promise<Page<PodRow>> {
  if (q.namespaces && q.namespaces.length === 0) return { rows: [], remaining: 0 };
  const scope = and(q.namespace !== undefined ? eq(pods.namespace, q.namespace) : undefined, q.namespaces ? inArray(pods.namespace, [...q.namespaces]) : undefined);
  const after = (k: readonly [string, string]) => keyAfter(pods.namespace, pods.name, k, q.namespace);
  const base = db
    .select()
    .from(pods)
    .where(and(scope, q.after ? after(q.after) : undefined))
    .orderBy(pods.namespace, pods.name);
  return readPage(
    q.limit,
    (n) => (n ? base.limit(n) : base).all(),
    (last) =>
      db
        .select({ n: sql<number>`COUNT(*)` })
        .from(pods)
        .where(and(scope, after([last.namespace, last.name]))),
  );
}

/**
 * SQL: [namespace, name] after `k`. Within one namespace it is a range on the name (SQLite's planner
 * does not use a row-value range after an equality on the index's first column).
 */
export function keyAfter(nsCol: SQLiteColumn, nameCol: SQLiteColumn, k: readonly [string, string], namespace?: string): SQL {
  if (namespace === undefined) return sql`(${nsCol}, ${nameCol}) > (${k[0]}, ${k[1]})`;
  if (k[0] < namespace) return sql`1 = 1`;
  if (k[0] > namespace) return sql`0 = 1`;
  return sql`${nameCol} > ${k[1]}`;
}

/** SQL: [namespace, name] at or before `k` (see `keyAfter`). */
export function keyThrough(nsCol: SQLiteColumn, nameCol: SQLiteColumn, k: readonly [string, string], namespace?: string): SQL {
  if (namespace === undefined) return sql`(${nsCol}, ${nameCol}) <= (${k[0]}, ${k[1]})`;
  if (k[0] < namespace) return sql`0 = 1`;
  if (k[0] > namespace) return sql`1 = 1`;
  return sql`${nameCol} <= ${k[1]}`;
}

/** What a Deployment's or DaemonSet's status counts need of its pods (no spec or status JSON). */
export const workloadPodColumns = {
  deploymentId: pods.deploymentId,
  desired: pods.desired,
  nodeId: pods.nodeId,
  revision: pods.revision,
  ready: pods.ready,
  readySince: pods.readySince,
};
export type WorkloadPod = { [K in keyof typeof workloadPodColumns]: PodRow[K] };

/** The pods a workload's status counts (`deploymentIds`), or every workload's of a namespace. */
export async function workloadPods(db: Db, q: { namespace?: string; deploymentIds?: readonly string[] }): Promise<WorkloadPod[]> {
  if (q.deploymentIds && q.deploymentIds.length === 0) return [];
  const running = eq(pods.desired, 'run');
  if (!q.deploymentIds)
    return db
      .select(workloadPodColumns)
      .from(pods)
      .where(and(running, q.namespace !== undefined ? eq(pods.namespace, q.namespace) : undefined))
      .all();
  const out: WorkloadPod[] = [];
  for (const ids of chunkRows(db, [...q.deploymentIds], 1))
    out.push(
      ...(await db
        .select(workloadPodColumns)
        .from(pods)
        .where(and(running, inArray(pods.deploymentId, ids)))
        .all()),
    );
  return out;
}

/** Workload pods grouped by their Deployment or DaemonSet. */
export function podsByWorkload(rows: readonly WorkloadPod[]): Map<string, WorkloadPod[]> {
  const out = new Map<string, WorkloadPod[]>();
  for (const r of rows) {
    if (!r.deploymentId) continue;
    const list = out.get(r.deploymentId);
    if (list) list.push(r);
    else out.set(r.deploymentId, [r]);
  }
  return out;
}

/**
 * The pods of workloads as their rollouts count them (`RolloutPods`), counted in SQL: one grouped
 * pass over the workloads' pods by the deployment index, and the first crash-looping or failed pod
 * of the current revision (by id, as the snapshot's order has it). What lets a tick whose only work
 * is assessing rollouts skip reading every pod.
 */
export async function rolloutPodCounts(db: Db, deploymentIds: readonly string[], now: number): Promise<Map<string, RolloutPods>> {
  const out = new Map<string, RolloutPods>();
  for (const ids of chunkRows(db, [...deploymentIds], 1, 4)) {
    const rows = await db.all<{ id: string; live: number; updated: number; available: number; crashing: string | null }>(sql`
      SELECT d.id AS id,
        COUNT(p.id) AS live,
        COALESCE(SUM(p.revision = d.revision), 0) AS updated,
        COALESCE(SUM(p.revision = d.revision AND p.ready = 1 AND p.ready_since IS NOT NULL
          AND ${now} - p.ready_since >= COALESCE(json_extract(d.spec, '$.minReadySeconds'), 0) * 1000), 0) AS available,
        (SELECT json_object('phase', c.phase, 'restarts', c.restarts) FROM pods c
          WHERE c.deployment_id = d.id AND c.desired = 'run' AND c.revision = d.revision AND (c.restarts >= ${CRASH_LOOP_RESTARTS} OR c.phase = 'Failed')
          ORDER BY c.id LIMIT 1) AS crashing
      FROM deployments d LEFT JOIN pods p ON p.deployment_id = d.id AND p.desired = 'run'
      WHERE d.id IN (${sql.join(
        ids.map((id) => sql`${id}`),
        sql`, `,
      )})
      GROUP BY d.id`);
    for (const r of rows)
      out.set(r.id, { live: Number(r.live), updated: Number(r.updated), available: Number(r.available), crashing: r.crashing ? (JSON.parse(r.crashing) as RolloutPods['crashing']) : null });
  }
  return out;
}

/**
 * Pods to run per node (`desired = run`), counted in SQL: of the given nodes (a page of the node
 * list: by the node index), or of every node.
 */
export async function podCountsByNode(db: Db, nodeIds?: readonly string[]): Promise<Map<string, number>> {
  const count = (where: SQL | undefined) =>
    db
      .select({ nodeId: pods.nodeId, n: sql<number>`COUNT(*)` })
      .from(pods)
      .where(and(eq(pods.desired, 'run'), where))
      .groupBy(pods.nodeId)
      .all();
  const rows = nodeIds ? (await Promise.all(chunkRows(db, [...nodeIds], 1, 1).map((ids) => count(inArray(pods.nodeId, ids))))).flat() : await count(sql`${pods.nodeId} IS NOT NULL`);
  return new Map(rows.map((r) => [r.nodeId as string, Number(r.n)]));
}

/** The pods a node is to run (status.pods of a node: the same count as the node list's). */
export async function podCountOf(db: Db, nodeId: string): Promise<number> {
  return (await podCountsByNode(db, [nodeId])).get(nodeId) ?? 0;
}

/** One pod by namespace and name. */
export function getPod(db: Db, namespace: string, name: string): Promise<PodRow | undefined> {
  return db
    .select()
    .from(pods)
    .where(and(eq(pods.namespace, namespace), eq(pods.name, name)))
    .get();
}

/** What a lease is signed over. */
export const leaseSubjectColumns = {
  id: pods.id,
  nodeId: pods.nodeId,
  namespace: pods.namespace,
  workload: pods.workload,
  revision: pods.revision,
  specDigest: pods.specDigest,
  epoch: pods.epoch,
  policy: pods.policy,
};
/** A pod as lease signing needs it. */
export type LeaseSubject = { [K in keyof typeof leaseSubjectColumns]: PodRow[K] };

/** Lease subjects of the pods the given nodes should run, grouped by node (queries chunked under the parameter limit). */
export async function leaseSubjectsOf(db: Db, nodeIds: readonly string[]): Promise<Map<string, LeaseSubject[]>> {
  const out = new Map<string, LeaseSubject[]>(nodeIds.map((id) => [id, []]));
  for (const ids of chunkRows(db, nodeIds, 1, 1)) {
    const rows = await db
      .select(leaseSubjectColumns)
      .from(pods)
      .where(and(inArray(pods.nodeId, ids as string[]), eq(pods.desired, 'run')))
      .all();
    for (const r of rows) out.get(r.nodeId as string)?.push(r);
  }
  return out;
}

/** Pods a node should run now: assigned to it and not terminating. */
export function desiredPodsOf(db: Db, nodeId: string): Promise<PodRow[]> {
  return db
    .select()
    .from(pods)
    .where(and(eq(pods.nodeId, nodeId), eq(pods.desired, 'run')))
    .orderBy(pods.name)
    .all();
}

/**
 * Images a node should pull ahead of a rollout: those of the current template of every workload
 * that still has pods of an older revision on the node, so that when an old pod is stopped its
 * replacement starts from a local image (the unavailable window is the container start, not the
 * download).
 */
export async function prefetchImagesOf(db: Db, nodeId: string): Promise<{ namespace: string; workload: string; image: string }[]> {
  // Driven from the node's own pods (CROSS JOIN keeps that order): from the workloads instead, the
  // planner scanned every pod of a large workload by its deployment index on each desired-state read.
  const rows = await db.all<{ namespace: string; workload: string; image: string }>(sql`SELECT DISTINCT d.namespace AS namespace, d.name AS workload, json_extract(c.value, '$.image') AS image
    FROM (SELECT DISTINCT p.deployment_id AS id FROM pods p CROSS JOIN deployments w ON w.id = p.deployment_id WHERE p.node_id = ${nodeId} AND p.revision != w.revision) o
    CROSS JOIN deployments d ON d.id = o.id, json_each(d.spec, '$.template.spec.containers') c`);
  return rows.filter((r) => typeof r.image === 'string').slice(0, 256);
}

/** Bumps the desired-state version (the agent's ETag) of nodes: statements, chunked under the parameter limit. */
export function bumpNodes(db: Db, nodeIds: readonly string[]) {
  return chunkRows(db, nodeIds, 1, 1).map((ids) =>
    db
      .update(nodes)
      .set({ desiredVersion: sql`${nodes.desiredVersion} + 1` })
      .where(inArray(nodes.id, [...ids])),
  );
}

/** Assigns a pending pod to a node with a fresh epoch; a no-op if someone else placed it. */
export function assignPod(db: Db, podId: string, nodeId: string, now: number) {
  return db
    .update(pods)
    .set({ nodeId, epoch: sql`${pods.epoch} + 1`, reason: null, message: null, updatedAt: now })
    .where(and(eq(pods.id, podId), isNull(pods.nodeId), eq(pods.desired, 'run')))
    .returning({ id: pods.id, nodeId: pods.nodeId });
}

/**
 * Releases a pod whose node lost contact: back to Pending with no node, only if the node's lease
 * (whatever the node's revocation) expired more than the skew margin ago, checked in SQL at commit.
 * The next assignment bumps the epoch, so the old holder's lease is fenced twice: by time and epoch.
 */
export function releaseLostPod(db: Db, podId: string, nodeId: string, now: number, skewMs: number) {
  return db
    .update(pods)
    .set({ nodeId: null, phase: 'Pending', ready: false, status: null, reason: 'NodeLost', message: 'node stopped renewing its leases; rescheduling', updatedAt: now })
    .where(
      and(eq(pods.id, podId), eq(pods.nodeId, nodeId), eq(pods.desired, 'run'), sql`NOT EXISTS (SELECT 1 FROM node_leases l WHERE l.node_id = ${nodeId} AND l.lease_expires_at >= ${now - skewMs})`),
    );
}

/** The specs of the given pods, by id (queries chunked under the parameter limit). */
export async function specsOf(db: Db, ids: readonly string[]): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const chunk of chunkRows(db, ids, 1)) {
    const rows = await db
      .select({ id: pods.id, spec: pods.spec })
      .from(pods)
      .where(inArray(pods.id, [...chunk]))
      .all();
    for (const r of rows) out.set(r.id, r.spec);
  }
  return out;
}
