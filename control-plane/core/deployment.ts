import type { DeploymentView, PodView } from './types.js';

/** What the deployment controller wants done for one Deployment. */
export interface DeploymentPlan {
  /** Number of new pods of the current revision to create. */
  create: number;
  /** Pods to stop (mark terminating), with why. */
  stop: { podId: string; reason: 'scale-down' | 'outdated' | 'orphaned' }[];
}

// Which surplus pod goes first, like Kubernetes' ReplicaSet: unscheduled, then not ready, then newest.
function stopOrder(a: PodView, b: PodView): number {
  const rank = (p: PodView) => (p.nodeId === null ? 0 : p.ready ? 2 : 1);
  return rank(a) - rank(b) || b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1);
}

/**
 * Plans one Deployment: keep `replicas` running pods of the current revision, stop the rest.
 * Pods of older revisions are replaced all at once here; health-gated rolling updates build on this.
 */
export function planDeployment(d: DeploymentView, pods: readonly PodView[]): DeploymentPlan {
  const live = pods.filter((p) => p.deploymentId === d.id && p.desired === 'run');
  const current = live.filter((p) => p.revision === d.revision);
  const outdated = live.filter((p) => p.revision !== d.revision);
  const stop: DeploymentPlan['stop'] = outdated.map((p) => ({ podId: p.id, reason: 'outdated' as const }));
  const surplus = current.length - d.replicas;
  if (surplus > 0) for (const p of [...current].sort(stopOrder).slice(0, surplus)) stop.push({ podId: p.id, reason: 'scale-down' });
  return { create: Math.max(0, -surplus), stop };
}

/** Pods whose Deployment no longer exists: all to be stopped. */
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
