// Snapshot types the pure core works on. The shell loads them; the core never does I/O.

/** A pod as the controllers see it. */
export interface PodView {
  id: string;
  deploymentId: string;
  revision: number;
  nodeId: string | null;
  desired: 'run' | 'stop';
  phase: string;
  ready: boolean;
  createdAt: number;
  leaseExpiresAt: number;
  nodeSelector: Record<string, string>;
}

/** A Deployment's desired state as the controllers see it. */
export interface DeploymentView {
  id: string;
  namespace: string;
  name: string;
  replicas: number;
  revision: number;
}

/** A node as the scheduler sees it. */
export interface NodeView {
  id: string;
  name: string;
  labels: Record<string, string>;
  ready: boolean;
  cordoned: boolean;
}
