import type { NodeSelectorRequirement, Toleration } from '../../shared/manifest.js';
import type { NodeTaint } from '../store/schema.js';
import type { NodeView, PodView, Scoring } from './types.js';

// The scheduler: pure, deterministic, plan-then-commit. Filters, then scores, like kube-scheduler,
// over a snapshot; the shell commits the plan with per-pod conditional writes.

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

/** The scheduler's output. */
export interface SchedulePlan {
  assign: Assignment[];
  unschedulable: Unschedulable[];
}

/** What the scheduler works on. */
export interface ScheduleInput {
  nodes: readonly NodeView[];
  /** Pods already on nodes (desired run, or terminating but still holding resources). */
  placed: readonly PodView[];
  /** Pods to place; each needs `constraints`. */
  pending: readonly PodView[];
}

/** Requests assumed for scoring when a pod declares none (kube-scheduler's non-zero defaults). */
export const DEFAULT_SCORING_CPU = 100;
export const DEFAULT_SCORING_MEMORY = 200 * 1024 * 1024;

/**
 * Allocatable resources of a node (millicores, bytes): the operator's override, else the reported
 * capacity minus the configured reserve.
 */
export function allocatableOf(
  n: { cpus: number | null; memoryBytes: number | null; allocatable: { cpu?: number; memory?: number } | null },
  reserve: { cpu: number; memory: number },
): { cpu: number; memory: number } {
  return {
    cpu: n.allocatable?.cpu ?? Math.max(0, (n.cpus ?? 0) * 1000 - reserve.cpu),
    memory: n.allocatable?.memory ?? Math.max(0, (n.memoryBytes ?? 0) - reserve.memory),
  };
}

/** Does a node's label set satisfy a nodeSelector? */
export function matchesSelector(labels: Readonly<Record<string, string>>, selector: Readonly<Record<string, string>>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

function matchesRequirement(labels: Readonly<Record<string, string>>, r: NodeSelectorRequirement): boolean {
  const v = labels[r.key];
  switch (r.operator) {
    case 'In':
      return v !== undefined && (r.values ?? []).includes(v);
    case 'NotIn':
      return v === undefined || !(r.values ?? []).includes(v);
    case 'Exists':
      return v !== undefined;
    case 'DoesNotExist':
      return v === undefined;
    case 'Gt':
    case 'Lt': {
      if (v === undefined || !/^-?\d+$/.test(v)) return false;
      const n = Number(v);
      const bound = Number(r.values?.[0]);
      return r.operator === 'Gt' ? n > bound : n < bound;
    }
  }
}

/** Required node affinity: any term whose requirements all hold. No terms: always true. */
export function matchesAffinity(labels: Readonly<Record<string, string>>, terms: readonly (readonly NodeSelectorRequirement[])[]): boolean {
  if (terms.length === 0) return true;
  return terms.some((t) => t.every((r) => matchesRequirement(labels, r)));
}

/** Kubernetes' ToleratesTaint. */
export function tolerates(t: Toleration, taint: NodeTaint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.operator === 'Exists') return !t.key || t.key === taint.key;
  return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
}

/** The first taint of the given effects that no toleration tolerates, if any. */
export function untoleratedTaint(taints: readonly NodeTaint[], tolerations: readonly Toleration[], effects: readonly NodeTaint['effect'][] = ['NoSchedule', 'NoExecute']): NodeTaint | undefined {
  return taints.find((taint) => effects.includes(taint.effect) && !tolerations.some((t) => tolerates(t, taint)));
}

interface NodeState {
  node: NodeView;
  cpu: number;
  memory: number;
  scoreCpu: number;
  scoreMemory: number;
  ports: Set<string>;
  /** Pods per workload on this node. */
  perWorkload: Map<string, number>;
}

function addPod(s: NodeState, p: PodView): void {
  s.cpu += p.cpu;
  s.memory += p.memory;
  s.scoreCpu += p.cpu || DEFAULT_SCORING_CPU;
  s.scoreMemory += p.memory || DEFAULT_SCORING_MEMORY;
  for (const hp of p.hostPorts) s.ports.add(hp);
  s.perWorkload.set(p.deploymentId, (s.perWorkload.get(p.deploymentId) ?? 0) + 1);
}

/** Why a node was filtered out, as counted in the unschedulable reason. */
export type FilterReason =
  | 'not ready'
  | 'cordoned'
  | 'node selector mismatch'
  | 'node affinity mismatch'
  | 'untolerated taint'
  | 'host port conflict'
  | 'insufficient cpu'
  | 'insufficient memory'
  | 'topology spread constraint';

// Filter outcomes: 0 passes; otherwise an index into REASONS. Resource shortages are a bit set
// (cpu | memory) so a node short of both counts under both, as in Kubernetes.
const REASONS: readonly FilterReason[] = [
  'not ready',
  'not ready',
  'cordoned',
  'node selector mismatch',
  'node affinity mismatch',
  'untolerated taint',
  'host port conflict',
  'insufficient cpu',
  'insufficient memory',
];
const F_OK = 0;
const F_NOT_READY = 1;
const F_CORDONED = 2;
const F_SELECTOR = 3;
const F_AFFINITY = 4;
const F_TAINT = 5;
const F_PORT = 6;
const F_CPU = 1 << 8;
const F_MEMORY = 1 << 9;

/** Filters that do not change while a plan is made: readiness, cordon, selector, affinity, taints. */
function staticFilter(s: NodeState, pod: PodView): number {
  const n = s.node;
  const c = pod.constraints;
  if (pod.pinnedNode !== null) {
    // A DaemonSet pod: only its node, whatever its readiness or cordon (as Kubernetes' DaemonSet pods tolerate them).
    if (n.id !== pod.pinnedNode) return F_AFFINITY;
  } else {
    if (!n.ready) return F_NOT_READY;
    if (n.cordoned || n.draining) return F_CORDONED;
  }
  if (c) {
    if (!matchesSelector(n.labels, c.nodeSelector)) return F_SELECTOR;
    if (c.affinityTerms.length > 0 && !matchesAffinity(n.labels, c.affinityTerms)) return F_AFFINITY;
    if (n.taints.length > 0 && untoleratedTaint(n.taints, c.tolerations)) return F_TAINT;
  }
  return F_OK;
}

/** Filters that change as pods are placed: host ports, CPU and memory. */
function dynamicFilter(s: NodeState, pod: PodView): number {
  const hps = pod.hostPorts;
  for (let i = 0; i < hps.length; i++) if (s.ports.has(hps[i] as string)) return F_PORT;
  let out = F_OK;
  if (pod.cpu > 0 && s.cpu + pod.cpu > s.node.allocatable.cpu) out |= F_CPU;
  if (pod.memory > 0 && s.memory + pod.memory > s.node.allocatable.memory) out |= F_MEMORY;
  return out;
}

function countFiltered(counts: Map<string, number>, code: number): void {
  const add = (r: string) => counts.set(r, (counts.get(r) ?? 0) + 1);
  if (code & F_CPU) add('insufficient cpu');
  if (code & F_MEMORY) add('insufficient memory');
  const base = code & 0xff;
  if (base !== F_OK) add(REASONS[base] as string);
}

/**
 * How many feasible nodes to find before scoring, as kube-scheduler's percentageOfNodesToScore:
 * every node up to 100, then a share that falls from 50 % to 5 % as the fleet grows (never fewer
 * than 100). Scanning stops there, so a placement costs O(feasible wanted), not O(fleet).
 */
export function feasibleNodesToFind(total: number): number {
  if (total <= 100) return total;
  const pct = Math.max(5, 50 - Math.floor(total / 125));
  return Math.max(100, Math.floor((total * pct) / 100));
}

function utilisation(s: NodeState, pod: PodView): number {
  const a = s.node.allocatable;
  const cpu = a.cpu > 0 ? (s.scoreCpu + (pod.cpu || DEFAULT_SCORING_CPU)) / a.cpu : 1;
  const mem = a.memory > 0 ? (s.scoreMemory + (pod.memory || DEFAULT_SCORING_MEMORY)) / a.memory : 1;
  return (Math.min(cpu, 1) + Math.min(mem, 1)) / 2;
}

function score(s: NodeState, pod: PodView, scoring: Scoring): number {
  const u = utilisation(s, pod);
  let v = scoring === 'MostAllocated' ? u * 100 : (1 - u) * 100;
  if (s.node.taints.length > 0 && pod.constraints && untoleratedTaint(s.node.taints, pod.constraints.tolerations, ['PreferNoSchedule'])) v -= 50;
  return v;
}

/** Formats the unschedulable reason: "0/5 nodes available: 3 insufficient memory, 2 node selector mismatch". */
export function unschedulableReason(total: number, counts: ReadonlyMap<string, number>): string {
  const parts = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([r, n]) => `${n} ${r}`);
  return `0/${total} nodes available${parts.length ? `: ${parts.join(', ')}` : ''}`;
}

/**
 * Places pending pods, oldest first. Large fleets are scanned only until enough feasible nodes are
 * found (see feasibleNodesToFind), always from the first node by name, so results stay deterministic
 * and bin packing fills the same nodes first. Filters: readiness and cordon (not for DaemonSet pods, which
 * are pinned to their node), nodeSelector, required node affinity, NoSchedule/NoExecute taints,
 * host ports, CPU and memory requests against allocatable, hard topology spread. Scores:
 * MostAllocated (bin packing, default) or LeastAllocated, minus a penalty for PreferNoSchedule
 * taints and for soft spread skew. Ties go to the node whose name sorts first: the same input
 * always gives the same plan.
 */
export function schedule(input: ScheduleInput): SchedulePlan {
  const nodes = [...input.nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const states = new Map<string, NodeState>();
  for (const n of nodes) states.set(n.id, { node: n, cpu: 0, memory: 0, scoreCpu: 0, scoreMemory: 0, ports: new Set(), perWorkload: new Map() });
  for (const p of input.placed) {
    const s = p.nodeId ? states.get(p.nodeId) : undefined;
    if (s) addPod(s, p);
  }
  const ordered = [...states.values()];
  const plan: SchedulePlan = { assign: [], unschedulable: [] };
  const pending = [...input.pending].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  const want = feasibleNodesToFind(ordered.length);
  // Static filters are evaluated once per distinct set of constraints (the pods of one workload
  // share them), so a placement costs a walk over the statically eligible nodes, not the fleet.
  const staticCache = new Map<string, { key: string; eligible: NodeState[]; counts: Map<string, number> }>();
  const staticOf = (pod: PodView) => {
    const c = pod.constraints;
    const key = `${pod.pinnedNode ?? ''}\u0000${c ? JSON.stringify([c.nodeSelector, c.affinityTerms, c.tolerations]) : ''}`;
    let hit = staticCache.get(key);
    if (!hit) {
      hit = { key, eligible: [], counts: new Map() };
      for (const s of ordered) {
        const code = staticFilter(s, pod);
        if (code === F_OK) hit.eligible.push(s);
        else countFiltered(hit.counts, code);
      }
      staticCache.set(key, hit);
    }
    return hit;
  };
  // Nodes only fill up while a plan is made: a node that could not take a pod cannot take an
  // identical one later in the same plan. Identical pods (same constraints, requests and host
  // ports) therefore resume the scan where the previous one found room, with the reasons of the
  // nodes skipped carried over.
  const cursors = new Map<string, { index: number; counts: Map<string, number> }>();
  let rotation = 0;
  for (const pod of pending) {
    const st = staticOf(pod);
    const cursorKey = `${st.key}\u0000${pod.cpu}\u0000${pod.memory}\u0000${pod.hostPorts.join(',')}`;
    let cursor = cursors.get(cursorKey);
    if (!cursor) {
      cursor = { index: 0, counts: new Map() };
      cursors.set(cursorKey, cursor);
    }
    const counts = new Map(st.counts);
    for (const [r, n] of cursor.counts) counts.set(r, (counts.get(r) ?? 0) + n);
    const feasible: NodeState[] = [];
    const spread = pod.constraints?.topologySpread ?? [];
    // Spread constraints count pods over every domain, so they see every node.
    const enough = spread.length > 0 || pod.pinnedNode !== null ? ordered.length : want;
    const eligible = st.eligible;
    const scoring = pod.constraints?.scoring ?? 'MostAllocated';
    if (scoring === 'LeastAllocated' && enough < eligible.length) {
      // Spreading: each scan starts where the last one stopped (kube-scheduler's rotating start
      // index), so a sampled window never keeps landing on the same first nodes.
      const start = rotation % eligible.length;
      let examined = 0;
      for (; examined < eligible.length; examined++) {
        const s = eligible[(start + examined) % eligible.length] as NodeState;
        const code = dynamicFilter(s, pod);
        if (code === F_OK) {
          feasible.push(s);
          if (feasible.length >= enough) {
            examined++;
            break;
          }
        } else countFiltered(counts, code);
      }
      rotation = start + examined;
    } else {
      let advancing = true;
      let i = cursor.index;
      for (; i < eligible.length; i++) {
        const s = eligible[i] as NodeState;
        const code = dynamicFilter(s, pod);
        if (code === F_OK) {
          if (advancing) {
            cursor.index = i;
            advancing = false;
          }
          feasible.push(s);
          if (feasible.length >= enough) break;
        } else {
          countFiltered(counts, code);
          if (advancing) countFiltered(cursor.counts, code);
        }
      }
      if (advancing) cursor.index = i;
    }
    const penalty = new Map<NodeState, number>();
    let candidates = feasible;
    for (const tc of spread) {
      // Pods of this workload per domain, over the domains of the nodes the pod could go to.
      const perDomain = new Map<string, number>();
      for (const s of feasible) {
        const d = s.node.labels[tc.topologyKey];
        if (d === undefined) continue;
        perDomain.set(d, (perDomain.get(d) ?? 0) + (s.perWorkload.get(pod.deploymentId) ?? 0));
      }
      const min = perDomain.size > 0 ? Math.min(...perDomain.values()) : 0;
      const next: NodeState[] = [];
      for (const s of candidates) {
        const d = s.node.labels[tc.topologyKey];
        const skew = d === undefined ? Infinity : (perDomain.get(d) ?? 0) + 1 - min;
        if (tc.whenUnsatisfiable === 'DoNotSchedule' && skew > tc.maxSkew) counts.set('topology spread constraint', (counts.get('topology spread constraint') ?? 0) + 1);
        else {
          next.push(s);
          if (tc.whenUnsatisfiable === 'ScheduleAnyway') penalty.set(s, (penalty.get(s) ?? 0) + (Number.isFinite(skew) ? 20 * Math.max(0, skew - 1) : 100));
        }
      }
      candidates = next;
    }
    let best: NodeState | undefined;
    let bestScore = -Infinity;
    for (const s of candidates) {
      const v = score(s, pod, scoring) - (penalty.get(s) ?? 0);
      if (v > bestScore) {
        best = s;
        bestScore = v;
      }
    }
    if (!best) {
      plan.unschedulable.push({ podId: pod.id, reason: unschedulableReason(nodes.length, counts) });
      continue;
    }
    plan.assign.push({ podId: pod.id, nodeId: best.node.id });
    addPod(best, pod);
  }
  return plan;
}
