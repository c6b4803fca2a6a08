// Snapshot types the pure core works on. The shell loads them; the core never does I/O.

import type { NodeSelectorRequirement, Toleration, TopologySpreadConstraint } from '../../shared/manifest.js';
import type { NodeTaint } from '../store/schema.js';

/** What the scheduler needs of a pending pod (derived from its spec). */
export interface PodConstraints {
  nodeSelector: Record<string, string>;
  /** Required node affinity: OR of terms, each an AND of requirements. Empty: no constraint. */
  affinityTerms: NodeSelectorRequirement[][];
  tolerations: Toleration[];
  topologySpread: TopologySpreadConstraint[];
  /** Scoring for this pod's workload. */
  scoring: Scoring;
}

/** Scheduler scoring: pack nodes (default) or spread load. */
export type Scoring = 'MostAllocated' | 'LeastAllocated';

/** A pod as the controllers see it. */
export interface PodView {
  id: string;
  deploymentId: string;
  revision: number;
  nodeId: string | null;
  desired: 'run' | 'stop';
  phase: string;
  ready: boolean;
  /** Since when it has been Ready (ms), or null. */
  readySince: number | null;
  /** Container restarts (summed). */
  restarts: number;
  createdAt: number;
  leaseExpiresAt: number;
  /** Summed requests: millicores and bytes. */
  cpu: number;
  memory: number;
  /** Host ports bound, as "TCP/8080". */
  hostPorts: readonly string[];
  policy: 'stop' | 'keep';
  /** DaemonSet pods: the only node they may run on. */
  pinnedNode: string | null;
  /** Present for pods to be placed. */
  constraints?: PodConstraints;
}

/** A workload's desired state as the controllers see it. */
export interface DeploymentView {
  id: string;
  namespace: string;
  name: string;
  replicas: number;
  revision: number;
  /** How a new revision replaces the old (default: RollingUpdate, 25 % / 25 %). */
  strategy?: { type: 'RollingUpdate' | 'Recreate'; maxSurge: number; maxUnavailable: number };
  /** A pod counts as available once Ready for this long. */
  minReadyMs?: number;
  /** A paused Deployment does not roll out a new revision. */
  paused?: boolean;
  /** A canary not yet promoted: at most this many pods of the new revision. */
  canaryLimit?: number;
  /** DaemonSets: nodes that may be without an available pod during an update. */
  maxUnavailable?: number;
}

/** A node as the scheduler sees it. */
export interface NodeView {
  id: string;
  name: string;
  /** Stored labels plus the well-known ones (kubernetes.io/hostname, os, arch). */
  labels: Record<string, string>;
  taints: readonly NodeTaint[];
  /** Allocatable millicores and bytes. */
  allocatable: { cpu: number; memory: number };
  ready: boolean;
  cordoned: boolean;
  draining: boolean;
}
