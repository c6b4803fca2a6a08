import { z } from 'zod';
import { podSpecSchema } from './manifest.js';

// The agent <-> control plane protocol. Validated by zod on both sides of the wire.

/** Facts an agent reports about its machine. */
export const nodeFactsSchema = z.strictObject({
  hostname: z.string().max(253),
  os: z.string().max(64),
  arch: z.string().max(64),
  cpus: z.number().int().min(0).max(4096),
  memoryBytes: z.number().int().min(0),
  dockerVersion: z.string().max(64),
  agentVersion: z.string().max(64),
  advertiseAddress: z.string().max(253).optional(),
});
export type NodeFacts = z.infer<typeof nodeFactsSchema>;

const jwk = z.looseObject({ kty: z.string(), crv: z.string(), x: z.string() });

/** POST /v1/agent/enroll body. */
export const enrollRequestSchema = z.strictObject({
  token: z.string().min(16).max(256),
  name: z
    .string()
    .max(63)
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1123 label'),
  publicKey: jwk,
  encryptionKey: jwk.optional(),
  labels: z.record(z.string(), z.string()).optional(),
  facts: nodeFactsSchema,
});
export type EnrollRequest = z.infer<typeof enrollRequestSchema>;

/** Answer to a successful enrollment. */
export interface EnrollResponse {
  nodeId: string;
  name: string;
  clusterId: string;
  /** `aud` the agent must put in its request JWTs. */
  audience: string;
  /** `iss` of the leases the agent must accept. */
  issuer: string;
  labels: Record<string, string>;
}

const hostPort = z.strictObject({
  containerPort: z.number().int(),
  protocol: z.enum(['TCP', 'UDP']),
  hostIP: z.string(),
  hostPort: z.number().int(),
});

const containerStatus = z.strictObject({
  name: z.string(),
  containerId: z.string().optional(),
  image: z.string(),
  state: z.enum(['waiting', 'running', 'terminated']),
  reason: z.string().max(256).optional(),
  exitCode: z.number().int().optional(),
  restartCount: z.number().int().min(0),
  startedAt: z.string().optional(),
  hostPorts: z.array(hostPort),
  /** Ready by its readiness probe (running, and started, without one). */
  ready: z.boolean().optional(),
  /** Passed its startup probe (or has none). */
  started: z.boolean().optional(),
  /** How the previous container of this name ended. */
  lastState: z
    .strictObject({
      exitCode: z.number().int(),
      reason: z.string().max(256),
      startedAt: z.string().optional(),
      finishedAt: z.string().optional(),
    })
    .optional(),
});

/** Pod phases, as in Kubernetes. */
export const POD_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'] as const;
export type PodPhase = (typeof POD_PHASES)[number];

/** One pod's observed state as an agent reports it. */
export const podStatusSchema = z.strictObject({
  podId: z.string(),
  epoch: z.number().int(),
  phase: z.enum(POD_PHASES),
  ready: z.boolean(),
  reason: z.string().max(256).optional(),
  message: z.string().max(1024).optional(),
  containers: z.array(containerStatus),
  /** True once nothing of this pod is left on the node (after a stop). */
  gone: z.boolean().optional(),
});
export type PodStatusReport = z.infer<typeof podStatusSchema>;
export type ContainerStatusReport = z.infer<typeof containerStatus>;

/** An event the agent reports (pulled, started, failed, ...). */
export const agentEventSchema = z.strictObject({
  podId: z.string(),
  type: z.enum(['Normal', 'Warning']),
  reason: z.string().max(64),
  message: z.string().max(1024),
});
export type AgentEvent = z.infer<typeof agentEventSchema>;

/** POST /v1/agent/heartbeat body: facts and statuses only when they changed. */
export const heartbeatRequestSchema = z.strictObject({
  facts: nodeFactsSchema.optional(),
  pods: z.array(podStatusSchema).max(1000).optional(),
  events: z.array(agentEventSchema).max(200).optional(),
});
export type HeartbeatRequest = z.infer<typeof heartbeatRequestSchema>;

/** Answer to a heartbeat: renewed leases (when renewed) and when to come back. */
export interface HeartbeatResponse {
  /** pod id -> fresh lease JWS; present only when the leases were renewed. */
  leases: Record<string, string>;
  nextHeartbeatMs: number;
  /** The node's desired-state version, so the agent knows whether to poll: read fresh when `pollIntervalMs` is present, else a hint. */
  desiredVersion: string;
  /**
   * Without long-poll (Workers): `desiredVersion` is current, so the agent polls when it differs from
   * its own, and otherwise at the latest this long after its last poll. Absent: poll after every heartbeat.
   */
  pollIntervalMs?: number;
}

/** One pod the node should run, with its lease. */
export const desiredPodSchema = z.strictObject({
  id: z.string(),
  name: z.string(),
  namespace: z.string(),
  workload: z.string(),
  revision: z.number().int(),
  specDigest: z.string(),
  epoch: z.number().int(),
  labels: z.record(z.string(), z.string()),
  spec: podSpecSchema,
  lease: z.string(),
  /** Versions of the Secrets and ConfigMaps the pod refers to (`Secret/db@3,...`): a change updates its mounted files. */
  configVersion: z.string().optional(),
  /** Claim name -> Docker volume holding its data on this node, for the claims the pod mounts. */
  volumeClaims: z.record(z.string(), z.string()).optional(),
});
export type DesiredPod = z.infer<typeof desiredPodSchema>;

/** A service a node proxies, with its ready endpoints per port. */
export const serviceStateSchema = z.strictObject({
  namespace: z.string(),
  name: z.string(),
  clusterIP: z.string(),
  type: z.enum(['ClusterIP', 'NodePort']),
  balance: z.enum(['round-robin', 'least-connections']),
  ports: z.array(
    z.strictObject({
      name: z.string().optional(),
      port: z.number().int(),
      nodePort: z.number().int().optional(),
      endpoints: z.array(z.strictObject({ ip: z.string(), port: z.number().int() })),
    }),
  ),
});
export type ServiceState = z.infer<typeof serviceStateSchema>;

/** GET /v1/agent/desired answer. */
export const desiredStateSchema = z.strictObject({
  version: z.string(),
  pods: z.array(desiredPodSchema),
  pollWaitMs: z.number().int(),
  heartbeatMs: z.number().int(),
  /** How often to report resource use (POST /v1/agent/metrics); 0 or absent: the agent's default. */
  metricsMs: z.number().int().min(0).optional(),
  /** Images to pull ahead of a rollout (the new template of workloads with old pods here). */
  prefetch: z
    .array(z.strictObject({ namespace: z.string(), workload: z.string(), image: z.string().max(512) }))
    .max(256)
    .optional(),
  /** Services this node proxies: those of the namespaces it runs pods of, and every NodePort service. */
  services: z.array(serviceStateSchema).optional(),
  /** Docker volumes of deleted claims (reclaim policy Delete) to remove; acknowledged with POST /v1/agent/volumes/removed. */
  volumeDeletes: z.array(z.string().max(128)).max(256).optional(),
  /** Operators' `logs` requests for this node's containers: upload each with POST /v1/agent/logs/{id}. */
  logs: z
    .array(
      z.strictObject({
        id: z.string(),
        podId: z.string(),
        container: z.string(),
        tailLines: z.number().int().optional(),
        sinceSeconds: z.number().int().optional(),
        follow: z.boolean(),
        limitBytes: z.number().int(),
      }),
    )
    .max(64)
    .optional(),
});
export type LogRequest = NonNullable<DesiredState['logs']>[number];

/** POST /v1/agent/logs/{id} body: one chunk of a container's log (data: UTF-8 text, at most 64 KiB). */
export const logChunkSchema = z.strictObject({
  seq: z.number().int().min(0),
  data: z.string().max(64 * 1024),
  done: z.boolean().optional(),
  error: z.string().max(512).optional(),
});

/** POST /v1/agent/volumes/removed body. */
export const volumesRemovedSchema = z.strictObject({ volumes: z.array(z.string().max(128)).min(1).max(256) });
export type DesiredState = z.infer<typeof desiredStateSchema>;

/** Container labels the agent writes and reads back to rebuild its view after a restart. */
export const LABELS = {
  managed: 'dev.flotilla.managed',
  node: 'dev.flotilla.node',
  pod: 'dev.flotilla.pod',
  podName: 'dev.flotilla.pod-name',
  namespace: 'dev.flotilla.namespace',
  workload: 'dev.flotilla.workload',
  container: 'dev.flotilla.container',
  revision: 'dev.flotilla.revision',
  digest: 'dev.flotilla.digest',
  epoch: 'dev.flotilla.epoch',
  restarts: 'dev.flotilla.restarts',
  backoff: 'dev.flotilla.backoff',
  /** The pod's terminationGracePeriodSeconds, when it sets one (a deleted pod's stop still knows it). */
  grace: 'dev.flotilla.grace-seconds',
} as const;

/**
 * What `GET /v1/agent/pods/{id}/config` carries inside its JWE: the pod's Secrets (values base64)
 * and ConfigMaps, with versions, and what it refers to that does not exist.
 */
export interface PodConfig {
  secrets: Record<string, { version: number; type: string; data: Record<string, string> }>;
  configMaps: Record<string, { version: number; data: Record<string, string> }>;
  missing: { kind: 'Secret' | 'ConfigMap'; name: string }[];
}

/** Resource use of one container: CPU in millicores (averaged since the previous sample), memory in bytes (working set). */
export const containerUsageSchema = z.strictObject({
  name: z.string().min(1).max(63),
  cpu: z.number().int().min(0).max(10_000_000),
  memory: z
    .number()
    .int()
    .min(0)
    .max(2 ** 52),
});

/** POST /v1/agent/metrics body: what the node and each of its pods use (for `flotilla top`). */
export const metricsReportSchema = z.strictObject({
  node: z.strictObject({
    cpu: z.number().int().min(0).max(10_000_000),
    memory: z
      .number()
      .int()
      .min(0)
      .max(2 ** 52),
  }),
  /** Seconds the averages cover. */
  window: z.number().min(0).max(86_400),
  pods: z.array(z.strictObject({ podId: z.string().min(1).max(64), containers: z.array(containerUsageSchema).max(64) })).max(1000),
});
export type MetricsReport = z.infer<typeof metricsReportSchema>;
