import { and, eq, gt, inArray, isNull, lt, or, SQL, type SQLChunk, StringChunk, sql } from 'drizzle-orm';
import { randomSuffix, specDigest } from '../../shared/digest.js';
import {
  claimNames,
  type DaemonSet,
  type Deployment,
  disconnectPolicy,
  type PodSpec,
  podHostPorts,
  podRequests,
  resolveIntOrPercent,
  rolloutBounds,
  rolloutPolicyOf,
  SCORING_ANNOTATION,
  type Workload,
} from '../../shared/manifest.js';
import type { Deps } from '../context.js';
import { type DeploymentPlan, daemonSetEligible, planDaemonSet, planDeployment, planEvictions, planFinalize, planOrphans, planTaintEvictions } from '../core/deployment.js';
import { assessRollout, canaryLimit, type RolloutPolicy, type RolloutSubject } from '../core/rollout.js';
import { allocatableOf, type SchedulePlan, schedule } from '../core/scheduler.js';
import type { DeploymentView, NodeView, PodView, Scoring } from '../core/types.js';
import { pruneChanges } from '../store/changes.js';
import { type ClaimRow, claimsOf, finalizeClaims } from '../store/claims.js';
import { chunkRows, type Db } from '../store/db.js';
import { type EventInput, insertEvent, insertEvents, pruneEvents } from '../store/events.js';
import { fleetVersionSql } from '../store/meta.js';
import { assignPod, bumpNodes, constraintsOf, podSnapshotColumns, releaseLostPod, rolloutPodCounts, specsOf, toPodView } from '../store/pods.js';
import { controllerLocks, deployments, nodeLeases, nodes, pods, type RolloutRecord, revisions, volumeClaims } from '../store/schema.js';
import { serviceConsumers } from '../store/services.js';

import { applyWorkload, manifestOf } from '../store/workloads.js';

/** What one tick did, for logs and tests. */
export interface TickResult {
  created: number;
  stopped: number;
  finalized: number;
  assigned: number;
  evicted: number;
  conflicts: number;
  /** Which controllers had work (`workReasons`); empty for an idle tick. */
  work: string[];
  /** Whether the tick read the full snapshot (every pod and node); node conditions and rollouts alone do not. */
  snapshot: boolean;
  /** Node Ready <-> NotReady transitions recorded. */
  nodeTransitions: number;
  /** Pods planned but left to the next tick: this one created its `tickBurst`. */
  deferred: number;
}

type Stmt = Parameters<Db['batch']>[0][number];
/** A stored workload spec: a Deployment's (with replicas) or a DaemonSet's. */
type WorkloadSpec = Deployment['spec'] | (DaemonSet['spec'] & { replicas?: undefined });

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
  const result: TickResult = { created: 0, stopped: 0, finalized: 0, assigned: 0, evicted: 0, conflicts: 0, work: [], snapshot: false, nodeTransitions: 0, deferred: 0 };
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const conflicts = await tickOnce(deps, result);
    if (conflicts === 0) break;
    result.conflicts += conflicts;
  }
  return result;
}

/**
 * Whether any controller has work, decided inside SQLite with one aggregate query (no rows come back
 * to JavaScript; each predicate is driven by an index or a narrow table: lost nodes from their
 * leases (every node has its lease row from enrollment, and nodes are never deleted), draining from
 * the nodes (`CROSS JOIN` keeps that order), workloads' pods from `pods_workload` alone, so the check
 * costs about 1 ms at 2,500 pods instead of 14-22 ms): pods to place, deleted claims no pod uses any more, terminating pods to forget, orphans, pods of lost nodes to move,
 * node conditions to record, draining nodes with Deployment pods, a Deployment whose pods do not
 * match its replicas and revision, a DaemonSet planned against an older fleet or missing pods, or
 * a rollout still to assess (progressing, held, resumed after a pause or a failure, or failed with
 * every pod now Ready: it may have completed after all). A paused Deployment, an OnDelete DaemonSet
 * and a DaemonSet wave halted by a failure are idle however many old pods they keep.
 * An idle cluster then costs one cheap query per tick instead of a full snapshot, which at
 * thousands of nodes took long enough to stall the event loop.
 */
export async function hasWork(db: Db, now: number, skewMs: number, graceMs: number): Promise<boolean> {
  return (await workReasons(db, now, skewMs, graceMs)).length > 0;
}

/**
 * A workload (`d`) whose rollout is still to assess: progressing, held, resumed after a pause or a
 * failure, or failed with every pod now Ready (it may have completed after all).
 */
const rolloutDue = sql.raw(`d.rollout IS NULL
         OR json_extract(d.rollout, '$.revision') != d.revision
         OR json_extract(d.rollout, '$.state') IN ('Progressing', 'CanaryHold')
         OR (json_extract(d.rollout, '$.state') = 'Paused' AND COALESCE(json_extract(d.spec, '$.paused'), 0) = 0)
         OR (d.kind = 'Deployment' AND json_extract(d.rollout, '$.state') = 'Failed' AND json_extract(d.rollout, '$.pausedOnFailure') = 1 AND COALESCE(json_extract(d.spec, '$.paused'), 0) = 0)
         OR (json_extract(d.rollout, '$.state') = 'Failed' AND json_extract(d.rollout, '$.pausedOnFailure') IS NULL
             AND NOT EXISTS (SELECT 1 FROM pods p WHERE p.deployment_id = d.id AND p.desired = 'run' AND (p.revision != d.revision OR p.ready = 0)))`);

/**
 * Nodes whose recorded Ready condition is stale (`id`, `name`, and `ready`: what it is now): recorded
 * Ready but renewed before `since`, or recorded NotReady but renewed since. Both halves are read by
 * index (`node_leases_seen`, `nodes_not_ready`), so the cost is the stale and the NotReady nodes, not
 * the fleet: a scan of every node row took 8 ms at 6,000 nodes, in every work check. The unary `+`
 * keeps SQLite from driving the query by `nodes_revoked`, which every live node is in.
 */
function staleConditions(since: number) {
  return sql`SELECT n.id AS id, n.name AS name, 0 AS ready FROM node_leases l JOIN nodes n ON n.id = l.node_id
      WHERE l.last_seen_at < ${since} AND n.ready = 1 AND +n.revoked_at IS NULL
    UNION ALL
    SELECT n.id AS id, n.name AS name, 1 AS ready FROM nodes n JOIN node_leases l ON l.node_id = n.id
      WHERE n.ready = 0 AND +n.revoked_at IS NULL AND +l.last_seen_at >= ${since}`;
}

/** Which controllers have work (see `hasWork`), by name: what a slow tick's log line says it did. */
export async function workReasons(db: Db, now: number, skewMs: number, graceMs: number): Promise<string[]> {
  const row = await db.get<Record<string, number>>(sql`SELECT
    EXISTS (SELECT 1 FROM pods WHERE desired = 'run' AND node_id IS NULL) AS pending,
    EXISTS (SELECT 1 FROM volume_claims c WHERE c.deletion_requested_at IS NOT NULL AND c.phase != 'Releasing' AND NOT EXISTS (
         SELECT 1 FROM pods p, json_each(p.spec, '$.volumes') v
         WHERE p.namespace = c.namespace AND json_extract(v.value, '$.persistentVolumeClaim.claimName') = c.name)) AS deletedClaims,
    EXISTS (SELECT 1 FROM pods p WHERE p.desired = 'stop' AND (p.node_id IS NULL OR NOT EXISTS (
         SELECT 1 FROM nodes n JOIN node_leases l ON l.node_id = n.id
         WHERE n.id = p.node_id AND n.revoked_at IS NULL AND l.lease_expires_at >= ${now - skewMs}))) AS terminating,
    EXISTS (SELECT 1 FROM node_leases l CROSS JOIN pods p ON p.node_id = l.node_id
         WHERE l.lease_expires_at < ${now - skewMs} AND p.desired = 'run' AND p.policy = 'stop') AS lostNodes,
    EXISTS (SELECT 1 FROM pods p WHERE p.desired = 'run' AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.id = p.deployment_id)) AS orphans,
    EXISTS (SELECT 1 FROM (${staleConditions(now - graceMs)})) AS nodeConditions,
    EXISTS (SELECT 1 FROM nodes n WHERE n.taints != '[]' AND +n.revoked_at IS NULL AND n.taints LIKE '%NoExecute%' AND EXISTS (
         SELECT 1 FROM json_each(n.taints) t JOIN pods p ON p.node_id = n.id
         WHERE json_extract(t.value, '$.effect') = 'NoExecute' AND p.desired = 'run' AND p.pinned_node IS NULL
           AND NOT EXISTS (SELECT 1 FROM json_each(p.spec, '$.tolerations') o
             WHERE COALESCE(json_extract(o.value, '$.effect'), 'NoExecute') = 'NoExecute'
               AND json_extract(o.value, '$.tolerationSeconds') IS NULL
               AND ((json_extract(o.value, '$.operator') = 'Exists'
                     AND (COALESCE(json_extract(o.value, '$.key'), '') = '' OR json_extract(o.value, '$.key') = json_extract(t.value, '$.key')))
                 OR (json_extract(o.value, '$.operator') = 'Equal' AND json_extract(o.value, '$.key') = json_extract(t.value, '$.key')
                     AND COALESCE(json_extract(o.value, '$.value'), '') = COALESCE(json_extract(t.value, '$.value'), '')))))) AS noExecuteTaints,
    EXISTS (SELECT 1 FROM nodes n CROSS JOIN pods p ON p.node_id = n.id JOIN deployments d ON d.id = p.deployment_id
         WHERE n.draining = 1 AND p.desired = 'run' AND d.kind = 'Deployment') AS draining,
    EXISTS (SELECT 1 FROM deployments d WHERE d.kind = 'Deployment' AND CASE WHEN COALESCE(json_extract(d.spec, '$.paused'), 0) = 1
         THEN json_extract(d.spec, '$.replicas') != (SELECT count(*) FROM pods p WHERE p.deployment_id = d.id AND p.desired = 'run')
         ELSE json_extract(d.spec, '$.replicas') != (SELECT count(*) FROM pods p WHERE p.deployment_id = d.id AND p.desired = 'run' AND p.revision = d.revision)
           OR EXISTS (SELECT 1 FROM pods p WHERE p.deployment_id = d.id AND p.desired = 'run' AND p.revision != d.revision) END) AS deployments,
    EXISTS (SELECT 1 FROM deployments d WHERE d.kind = 'DaemonSet' AND (
         d.observed_fleet != ${fleetVersionSql}
         OR d.want != (SELECT count(*) FROM pods p WHERE p.deployment_id = d.id AND p.desired = 'run' AND p.revision = d.revision)
         OR (EXISTS (SELECT 1 FROM pods p WHERE p.deployment_id = d.id AND p.desired = 'run' AND p.revision != d.revision)
             AND COALESCE(json_extract(d.spec, '$.updateStrategy.type'), 'RollingUpdate') = 'RollingUpdate'
             AND NOT (COALESCE(json_extract(d.rollout, '$.revision'), -1) = d.revision AND json_extract(d.rollout, '$.state') = 'Failed' AND json_extract(d.rollout, '$.pausedOnFailure') = 1)))) AS daemonSets,
    EXISTS (SELECT 1 FROM deployments d WHERE ${rolloutDue}) AS rollouts`);
  return Object.entries(row ?? {})
    .filter(([, v]) => Boolean(v))
    .map(([k]) => k);
}

async function tickOnce(deps: Deps, result: TickResult): Promise<number> {
  const { db, clock, config } = deps;
  const now = clock();
  deps.metrics?.inc('flotilla_controller_ticks_total');
  // Housekeeping, at most once a minute per instance, with or without other work (an idle cluster
  // whose pods' statuses change still grows the change log): old events and watch history.
  if (now - (lastPrune.get(deps.cluster) ?? 0) > 60_000) {
    lastPrune.set(deps.cluster, now);
    await db.batch([pruneEvents(db, now - config.eventRetentionMs), ...pruneChanges(db, config.watchRetentionMs)]);
  }
  const work = await workReasons(db, now, config.clockSkewMs, config.nodeGraceMs);
  if (work.length === 0) return 0;
  for (const w of work) if (!result.work.includes(w)) result.work.push(w);
  deps.metrics?.inc('flotilla_controller_ticks_with_work_total');
  // Node conditions and rollouts are read and written in SQL, without the snapshot: at thousands of
  // agents they are what most ticks have to do (late heartbeats, a fleet-wide rollout's pods
  // turning Ready), and a full snapshot for each stalled the heartbeats behind it.
  if (work.includes('nodeConditions')) result.nodeTransitions += await recordNodeConditions(deps, now);
  const rest = work.filter((w) => w !== 'nodeConditions');
  if (rest.length === 0) return 0;
  if (rest.every((w) => w === 'rollouts')) {
    await assessRollouts(deps, now);
    return 0;
  }
  result.snapshot = true;
  // Claims whose deletion waits for their last pod: Retain ones go, Delete ones are released to their node.
  const released = await finalizeClaims(db, now);
  if (released.length > 0) deps.notifier?.notify(released);
  // A narrow snapshot: wide columns (pod specs and statuses, node facts and keys) are what made
  // a tick expensive, and libSQL's native calls block the event loop while rows are read.
  // Pods and nodes are read in pages by primary key, yielding between pages: at 10,000 nodes one
  // read took over a second, and every heartbeat waited behind it.
  const depRows = await db.select().from(deployments).all();
  const podRows = await paged((after, n) => db.select(podSnapshotColumns).from(pods).where(gt(pods.id, after)).orderBy(pods.id).limit(n).all());
  const nodeRows = await paged((after, n) =>
    db
      .select({
        id: nodes.id,
        name: nodes.name,
        labels: nodes.labels,
        taints: nodes.taints,
        allocatable: nodes.allocatable,
        cpus: sql<number | null>`json_extract(${nodes.facts}, '$.cpus')`,
        memoryBytes: sql<number | null>`json_extract(${nodes.facts}, '$.memoryBytes')`,
        os: sql<string | null>`json_extract(${nodes.facts}, '$.os')`,
        arch: sql<string | null>`json_extract(${nodes.facts}, '$.arch')`,
        revokedAt: nodes.revokedAt,
        draining: nodes.draining,
        lastSeenAt: nodeLeases.lastSeenAt,
        leaseExpiresAt: nodeLeases.leaseExpiresAt,
        cordoned: nodes.cordoned,
      })
      .from(nodes)
      .innerJoin(nodeLeases, eq(nodeLeases.nodeId, nodes.id))
      .where(gt(nodes.id, after))
      .orderBy(nodes.id)
      .limit(n)
      .all(),
  );
  const fleetRow = await db.get<{ v: number }>(sql`SELECT ${fleetVersionSql} AS v`);
  const fleetVersion = Number(fleetRow?.v ?? 0);
  const scoringOf = new Map(depRows.map((d) => [d.id, (d.annotations[SCORING_ANNOTATION] as Scoring | undefined) ?? config.scoring]));
  // Specs only for the pods placement needs them for (pending ones).
  const specs = await specsOf(
    db,
    podRows.filter((p) => p.nodeId === null && p.desired === 'run').map((p) => p.id),
  );
  // A lease is its node's, revoked or not: a revoked node's agent may hold leases until they expire.
  const nodeLease = new Map(nodeRows.map((n) => [n.id, n.leaseExpiresAt]));
  let views = podRows.map((p) => toPodView({ ...p, spec: specs.get(p.id) }, nodeLease, scoringOf.get(p.deploymentId)));
  const stmts: Stmt[] = [];
  const evs: EventInput[] = [];
  const guards: { depId: string; index: number }[] = [];
  const touched = new Set<string>();
  const newPods: PodView[] = [];
  // Pods this tick may still create (FLOTILLA_TICK_BURST): a tick commits in one transaction, and
  // creating 6,000 pods in one blocked a Node control plane's event loop for 3.5 s.
  let burst = config.tickBurst > 0 ? config.tickBurst : Number.POSITIVE_INFINITY;
  const liveNodes = nodeRows.filter((n) => n.revokedAt === null);
  const liveIds = new Set(liveNodes.map((n) => n.id));
  const nodeViews: NodeView[] = liveNodes.map((n) => ({
    id: n.id,
    name: n.name,
    labels: { ...(n.os ? { 'kubernetes.io/os': n.os } : {}), ...(n.arch ? { 'kubernetes.io/arch': n.arch } : {}), ...n.labels, 'kubernetes.io/hostname': n.name },
    taints: n.taints,
    allocatable: allocatableOf(n, { cpu: config.reservedCpu, memory: config.reservedMemory }),
    ready: now - n.lastSeenAt <= config.nodeGraceMs,
    cordoned: n.cordoned,
    draining: n.draining,
  }));
  const draining = new Set(liveNodes.filter((n) => n.draining).map((n) => n.id));
  const nameOf = new Map(podRows.map((p) => [p.id, p]));
  const nodeName = new Map(nodeRows.map((n) => [n.id, n.name]));
  const pendingInserts: { depId: string; stamp: string; row: typeof pods.$inferInsert }[] = [];

  // Node loss: `stop` pods whose node's lease lapsed more than the skew margin ago go back to Pending.
  const evicted = new Set<string>();
  for (const p of planEvictions(views, now, config.clockSkewMs)) {
    const row = nameOf.get(p.id);
    if (!row || !p.nodeId) continue;
    stmts.push(releaseLostPod(db, p.id, p.nodeId, now, config.clockSkewMs));
    evs.push({
      namespace: row.namespace,
      kind: 'Pod',
      name: row.name,
      type: 'Warning',
      reason: 'NodeLost',
      message: `node ${nodeName.get(p.nodeId) ?? p.nodeId} lost its lease; rescheduling`,
      source: 'node-controller',
      at: now,
    });
    evicted.add(p.id);
    result.evicted++;
  }
  if (evicted.size > 0) {
    // Evicted pods need their specs to be placed in this same tick.
    for (const [id, spec] of await specsOf(db, [...evicted])) specs.set(id, spec);
    views = views.map((v) => (evicted.has(v.id) ? { ...v, nodeId: null, ready: false, constraints: constraintsOf(specs.get(v.id) as PodSpec, scoringOf.get(v.deploymentId) ?? config.scoring) } : v));
  }

  const takenNames = new Set(podRows.map((p) => `${p.namespace}/${p.name}`));
  // NoExecute taints: pods without a toleration (or past their tolerationSeconds) are evicted, as
  // Kubernetes' taint manager does; their workload replaces them (elsewhere: the taint filters).
  // DaemonSet pods are left to the DaemonSet controller, whose eligibility includes NoExecute.
  const taintsOf = new Map(liveNodes.filter((n) => n.taints.some((t) => t.effect === 'NoExecute')).map((n) => [n.id, n.taints]));
  if (taintsOf.size > 0) {
    const exposed = views.filter((v) => v.desired === 'run' && v.nodeId !== null && taintsOf.has(v.nodeId) && v.pinnedNode === null);
    const exposedSpecs = await specsOf(
      db,
      exposed.map((v) => v.id),
    );
    const evictions = planTaintEvictions(
      exposed.map((v) => ({ id: v.id, nodeId: v.nodeId as string, createdAt: v.createdAt, tolerations: (exposedSpecs.get(v.id) as PodSpec | undefined)?.tolerations ?? [] })),
      taintsOf,
      now,
    );
    const gone = new Set<string>();
    for (const e of evictions) {
      const row = nameOf.get(e.podId);
      if (!row?.nodeId) continue;
      stmts.push(stopPod(db, e.podId, now));
      evs.push({
        namespace: row.namespace,
        kind: 'Pod',
        name: row.name,
        type: 'Warning',
        reason: 'TaintManagerEviction',
        message: `evicted: node ${nodeName.get(row.nodeId)} has taint ${e.taint.key}${e.taint.value ? `=${e.taint.value}` : ''}:NoExecute`,
        source: 'taint-manager',
        at: now,
      });
      touched.add(row.nodeId);
      gone.add(e.podId);
      result.stopped++;
    }
    if (gone.size > 0) views = views.map((v) => (gone.has(v.id) ? { ...v, desired: 'stop' } : v));
  }

  // What every new pod of a workload shares, computed once per workload (thousands of replicas).
  const templateFacts = new Map<string, { req: { cpu: number; memory: number }; hostPorts: string[]; policy: 'stop' | 'keep'; labels: Record<string, string>; constraints: PodView['constraints'] }>();
  const factsOf = (d: (typeof depRows)[number]) => {
    let f = templateFacts.get(d.id);
    if (!f) {
      const t = (d.spec as WorkloadSpec).template;
      const hash = d.templateDigest.slice(0, 10);
      f = {
        req: podRequests(t.spec),
        hostPorts: podHostPorts(t.spec),
        policy: disconnectPolicy(d.kind, d.annotations),
        labels: { ...t.metadata.labels, ...(d.kind === 'Deployment' ? { 'pod-template-hash': hash } : { 'controller-revision-hash': hash }) },
        constraints: constraintsOf(t.spec, scoringOf.get(d.id) ?? config.scoring),
      };
      templateFacts.set(d.id, f);
    }
    return f;
  };
  const newPod = (d: (typeof depRows)[number], stamp: string, revision: number, pinnedNode: string | null) => {
    const spec = (d.spec as WorkloadSpec).template;
    const hash = d.templateDigest.slice(0, 10);
    const id = crypto.randomUUID();
    // Names are unique per namespace: 27^5 suffixes collide often at thousands of replicas, so a
    // name already taken (stored, or made earlier in this tick) is drawn again.
    let name: string;
    do name = d.kind === 'DaemonSet' ? `${d.name}-${randomSuffix()}` : `${d.name}-${hash}-${randomSuffix()}`;
    while (takenNames.has(`${d.namespace}/${name}`));
    takenNames.add(`${d.namespace}/${name}`);
    const { req, hostPorts, policy, labels, constraints } = factsOf(d);
    const row = {
      id,
      namespace: d.namespace,
      name,
      deploymentId: d.id,
      workload: d.name,
      revision,
      spec: spec.spec as Record<string, unknown>,
      specDigest: '',
      labels,
      cpuRequest: req.cpu,
      memoryRequest: req.memory,
      hostPorts,
      policy,
      pinnedNode,
      createdAt: now,
      updatedAt: now,
    };
    pendingInserts.push({ depId: d.id, stamp, row });
    newPods.push({
      id,
      deploymentId: d.id,
      revision,
      nodeId: null,
      desired: 'run',
      phase: 'Pending',
      ready: false,
      readySince: null,
      restarts: 0,
      createdAt: now,
      leaseExpiresAt: 0,
      cpu: req.cpu,
      memory: req.memory,
      hostPorts,
      policy,
      pinnedNode,
      constraints,
    });
  };

  const podsOf = new Map<string, PodView[]>();
  for (const v of views) {
    const list = podsOf.get(v.deploymentId);
    if (list) list.push(v);
    else podsOf.set(v.deploymentId, [v]);
  }
  for (const d of depRows) {
    const spec = d.spec as WorkloadSpec;
    const view: DeploymentView = { id: d.id, namespace: d.namespace, name: d.name, replicas: spec.replicas ?? 0, revision: d.revision };
    const mine = podsOf.get(d.id) ?? [];
    const dsConstraints = d.kind === 'DaemonSet' ? constraintsOf(spec.template.spec, config.scoring) : undefined;
    const eligible = dsConstraints ? nodeViews.filter((n) => daemonSetEligible(n, dsConstraints)).length : 0;
    const { subject, policy } = rolloutSubjectOf(d, eligible);
    view.minReadyMs = subject.minReadyMs;
    if (d.kind === 'Deployment') {
      const ds = spec as Deployment['spec'];
      const strategy = ds.strategy ?? { type: 'RollingUpdate' as const };
      view.strategy = { type: strategy.type, ...rolloutBounds({ ...ds, strategy }) };
      view.paused = subject.paused;
      if (strategy.type === 'RollingUpdate') view.canaryLimit = canaryLimit(subject, policy);
    } else {
      const us = (spec as DaemonSet['spec']).updateStrategy ?? { type: 'RollingUpdate' as const };
      // subject.paused: a failed wave halted by `on-failure: pause`.
      view.maxUnavailable = us.type === 'OnDelete' || subject.paused ? 0 : Math.max(1, resolveIntOrPercent(us.rollingUpdate?.maxUnavailable ?? 1, eligible, true));
    }

    // The rollout: progress, completion, failure (and the rollback or pause it calls for).
    const decision = assessRollout(subject, mine, now, policy);
    // A new revision: nodes with old pods hear of it now (their desired state lists the new images to pre-pull).
    if (d.rollout?.revision !== d.revision) for (const p of mine) if (p.nodeId !== null && p.revision !== d.revision) touched.add(p.nodeId);
    if (await settleRollout(deps, d, decision, now, stmts, evs)) continue; // the workload changed: the next tick plans its new generation

    let create: (string | null)[];
    let stop: DeploymentPlan['stop'];
    let want = d.want;
    if (d.kind === 'DaemonSet') {
      const plan = planDaemonSet(view, dsConstraints ?? constraintsOf(spec.template.spec, config.scoring), nodeViews, mine, now);
      create = plan.create.slice(0, burst);
      stop = plan.stop;
      want = plan.want;
      result.deferred += plan.create.length - create.length;
      if (create.length === 0 && stop.length === 0 && want === d.want && d.observedFleet === fleetVersion) continue;
    } else {
      const plan = planDeployment(view, mine, draining, now);
      create = Array.from({ length: Math.min(plan.create, burst) }, () => null);
      stop = plan.stop;
      result.deferred += plan.create - create.length;
      if (create.length === 0 && stop.length === 0) continue;
    }
    // The rest of the burst: the workload's pods still missing stay missing, so the work check
    // finds them and the next tick creates them.
    burst -= create.length;
    const stamp = crypto.randomUUID();
    guards.push({ depId: d.id, index: stmts.length });
    stmts.push(
      db
        .update(deployments)
        .set({ planVersion: d.planVersion + 1, planStamp: stamp, want, observedFleet: fleetVersion })
        .where(and(eq(deployments.id, d.id), eq(deployments.planVersion, d.planVersion), eq(deployments.generation, d.generation)))
        .returning({ id: deployments.id }),
    );
    for (const pinned of create) newPod(d, stamp, d.revision, pinned);
    for (const s of stop) {
      const p = nameOf.get(s.podId);
      stmts.push(stopPod(db, s.podId, now, { depId: d.id, stamp }));
      if (p?.nodeId) touched.add(p.nodeId);
      if (p)
        evs.push({
          namespace: p.namespace,
          kind: 'Pod',
          name: p.name,
          type: 'Normal',
          reason: 'Killing',
          message: `stopping pod (${s.reason})`,
          source: `${d.kind.toLowerCase()}-controller`,
          at: now,
        });
    }
    if (create.length > 0)
      evs.push({
        namespace: d.namespace,
        kind: d.kind,
        name: d.name,
        type: 'Normal',
        reason: d.kind === 'Deployment' ? 'ScalingReplicaSet' : 'SuccessfulCreate',
        message: `creating ${create.length} pod(s) of revision ${d.revision}`,
        source: `${d.kind.toLowerCase()}-controller`,
        at: now,
      });
    result.stopped += stop.length;
  }

  // Orphans: their workload is gone.
  for (const id of planOrphans(new Set(depRows.map((d) => d.id)), views)) {
    const p = nameOf.get(id);
    stmts.push(stopPod(db, id, now));
    if (p?.nodeId) touched.add(p.nodeId);
    result.stopped++;
  }
  // Finalize terminating pods that no agent will report on.
  const finalize = planFinalize(
    views.map((v) => (v.nodeId !== null && !liveIds.has(v.nodeId) ? { ...v, leaseExpiresAt: 0 } : v)),
    now,
    config.clockSkewMs,
  );
  if (finalize.length > 0) {
    // Re-checked in SQL: the node's lease may have been renewed since the snapshot.
    const lapsed = sql`NOT EXISTS (SELECT 1 FROM nodes WHERE nodes.id = ${pods.nodeId} AND nodes.revoked_at IS NULL AND EXISTS (SELECT 1 FROM node_leases l WHERE l.node_id = nodes.id AND l.lease_expires_at >= ${now - config.clockSkewMs}))`;
    for (const ids of chunkRows(db, finalize, 1, 4)) stmts.push(db.delete(pods).where(and(inArray(pods.id, ids), eq(pods.desired, 'stop'), or(isNull(pods.nodeId), lapsed))));
    result.finalized += finalize.length;
  }

  // Scheduling of pending pods, including the ones this tick creates. Terminating pods still on a
  // node hold their resources and host ports until they are gone.
  const pending = [...views.filter((p) => p.desired === 'run' && p.nodeId === null), ...newPods];
  const claims = await claimPlacement(db, pending, specs, pendingInserts, nameOf, nodeRows, liveNodes);
  const plan = schedule({ nodes: nodeViews, placed: views.filter((p) => p.nodeId !== null), pending: claims.pending });
  claims.settle(plan, now, stmts, evs);
  const assigned = new Map(plan.assign.map((a) => [a.podId, a.nodeId]));
  const unschedulable = new Map(plan.unschedulable.map((u) => [u.podId, u.reason]));
  const insertsByStamp = new Map<string, { depId: string; rows: (typeof pods.$inferInsert)[] }>();
  for (const ins of pendingInserts) {
    const nodeId = assigned.get(ins.row.id) ?? null;
    const digest = await podDigest(ins.row.spec);
    const reason = unschedulable.get(ins.row.id) ?? null;
    const group = insertsByStamp.get(ins.stamp) ?? { depId: ins.depId, rows: [] };
    group.rows.push({ ...ins.row, specDigest: digest, nodeId, epoch: nodeId ? 1 : 0, reason, message: reason ? 'Unschedulable' : null });
    insertsByStamp.set(ins.stamp, group);
    if (nodeId) {
      touched.add(nodeId);
      evs.push({
        namespace: ins.row.namespace,
        kind: 'Pod',
        name: ins.row.name,
        type: 'Normal',
        reason: 'Scheduled',
        message: `assigned to ${nodeName.get(nodeId)}`,
        source: 'scheduler',
        at: now,
      });
    }
    result.created++;
  }
  for (const [stamp, g] of insertsByStamp) stmts.push(...insertPodsGuarded(db, g.depId, g.rows, stamp));
  for (const a of plan.assign) {
    const existing = nameOf.get(a.podId);
    if (!existing) continue; // created above
    stmts.push(assignPod(db, a.podId, a.nodeId, now));
    evs.push({
      namespace: existing.namespace,
      kind: 'Pod',
      name: existing.name,
      type: 'Normal',
      reason: 'Scheduled',
      message: `assigned to ${nodeName.get(a.nodeId)}`,
      source: 'scheduler',
      at: now,
    });
    touched.add(a.nodeId);
    result.assigned++;
  }
  const insertedRows = new Map(pendingInserts.map((i) => [i.row.id, i.row]));
  for (const u of plan.unschedulable) {
    const existing = nameOf.get(u.podId);
    const row = existing ?? insertedRows.get(u.podId);
    if (!row) continue;
    if (existing && existing.reason === u.reason && !evicted.has(u.podId)) continue; // unchanged: no write, no duplicate event
    if (existing)
      stmts.push(
        db
          .update(pods)
          .set({ reason: u.reason, message: 'Unschedulable', updatedAt: now })
          .where(and(eq(pods.id, u.podId), isNull(pods.nodeId))),
      );
    evs.push({ namespace: row.namespace, kind: 'Pod', name: row.name, type: 'Warning', reason: 'FailedScheduling', message: u.reason, source: 'scheduler', at: now });
  }
  stmts.push(...insertEvents(db, evs));
  if (touched.size > 0) stmts.push(...bumpNodes(db, [...touched]));

  const res = stmts.length > 0 ? await db.batch(stmts as [Stmt, ...Stmt[]]) : [];
  let conflicts = 0;
  for (const g of guards) if (((res[g.index] as unknown[]) ?? []).length !== 1) conflicts++;
  if (touched.size > 0) deps.notifier?.notify(touched);
  if (deps.notifier && touched.size > 0) {
    // The database already bumped the nodes proxying services whose endpoints this tick changed
    // (a trigger); wake their long-polls too. Over-approximated: namespaces of pods on those nodes.
    const nss = [...new Set(podRows.filter((p) => p.nodeId !== null && touched.has(p.nodeId)).map((p) => p.namespace))];
    await notifyServiceConsumers(deps, nss);
  }
  return conflicts;
}

/** Wakes the long-polls of the nodes proxying services of these namespaces (whose endpoints changed). */
async function notifyServiceConsumers(deps: Deps, namespaces: readonly string[]) {
  if (!deps.notifier || namespaces.length === 0) return;
  const consumers = await serviceConsumers(deps.db, namespaces);
  if (consumers.length > 0) deps.notifier.notify(consumers);
}

/**
 * Node conditions: records Ready <-> NotReady transitions (a node is Ready while it renewed its
 * leases within the grace period), with events, in SQL: the nodes whose recorded condition is
 * stale, then one conditional update each (a concurrent tick that recorded it first wins, and only
 * the update that changed the row writes an event). Returns how many it recorded. Endpoints on
 * those nodes changed with them (a trigger bumped the nodes proxying them); their long-polls wake.
 */
async function recordNodeConditions(deps: Deps, now: number): Promise<number> {
  const { db, config } = deps;
  const since = now - config.nodeGraceMs;
  const stale = await db.all<{ id: string; name: string; ready: number }>(staleConditions(since));
  if (stale.length === 0) return 0;
  const updates: Stmt[] = stale.map((n) =>
    db
      .update(nodes)
      .set({ ready: Boolean(n.ready) })
      .where(and(eq(nodes.id, n.id), sql`${nodes.ready} != ${n.ready ? 1 : 0}`))
      .returning({ id: nodes.id }),
  );
  const res = await db.batch(updates as [Stmt, ...Stmt[]]);
  const recorded = stale.filter((_, i) => ((res[i] as unknown[]) ?? []).length === 1);
  if (recorded.length === 0) return 0;
  const evs: EventInput[] = recorded.map((n) => ({
    namespace: '',
    kind: 'Node',
    name: n.name,
    type: n.ready ? 'Normal' : 'Warning',
    reason: n.ready ? 'NodeReady' : 'NodeNotReady',
    message: n.ready ? 'node is renewing its leases again' : 'node stopped renewing its leases (missed heartbeats)',
    source: 'node-controller',
    at: now,
  }));
  const inserts: Stmt[] = insertEvents(db, evs);
  await db.batch(inserts as [Stmt, ...Stmt[]]);
  const lost = recorded.filter((n) => !n.ready).length;
  if (lost > 0) deps.metrics?.inc('flotilla_node_not_ready_transitions_total', lost);
  if (deps.notifier) {
    const nss: string[] = [];
    for (const ids of chunkRows(
      db,
      recorded.map((n) => n.id),
      1,
    ))
      for (const r of await db.selectDistinct({ namespace: pods.namespace }).from(pods).where(inArray(pods.nodeId, ids)).all()) if (!nss.includes(r.namespace)) nss.push(r.namespace);
    await notifyServiceConsumers(deps, nss);
  }
  return recorded.length;
}

/**
 * A tick whose only work is rollouts: the workloads whose rollout is due (`rolloutDue`) and their
 * pods' counts (`rolloutPodCounts`), one aggregate instead of every pod. Nothing else is due, so
 * nothing is to be planned: a Deployment's pods match its replicas and revision, and a DaemonSet
 * was planned against the current fleet (its `want` is its eligible nodes).
 */
async function assessRollouts(deps: Deps, now: number) {
  const { db } = deps;
  const due = await db.select().from(deployments).where(sql`${deployments.id} IN (SELECT d.id FROM deployments d WHERE ${rolloutDue})`).all();
  if (due.length === 0) return;
  const counts = await rolloutPodCounts(
    db,
    due.map((d) => d.id),
    now,
  );
  const stmts: Stmt[] = [];
  const evs: EventInput[] = [];
  const fresh: typeof due = [];
  for (const d of due) {
    const { subject, policy } = rolloutSubjectOf(d, d.want);
    const decision = assessRollout(subject, counts.get(d.id) ?? { live: 0, updated: 0, available: 0, crashing: null }, now, policy);
    if (d.rollout?.revision !== d.revision) fresh.push(d);
    await settleRollout(deps, d, decision, now, stmts, evs);
  }
  // A new revision: nodes with old pods hear of it now (their desired state lists the new images to pre-pull).
  const touched = new Set<string>();
  for (const d of fresh)
    for (const r of await db
      .selectDistinct({ nodeId: pods.nodeId })
      .from(pods)
      .where(and(eq(pods.deploymentId, d.id), eq(pods.desired, 'run'), sql`${pods.revision} != ${d.revision}`, sql`${pods.nodeId} IS NOT NULL`))
      .all())
      touched.add(r.nodeId as string);
  stmts.push(...insertEvents(db, evs));
  if (touched.size > 0) stmts.push(...bumpNodes(db, [...touched]));
  if (stmts.length > 0) await db.batch(stmts as [Stmt, ...Stmt[]]);
  if (touched.size > 0) deps.notifier?.notify(touched);
}

/** A workload as the rollout controller sees it (`eligible`: a DaemonSet's eligible nodes, its pods wanted). */
function rolloutSubjectOf(d: typeof deployments.$inferSelect, eligible: number): { subject: RolloutSubject; policy: RolloutPolicy } {
  const spec = d.spec as WorkloadSpec;
  const base = { revision: d.revision, minReadyMs: (spec.minReadySeconds ?? 0) * 1000, stableRevision: d.stableRevision, promotedRevision: d.promotedRevision, record: d.rollout };
  if (d.kind === 'Deployment') {
    const ds = spec as Deployment['spec'];
    const replicas = ds.replicas ?? 0;
    return { subject: { ...base, replicas, paused: ds.paused ?? false }, policy: rolloutPolicyOf(d.kind, d.annotations, replicas, ds.progressDeadlineSeconds) };
  }
  // A failed wave with `on-failure: pause` halts (no more old pods replaced) until a new revision.
  const record = d.rollout?.revision === d.revision ? d.rollout : null;
  const halted = record?.state === 'Failed' && record.pausedOnFailure === true;
  return { subject: { ...base, replicas: eligible, paused: halted }, policy: rolloutPolicyOf(d.kind, d.annotations, eligible) };
}

/**
 * Acts on a rollout decision: a failure that rolls back or pauses a Deployment rewrites the workload
 * at once (true: nothing more to plan for it in this tick); otherwise a changed record, with its
 * event, joins the tick's batch (guarded by the workload's generation).
 */
async function settleRollout(deps: Deps, d: typeof deployments.$inferSelect, decision: ReturnType<typeof assessRollout>, now: number, stmts: Stmt[], evs: EventInput[]): Promise<boolean> {
  if (decision.failure && (decision.failure.rollbackTo !== null || (decision.failure.pause && d.kind === 'Deployment'))) {
    await failRollout(deps, d, decision.record, decision.failure, now);
    return true;
  }
  if (decision.record !== d.rollout || decision.complete) {
    stmts.push(
      deps.db
        .update(deployments)
        .set({ rollout: decision.record, ...(decision.complete ? { stableRevision: d.revision } : {}) })
        .where(and(eq(deployments.id, d.id), eq(deployments.generation, d.generation))),
    );
    if (decision.transition) evs.push(rolloutEvent(d, decision.record, now));
  }
  return false;
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

const POD_COLUMNS = [
  'id',
  'namespace',
  'name',
  'deployment_id',
  'workload',
  'revision',
  'spec',
  'spec_digest',
  'labels',
  'cpu_request',
  'memory_request',
  'host_ports',
  'policy',
  'pinned_node',
  'node_id',
  'epoch',
  'desired',
  'phase',
  'ready',
  'reason',
  'message',
  'created_at',
  'updated_at',
] as const;

function podValues(row: typeof pods.$inferInsert): unknown[] {
  return [
    row.id,
    row.namespace,
    row.name,
    row.deploymentId,
    row.workload,
    row.revision,
    JSON.stringify(row.spec),
    row.specDigest,
    JSON.stringify(row.labels ?? {}),
    row.cpuRequest ?? 0,
    row.memoryRequest ?? 0,
    JSON.stringify(row.hostPorts ?? []),
    row.policy ?? 'stop',
    row.pinnedNode ?? null,
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
}

/**
 * Inserts a workload's new pods only if it still carries this tick's stamp: multi-row statements
 * (`INSERT ... SELECT * FROM (VALUES ...) WHERE EXISTS stamp`), chunked under the database's
 * parameter limit. One statement per few hundred pods instead of one per pod is most of what made
 * committed placement fast.
 */
function insertPodsGuarded(db: Db, depId: string, rows: readonly (typeof pods.$inferInsert)[], stamp: string) {
  return chunkRows(db, rows, POD_COLUMNS.length, 2).map((chunk) => {
    // One flat list of chunks (text, value, text, value, ...): nested sql`` fragments per value cost
    // more to build than the statement costs to run.
    const chunks: SQLChunk[] = [new StringChunk(`INSERT INTO pods (${POD_COLUMNS.join(', ')}) SELECT * FROM (VALUES `)];
    chunk.forEach((r, i) => {
      const values = podValues(r);
      values.forEach((v, j) => {
        chunks.push(new StringChunk(j === 0 ? (i === 0 ? '(' : ', (') : ', '));
        chunks.push(v as SQLChunk);
      });
      chunks.push(new StringChunk(')'));
    });
    chunks.push(new StringChunk(') WHERE EXISTS (SELECT 1 FROM deployments WHERE id = '), depId as SQLChunk, new StringChunk(' AND plan_stamp = '), stamp as SQLChunk, new StringChunk(')'));
    return db.run(new SQL(chunks));
  });
}

const digestCache = new WeakMap<object, string>();
async function podDigest(spec: Record<string, unknown>): Promise<string> {
  const hit = digestCache.get(spec);
  if (hit) return hit;
  const d = await specDigest(spec);
  digestCache.set(spec, d);
  return d;
}

/** Rows read per page of a tick's snapshot: small enough that a page reads in a few milliseconds. */
const PAGE = 1000;

/**
 * Reads a table in pages by primary key (`page(after, limit)`), yielding to the event loop between
 * pages. libSQL's embedded calls are synchronous: one read of the whole table would hold every
 * request up for as long as it takes. Not a snapshot (neither are separate statements): the writes
 * the tick plans are guarded against what changed since.
 */
async function paged<T extends { id: string }>(page: (after: string, limit: number) => Promise<T[]>): Promise<T[]> {
  const out: T[] = [];
  let after = '';
  for (;;) {
    const rows = await page(after, PAGE);
    for (const r of rows) out.push(r);
    if (rows.length < PAGE) return out;
    after = (rows[rows.length - 1] as T).id;
    await new Promise((r) => setImmediate(r));
  }
}

/** When this instance last asked for the tick lock, per cluster (`maybeTick`). */
const lastAsked = new Map<string, number>();

/**
 * Runs a tick if none ran in the last tick interval (a DB-held rate limit shared by all instances).
 * Used to piggyback controller work on agent requests.
 */
export async function maybeTick(deps: Deps): Promise<TickResult | null> {
  const { db, clock, config } = deps;
  const now = clock();
  // This instance asks the database at most once per tick interval: each ask is a write statement,
  // and on Workers every renewing heartbeat asks (a fleet's renewals would otherwise each pay one).
  const key = deps.cluster.clusterId;
  if (now - (lastAsked.get(key) ?? Number.NEGATIVE_INFINITY) < config.tickIntervalMs) return null;
  lastAsked.set(key, now);
  const won = await db
    .insert(controllerLocks)
    .values({ name: 'tick', until: now + config.tickIntervalMs })
    .onConflictDoUpdate({ target: controllerLocks.name, set: { until: now + config.tickIntervalMs }, setWhere: lt(controllerLocks.until, now) })
    .returning({ until: controllerLocks.until });
  if (won.length === 0) return null;
  return runTick(deps);
}

/** The event for a rollout's state change. */
function rolloutEvent(d: typeof deployments.$inferSelect, r: RolloutRecord, now: number): EventInput {
  const reason = r.state === 'Complete' ? 'RolloutComplete' : r.state === 'Failed' ? r.reason : r.state === 'CanaryHold' ? 'CanaryHold' : r.reason;
  return {
    namespace: d.namespace,
    kind: d.kind,
    name: d.name,
    type: r.state === 'Failed' ? 'Warning' : 'Normal',
    reason,
    message: r.state === 'Failed' ? `rollout of revision ${r.revision} failed: ${r.message}` : r.message,
    source: 'rollout-controller',
    at: now,
  };
}

/**
 * A failed rollout: the workload goes back to the template of its last fully available revision
 * (as a new revision, like `rollout undo`), or pauses. Written through apply's optimistic path, so a
 * concurrent change by an operator wins and the failure is assessed again on the next tick.
 */
async function failRollout(deps: Deps, d: typeof deployments.$inferSelect, record: RolloutRecord, failure: { reason: string; message: string; rollbackTo: number | null }, now: number) {
  const { db } = deps;
  const manifest = manifestOf(d) as unknown as Workload;
  const spec = { ...(d.spec as Record<string, unknown>) };
  let rollout: RolloutRecord;
  if (failure.rollbackTo !== null) {
    const target = await db
      .select()
      .from(revisions)
      .where(and(eq(revisions.deploymentId, d.id), eq(revisions.revision, failure.rollbackTo)))
      .get();
    if (!target) {
      const kept = { ...record, message: `${record.message}; revision ${failure.rollbackTo} to roll back to is no longer kept` };
      await db.batch([
        db
          .update(deployments)
          .set({ rollout: kept })
          .where(and(eq(deployments.id, d.id), eq(deployments.generation, d.generation))),
        insertEvent(db, rolloutEvent(d, kept, now)),
      ]);
      return;
    }
    spec.template = target.template;
    const message = `rolled back from revision ${d.revision} to the template of revision ${failure.rollbackTo}: ${failure.message}`;
    rollout = {
      revision: d.revision + 1,
      state: 'Progressing',
      reason: 'RolledBack',
      message,
      since: now,
      progressAt: now,
      updated: 0,
      available: 0,
      outdated: record.updated + record.outdated,
      rolledBack: { from: d.revision, to: failure.rollbackTo, reason: failure.reason, message: failure.message, at: now },
    };
  } else {
    spec.paused = true;
    rollout = record;
  }
  try {
    const { outcome } = await applyWorkload(db, { ...manifest, spec } as Workload, d.namespace, now, 'rollout-controller', { rollout, expectGeneration: d.generation });
    if (outcome === 'unchanged') {
      // The last good revision has this very template: nothing to go back to; record the failure.
      await db
        .update(deployments)
        .set({ rollout: record })
        .where(and(eq(deployments.id, d.id), eq(deployments.generation, d.generation)));
      await insertEvent(db, rolloutEvent(d, record, now));
    } else {
      const ev = rolloutEvent(d, { ...record, state: 'Failed' }, now);
      if (failure.rollbackTo !== null) Object.assign(ev, { reason: 'RolledBack', message: rollout.message });
      else Object.assign(ev, { message: `${ev.message}; paused (flotilla.dev/on-failure: pause)` });
      await insertEvent(db, ev);
    }
  } catch (e) {
    // Changed concurrently (an operator applied or undid meanwhile): the next tick looks again.
    deps.logger.warn({ workload: `${d.namespace}/${d.name}`, err: (e as Error).message }, 'rollout failure not recorded');
  }
}

/**
 * Volume claims in placement. A pod whose claim is bound may only go to the claim's node (a node
 * selector on its host name: it waits while that node is NotReady or full); a pod whose claim is
 * missing, being deleted, or bound to a node that is gone waits Pending with that reason (the data
 * is never moved or deleted for it). The first placement of a pod with an unbound claim binds the
 * claim to that node, in the tick's batch; another pod of the same claim placed elsewhere in the
 * same tick waits for the next one.
 */
async function claimPlacement(
  db: Db,
  pending: PodView[],
  specs: ReadonlyMap<string, Record<string, unknown>>,
  inserts: readonly { row: typeof pods.$inferInsert }[],
  nameOf: ReadonlyMap<string, { namespace: string; name: string }>,
  nodeRows: readonly { id: string; name: string }[],
  liveNodes: readonly { id: string; name: string }[],
) {
  const insertOf = new Map(inserts.map((i) => [i.row.id, i.row]));
  const users = pending.flatMap((v) => {
    const spec = specs.get(v.id) ?? insertOf.get(v.id)?.spec;
    const names = spec ? claimNames(spec) : [];
    const namespace = nameOf.get(v.id)?.namespace ?? insertOf.get(v.id)?.namespace;
    return names.length > 0 && namespace ? [{ v, names, namespace }] : [];
  });
  const blocked = new Map<string, string>();
  const unbound = new Map<string, ClaimRow[]>();
  const boundTo = new Map<string, { node: string; claim: string }>();
  const nodeName = new Map(nodeRows.map((n) => [n.id, n.name]));
  const live = new Map(liveNodes.map((n) => [n.id, n.name]));
  if (users.length > 0) {
    const byKey = new Map(
      (
        await claimsOf(
          db,
          users.map((u) => u.namespace),
        )
      ).map((c) => [`${c.namespace}/${c.name}`, c]),
    );
    for (const u of users) {
      let node: string | undefined;
      for (const n of u.names) {
        const c = byKey.get(`${u.namespace}/${n}`);
        let reason: string | undefined;
        if (!c) reason = `persistentvolumeclaim "${n}" not found`;
        else if (c.deletionRequestedAt !== null) reason = `persistentvolumeclaim "${n}" is being deleted`;
        else if (c.nodeId !== null && !live.has(c.nodeId))
          reason = `persistentvolumeclaim "${n}" is bound to node ${nodeName.get(c.nodeId) ?? c.nodeId}, which is gone; its data stays there (delete the claim to start over)`;
        else if (c.nodeId !== null && node !== undefined && c.nodeId !== node) reason = 'its persistentvolumeclaims are bound to different nodes';
        if (reason) {
          blocked.set(u.v.id, reason);
          break;
        }
        if (c?.nodeId) {
          node = c.nodeId;
          boundTo.set(u.v.id, { node, claim: n });
        } else if (c) unbound.set(u.v.id, [...(unbound.get(u.v.id) ?? []), c]);
      }
    }
  }
  const out = pending
    .filter((v) => !blocked.has(v.id))
    .map((v) => {
      const b = boundTo.get(v.id);
      if (!b || !v.constraints) return v;
      return { ...v, constraints: { ...v.constraints, nodeSelector: { ...v.constraints.nodeSelector, 'kubernetes.io/hostname': live.get(b.node) as string } } };
    });
  return {
    pending: out,
    settle(plan: SchedulePlan, now: number, stmts: Parameters<Db['batch']>[0][number][], evs: EventInput[]) {
      for (const [podId, reason] of blocked) plan.unschedulable.push({ podId, reason });
      for (const u of plan.unschedulable) {
        const b = boundTo.get(u.podId);
        if (b) u.reason = `persistentvolumeclaim "${b.claim}" is bound to node ${live.get(b.node)}: ${u.reason}`;
      }
      const binds = new Map<string, { node: string; claim: ClaimRow }>();
      plan.assign = plan.assign.filter((a) => {
        const cs = unbound.get(a.podId) ?? [];
        const other = cs.find((c) => (binds.get(c.id)?.node ?? a.nodeId) !== a.nodeId);
        if (other) {
          plan.unschedulable.push({ podId: a.podId, reason: `persistentvolumeclaim "${other.name}" is binding to node ${live.get(binds.get(other.id)?.node as string)}; placed next` });
          return false;
        }
        for (const c of cs) binds.set(c.id, { node: a.nodeId, claim: c });
        return true;
      });
      for (const [id, { node, claim }] of binds) {
        stmts.push(
          db
            .update(volumeClaims)
            .set({ nodeId: node, phase: 'Bound', boundAt: now, updatedAt: now })
            .where(and(eq(volumeClaims.id, id), isNull(volumeClaims.nodeId))),
        );
        evs.push({
          namespace: claim.namespace,
          kind: 'PersistentVolumeClaim',
          name: claim.name,
          type: 'Normal',
          reason: 'Bound',
          message: `bound to node ${live.get(node)}, where its first pod runs; pods using it go there`,
          source: 'volume-controller',
          at: now,
        });
      }
    },
  };
}
