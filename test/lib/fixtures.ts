import type { ActualContainer } from '../../agent/reconcile.js';
import type { NodeView, PodConstraints, PodView } from '../../control-plane/core/types.js';
import type { PodSpec } from '../../shared/manifest.js';
import type { DesiredPod } from '../../shared/protocol.js';

/** A Deployment manifest for tests (busybox httpd serving /www). */
export interface ManifestOptions {
  replicas?: number;
  image?: string;
  namespace?: string;
  nodeSelector?: Record<string, string>;
  hostPort?: number;
  annotations?: Record<string, string>;
  /** Spread replicas over nodes (topology spread on kubernetes.io/hostname, maxSkew 1). */
  spread?: boolean;
  /** Extra pod spec fields (tolerations, affinity, restartPolicy, ...). */
  pod?: Record<string, unknown>;
  /** Extra fields of the web container (resources, probes, command, ...). */
  container?: Record<string, unknown>;
  /** The pod's containers, instead of the one web container. */
  containers?: Record<string, unknown>[];
  kind?: 'Deployment' | 'DaemonSet';
}

export function deploymentManifest(name: string, o: ManifestOptions = {}) {
  const kind = o.kind ?? 'Deployment';
  return {
    apiVersion: 'apps/v1',
    kind,
    metadata: { name, ...(o.namespace ? { namespace: o.namespace } : {}), labels: { app: name }, ...(o.annotations ? { annotations: o.annotations } : {}) },
    spec: {
      ...(kind === 'Deployment' ? { replicas: o.replicas ?? 1 } : {}),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          ...(o.nodeSelector ? { nodeSelector: o.nodeSelector } : {}),
          ...(o.spread ? { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule' }] } : {}),
          ...(o.pod ?? {}),
          containers: o.containers ?? [
            {
              name: 'web',
              image: o.image ?? 'local/busybox:1',
              command: ['httpd', '-f', '-p', '80', '-h', '/www'],
              ports: [{ containerPort: 80, ...(o.hostPort ? { hostPort: o.hostPort } : {}) }],
              ...(o.container ?? {}),
            },
          ],
        },
      },
    },
  };
}

/** A pod view for core tests. */
export function podView(id: string, o: Partial<PodView> = {}): PodView {
  return {
    id,
    deploymentId: 'd1',
    revision: 1,
    nodeId: null,
    desired: 'run',
    phase: 'Pending',
    ready: false,
    readySince: null,
    restarts: 0,
    createdAt: 0,
    leaseExpiresAt: 0,
    cpu: 0,
    memory: 0,
    hostPorts: [],
    policy: 'stop',
    pinnedNode: null,
    constraints: constraints(),
    ...o,
  };
}

/** Scheduling constraints for core tests. */
export function constraints(o: Partial<PodConstraints> = {}): PodConstraints {
  return { nodeSelector: {}, affinityTerms: [], tolerations: [], topologySpread: [], scoring: 'MostAllocated', ...o };
}

/** A node view for core tests. */
export function nodeView(id: string, o: Partial<NodeView> = {}): NodeView {
  return { id, name: id, labels: {}, taints: [], allocatable: { cpu: 2000, memory: 4 * 1024 ** 3 }, ready: true, cordoned: false, draining: false, ...o };
}

/** A desired pod for agent planner tests. */
export function desiredPod(id: string, spec: Partial<PodSpec> = {}, o: Partial<DesiredPod> = {}): DesiredPod {
  return {
    id,
    name: `pod-${id}`,
    namespace: 'default',
    workload: 'web',
    revision: 1,
    specDigest: `digest-${id}`,
    epoch: 1,
    labels: {},
    spec: { containers: [{ name: 'web', image: 'local/busybox:1', env: [], ports: [] }], ...spec } as PodSpec,
    lease: 'x',
    ...o,
  };
}

/** An actual container for agent planner tests. */
export function actual(id: string, podId: string, o: Partial<ActualContainer> = {}): ActualContainer {
  return {
    id,
    podId,
    podName: `pod-${podId}`,
    namespace: 'default',
    workload: 'web',
    container: 'web',
    digest: `digest-${podId}`,
    epoch: 1,
    image: 'local/busybox:1',
    state: 'running',
    restarts: 0,
    backoff: 0,
    hostPorts: [],
    ...o,
  };
}
