import type { NodeView, PodView } from './types.js';

/** One placement decision. */
export interface Assignment {
  podId: string;
  nodeId: string;
}

/** A pod that fits nowhere, with a Kubernetes-style reason ("0/3 nodes available: ..."). */
export interface Unschedulable {
  podId: string;
  reason: string;
}

/** Output of placement. */
export interface PlacementPlan {
  assign: Assignment[];
  unschedulable: Unschedulable[];
}

/** Does a node's label set satisfy a nodeSelector? */
export function matchesSelector(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/**
 * Places pending pods by spreading: each pod goes to the eligible node with the fewest pods of its
 * Deployment, then the fewest pods overall, then by name (deterministic). Eligible: Ready, not
 * cordoned, nodeSelector satisfied. Pure: the scheduler issue replaces the scoring, not the shape.
 */
export function planPlacement(pending: readonly PodView[], nodes: readonly NodeView[], placed: readonly PodView[]): PlacementPlan {
  const total = new Map<string, number>();
  const perDeployment = new Map<string, number>();
  const key = (nodeId: string, dep: string) => `${nodeId}\u0000${dep}`;
  for (const p of placed) {
    if (p.nodeId === null) continue;
    total.set(p.nodeId, (total.get(p.nodeId) ?? 0) + 1);
    const k = key(p.nodeId, p.deploymentId);
    perDeployment.set(k, (perDeployment.get(k) ?? 0) + 1);
  }
  const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const plan: PlacementPlan = { assign: [], unschedulable: [] };
  for (const pod of [...pending].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))) {
    let notReady = 0;
    let cordoned = 0;
    let mismatch = 0;
    let best: NodeView | undefined;
    let bestScore: [number, number] = [Infinity, Infinity];
    for (const n of sorted) {
      if (!n.ready) notReady++;
      else if (n.cordoned) cordoned++;
      else if (!matchesSelector(n.labels, pod.nodeSelector)) mismatch++;
      else {
        const s: [number, number] = [perDeployment.get(key(n.id, pod.deploymentId)) ?? 0, total.get(n.id) ?? 0];
        if (s[0] < bestScore[0] || (s[0] === bestScore[0] && s[1] < bestScore[1])) {
          best = n;
          bestScore = s;
        }
      }
    }
    if (!best) {
      const parts = [notReady > 0 ? `${notReady} not ready` : '', cordoned > 0 ? `${cordoned} cordoned` : '', mismatch > 0 ? `${mismatch} node selector mismatch` : ''].filter(Boolean);
      plan.unschedulable.push({ podId: pod.id, reason: `0/${nodes.length} nodes available${parts.length ? `: ${parts.join(', ')}` : ''}` });
      continue;
    }
    plan.assign.push({ podId: pod.id, nodeId: best.id });
    total.set(best.id, (total.get(best.id) ?? 0) + 1);
    const k = key(best.id, pod.deploymentId);
    perDeployment.set(k, (perDeployment.get(k) ?? 0) + 1);
  }
  return plan;
}
