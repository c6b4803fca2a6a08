import type { Toleration } from '../../shared/manifest.js';
import type { NodeTaint } from '../store/schema.js';
import { matchesAffinity, matchesSelector, tolerates, untoleratedTaint } from './scheduler.js';
import type { DeploymentView, NodeView, PodConstraints, PodView } from './types.js';

/** What the deployment controller wants done for one Deployment. */
export interface DeploymentPlan {
  /** Number of new pods of the current revision to create. */
  create: number;
  /** Pods to stop (mark terminating), with why. */
  stop: { podId: string; reason: 'scale-down' | 'outdated' | 'orphaned' | 'drained' | 'not eligible' | 'duplicate' }[];
}

// Which surplus pod goes first, like Kubernetes' ReplicaSet: unscheduled, then not ready, then newest.
function stopOrder(a: PodView, b: PodView): number {
  const rank = (p: PodView) => (p.nodeId === null ? 0 : p.ready ? 2 : 1);
  return rank(a) - rank(b) || b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1);
}

/** Kubernetes' default rolling update: 25 % surge (rounded up), 25 % unavailable (rounded down), never both 0. */
export function defaultStrategy(replicas: number): NonNullable<DeploymentView['strategy']> {
  const maxSurge = Math.ceil(replicas / 4);
  const maxUnavailable = Math.floor(replicas / 4);
  return { type: 'RollingUpdate', maxSurge, maxUnavailable: maxSurge === 0 && maxUnavailable === 0 ? 1 : maxUnavailable };
}

/** Whether a pod counts as available: Ready for at least `minReadyMs`. */
export function isAvailable(p: PodView, now: number, minReadyMs: number): boolean {
  return p.ready && p.readySince !== null && now - p.readySince >= minReadyMs;
}

/**
 * Plans one Deployment: `replicas` pods of the current revision, reached from older revisions by
 * the Deployment's strategy (Kubernetes' algorithm):
 *
 * - RollingUpdate: new pods are created while the total stays within replicas + maxSurge; old pods
 *   are stopped (unavailable ones first) while the available pods stay at least
 *   replicas - maxUnavailable. A pod is available once Ready for minReadySeconds.
 * - Recreate: every old pod is stopped first; new ones are created only once none is left running
 *   (terminating ones included), so old and new never overlap.
 * - Paused: a new revision is not rolled out (scaling still applies to the pods there are).
 *
 * Pods on draining nodes are moved without loss of readiness: a replacement is created for each,
 * and a draining pod that is Ready is stopped only while the Ready pods left are at least `replicas`.
 */
export function planDeployment(d: DeploymentView, pods: readonly PodView[], draining: ReadonlySet<string> = new Set(), now = 0): DeploymentPlan {
  const mine = pods.filter((p) => p.deploymentId === d.id);
  const live = mine.filter((p) => p.desired === 'run');
  const current = live.filter((p) => p.revision === d.revision);
  const outdated = live.filter((p) => p.revision !== d.revision);
  const strategy = d.strategy ?? defaultStrategy(d.replicas);
  const minReadyMs = d.minReadyMs ?? 0;
  const stop: DeploymentPlan['stop'] = [];
  const leaving = current.filter((p) => p.nodeId !== null && draining.has(p.nodeId));
  const staying = current.filter((p) => !(p.nodeId !== null && draining.has(p.nodeId)));

  let create = 0;
  // Recreate waits for old pods that are still terminating on their nodes, too.
  const oldStillRunning = mine.some((p) => p.revision !== d.revision && p.desired === 'stop' && p.nodeId !== null);
  if (strategy.type === 'Recreate' && !d.paused && (outdated.length > 0 || oldStillRunning)) {
    for (const p of outdated) stop.push({ podId: p.id, reason: 'outdated' });
  } else if (outdated.length === 0 || d.paused) {
    // Steady state, or paused mid-rollout: keep `replicas` pods of what there is (a paused
    // Deployment scaled up gets pods of the current revision; scaled down, it loses the surplus).
    const keep = d.paused ? [...staying, ...outdated] : staying;
    const surplus = keep.length - d.replicas;
    if (surplus > 0) for (const p of [...keep].sort(stopOrder).slice(0, surplus)) stop.push({ podId: p.id, reason: 'scale-down' });
    create = Math.max(0, -surplus);
  } else {
    const total = current.length + outdated.length;
    const maxTotal = d.replicas + strategy.maxSurge;
    // Terminating pods still on a node hold a container until their agent reports them gone: they
    // count against the surge, so the containers running never exceed replicas + maxSurge.
    const terminating = mine.filter((p) => p.desired === 'stop' && p.nodeId !== null).length;
    create = Math.max(0, Math.min(d.replicas - staying.length, maxTotal - total - terminating));
    const minAvailable = d.replicas - strategy.maxUnavailable;
    const newUnavailable = current.filter((p) => !isAvailable(p, now, minReadyMs)).length;
    let budget = total - minAvailable - newUnavailable;
    // A canary not yet promoted: at most `canaryLimit` new pods, and the old ones make up the rest.
    if (d.canaryLimit !== undefined) {
      create = Math.min(create, Math.max(0, d.canaryLimit - staying.length));
      budget = Math.min(budget, outdated.length - (d.replicas - d.canaryLimit));
    }
    // Unavailable old pods go first (they serve nothing), then available ones, oldest revision first.
    const byHealth = [...outdated].sort((a, b) => Number(isAvailable(a, now, minReadyMs)) - Number(isAvailable(b, now, minReadyMs)) || a.revision - b.revision || stopOrder(a, b));
    for (const p of byHealth) {
      if (budget <= 0) break;
      stop.push({ podId: p.id, reason: 'outdated' });
      budget--;
    }
    // New pods beyond replicas (after a scale-down during a rollout).
    const surplus = staying.length - d.replicas;
    if (surplus > 0) for (const p of [...staying].sort(stopOrder).slice(0, surplus)) stop.push({ podId: p.id, reason: 'scale-down' });
  }
  if (leaving.length > 0) {
    let ready = Math.min(d.replicas, staying.filter((p) => p.ready).length) + leaving.filter((p) => p.ready).length;
    for (const p of [...leaving].sort(stopOrder)) {
      if (!p.ready) stop.push({ podId: p.id, reason: 'drained' });
      else if (ready - 1 >= d.replicas) {
        stop.push({ podId: p.id, reason: 'drained' });
        ready--;
      }
    }
  }
  return { create, stop };
}

/** What the DaemonSet controller wants done for one DaemonSet. */
export interface DaemonSetPlan {
  /** Nodes that need a pod of the current revision. */
  create: string[];
  stop: DeploymentPlan['stop'];
  /** How many nodes should run one. */
  want: number;
}

/** Whether a DaemonSet pod belongs on a node: selector, required affinity and NoSchedule/NoExecute taints. */
export function daemonSetEligible(n: NodeView, c: PodConstraints): boolean {
  return matchesSelector(n.labels, c.nodeSelector) && matchesAffinity(n.labels, c.affinityTerms) && !untoleratedTaint(n.taints, c.tolerations);
}

/**
 * Plans one DaemonSet: one pod of the current revision on every eligible node (readiness and
 * cordons do not matter, as in Kubernetes); pods on nodes that are gone or no longer eligible and
 * duplicates are stopped. A new revision replaces old pods in waves (RollingUpdate): an old pod
 * that is available is stopped only while fewer than `maxUnavailable` Ready nodes lack an available
 * pod; unavailable old pods and pods on NotReady nodes (which serve nothing now, and would stall a
 * fleet-wide wave forever) are replaced at once. A node gets its new pod once the old one is gone
 * from it (DaemonSet pods often bind host ports). `maxUnavailable` 0 means OnDelete: old pods stay.
 */
export function planDaemonSet(d: DeploymentView, constraints: PodConstraints, nodes: readonly NodeView[], pods: readonly PodView[], now = 0): DaemonSetPlan {
  const eligibleNodes = nodes.filter((n) => daemonSetEligible(n, constraints));
  const eligible = new Set(eligibleNodes.map((n) => n.id));
  const readyNode = new Set(eligibleNodes.filter((n) => n.ready).map((n) => n.id));
  const minReadyMs = d.minReadyMs ?? 0;
  const maxUnavailable = d.maxUnavailable ?? 1;
  const stop: DeploymentPlan['stop'] = [];
  const have = new Set<string>();
  const occupied = new Set<string>();
  const old: PodView[] = [];
  const mine = pods.filter((p) => p.deploymentId === d.id);
  for (const p of mine) if (p.desired === 'stop' && p.nodeId !== null) occupied.add(p.nodeId);
  const live = mine.filter((p) => p.desired === 'run').sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  for (const p of live) {
    const node = p.pinnedNode ?? p.nodeId;
    if (node === null || !eligible.has(node)) stop.push({ podId: p.id, reason: 'not eligible' });
    else if (have.has(node) || old.some((o) => (o.pinnedNode ?? o.nodeId) === node)) stop.push({ podId: p.id, reason: 'duplicate' });
    else if (p.revision !== d.revision) old.push(p);
    else have.add(node);
  }
  // Ready nodes without an available pod of any revision: the unavailability the wave may add to.
  const availableOn = new Set(live.filter((p) => isAvailable(p, now, minReadyMs)).map((p) => p.pinnedNode ?? p.nodeId));
  let budget = maxUnavailable - [...readyNode].filter((n) => !availableOn.has(n)).length;
  const nodeName = new Map(nodes.map((n) => [n.id, n.name]));
  const byNode = (p: PodView) => nodeName.get((p.pinnedNode ?? p.nodeId) as string) ?? '';
  for (const p of old.sort((a, b) => (byNode(a) < byNode(b) ? -1 : byNode(a) > byNode(b) ? 1 : 0))) {
    const node = (p.pinnedNode ?? p.nodeId) as string;
    const free = !readyNode.has(node) || !isAvailable(p, now, minReadyMs);
    if (maxUnavailable > 0 && (free || budget > 0)) {
      stop.push({ podId: p.id, reason: 'outdated' });
      if (!free) budget--;
      occupied.add(node);
    } else have.add(node);
  }
  const create = [...eligible].filter((n) => !have.has(n) && !occupied.has(n)).sort();
  return { create, stop, want: eligible.size };
}

/** Pods whose workload no longer exists: all to be stopped. */
export function planOrphans(deploymentIds: ReadonlySet<string>, pods: readonly PodView[]): string[] {
  return pods.filter((p) => p.desired === 'run' && !deploymentIds.has(p.deploymentId)).map((p) => p.id);
}

/**
 * Terminating pods that may be forgotten: never placed, or whose lease lapsed more than the skew
 * margin ago (the node is gone or cut off; its agent stops the containers when the lease lapses).
 */
export function planFinalize(pods: readonly PodView[], now: number, skewMs: number): string[] {
  return pods.filter((p) => p.desired === 'stop' && (p.nodeId === null || p.leaseExpiresAt + skewMs < now)).map((p) => p.id);
}

/**
 * Running pods with the `stop` disconnect policy whose node's lease expired more than the skew
 * margin ago: their slot is released for placement elsewhere (at a higher epoch). The old holder's
 * agent stopped them at expiry on its own, so at no moment do two live leases cover one slot.
 */
export function planEvictions(pods: readonly PodView[], now: number, skewMs: number): PodView[] {
  return pods.filter((p) => p.desired === 'run' && p.policy === 'stop' && p.nodeId !== null && p.leaseExpiresAt + skewMs < now);
}

/**
 * Pods to evict because of a NoExecute taint on their node (Kubernetes' taint manager): at once
 * when no toleration tolerates the taint; after the smallest `tolerationSeconds` (counted from
 * when the taint was added or the pod was created, whichever is later) when the tolerations that
 * do are timed; never when one is untimed.
 */
export function planTaintEvictions(
  pods: readonly { id: string; nodeId: string; createdAt?: number; tolerations: readonly Toleration[] }[],
  taintsOf: ReadonlyMap<string, readonly NodeTaint[]>,
  now: number,
): { podId: string; taint: NodeTaint }[] {
  const out: { podId: string; taint: NodeTaint }[] = [];
  for (const p of pods) {
    for (const taint of taintsOf.get(p.nodeId) ?? []) {
      if (taint.effect !== 'NoExecute') continue;
      const matching = p.tolerations.filter((t) => tolerates(t, taint));
      if (matching.length > 0 && matching.some((t) => t.tolerationSeconds === undefined)) continue;
      const seconds = matching.length === 0 ? 0 : Math.min(...matching.map((t) => Math.max(0, t.tolerationSeconds ?? 0)));
      if (Math.max(taint.timeAdded ?? 0, p.createdAt ?? 0) + seconds * 1000 <= now) {
        out.push({ podId: p.id, taint });
        break;
      }
    }
  }
  return out;
}
