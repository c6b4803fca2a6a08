import { sql } from 'drizzle-orm';
import { check, index, integer, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

// All times are integer milliseconds since the epoch. JSON columns hold validated documents.
// Every write that depends on what was read is a conditional statement inside one db.batch():
// no interactive transactions (D1 has none).

/** Cluster-wide facts: cluster id, and anything that must be the same for every instance. */
export const meta = sqliteTable('meta', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

export const namespaces = sqliteTable('namespaces', {
  name: text('name').primaryKey(),
  uid: text('uid').notNull(),
  labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
  createdAt: integer('created_at').notNull(),
});

/** Operator API tokens; only the SHA-256 of the token is stored. */
export const apiTokens = sqliteTable('api_tokens', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  hash: text('hash').notNull().unique(),
  scope: text('scope', { enum: ['admin', 'deploy', 'read'] }).notNull(),
  namespaces: text('namespaces', { mode: 'json' }).$type<string[] | null>(),
  createdAt: integer('created_at').notNull(),
  expiresAt: integer('expires_at'),
  revokedAt: integer('revoked_at'),
});

/** Enrollment tokens; only the SHA-256 of the token is stored. */
export const enrollmentTokens = sqliteTable('enrollment_tokens', {
  id: text('id').primaryKey(),
  hash: text('hash').notNull().unique(),
  maxUses: integer('max_uses').notNull(),
  uses: integer('uses').notNull().default(0),
  labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
  expiresAt: integer('expires_at').notNull(),
  createdAt: integer('created_at').notNull(),
  revokedAt: integer('revoked_at'),
});

/** A node taint. */
export interface NodeTaint {
  key: string;
  value?: string;
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  /** When the taint was added (ms): NoExecute tolerations with `tolerationSeconds` count from here. */
  timeAdded?: number;
}

export const nodes = sqliteTable(
  'nodes',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    publicKey: text('public_key', { mode: 'json' }).$type<Record<string, string>>().notNull(),
    encryptionKey: text('encryption_key', { mode: 'json' }).$type<Record<string, string> | null>(),
    labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
    facts: text('facts', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    enrollmentTokenId: text('enrollment_token_id'),
    enrolledAt: integer('enrolled_at').notNull(),
    revokedAt: integer('revoked_at'),
    cordoned: integer('cordoned', { mode: 'boolean' }).notNull().default(false),
    /** Drain requested: cordoned, and Deployment pods are moved off (replacement Ready first). */
    draining: integer('draining', { mode: 'boolean' }).notNull().default(false),
    /** Taints, as in Kubernetes: pods without a matching toleration are kept off (NoSchedule) or evicted (NoExecute). */
    taints: text('taints', { mode: 'json' }).$type<NodeTaint[]>().notNull().default([]),
    /** Operator override of allocatable resources (else reported capacity minus the configured reserve). */
    allocatable: text('allocatable', { mode: 'json' }).$type<{ cpu?: number; memory?: number } | null>(),
    /** The Ready condition last recorded by the node controller (transitions make events). */
    ready: integer('ready', { mode: 'boolean' }).notNull().default(true),
    /** Bumped whenever what this node should run changes; the agent's ETag. */
    desiredVersion: integer('desired_version').notNull().default(1),
  },
  (t) => [
    uniqueIndex('nodes_live_name').on(t.name).where(sql`revoked_at IS NULL`),
    index('nodes_revoked').on(t.revokedAt),
    // The controllers' work check reads these few nodes by index instead of every (wide) node row:
    // recorded NotReady, draining, tainted. Queries must repeat the WHERE term for SQLite to use them.
    index('nodes_not_ready').on(t.id).where(sql`ready = 0`),
    index('nodes_draining').on(t.id).where(sql`draining = 1`),
    index('nodes_tainted').on(t.id).where(sql`taints != '[]'`),
  ],
);

/**
 * Liveness and lease expiry of each node: the hot, narrow half of a node (hot/cold split). Renewals
 * rewrite only these small rows, so a burst of renewals touches a few pages and WAL checkpoints stay
 * cheap. All of a node's leases are renewed together, so one row carries them all: a pod's lease
 * is its node's. Written at most once per renewal period per node (the heartbeat economy).
 */
export const nodeLeases = sqliteTable(
  'node_leases',
  {
    nodeId: text('node_id').primaryKey(),
    lastSeenAt: integer('last_seen_at').notNull(),
    leaseExpiresAt: integer('lease_expires_at').notNull(),
  },
  // Nodes that stopped renewing, by range: the node controller reads only those.
  (t) => [index('node_leases_seen').on(t.lastSeenAt)],
);

/** Ed25519 lease-signing keys. The newest unretired key signs; all keys not yet expired are in the JWKS. */
export const signingKeys = sqliteTable('signing_keys', {
  kid: text('kid').primaryKey(),
  privateJwk: text('private_jwk', { mode: 'json' }).$type<Record<string, string>>().notNull(),
  publicJwk: text('public_jwk', { mode: 'json' }).$type<Record<string, string>>().notNull(),
  createdAt: integer('created_at').notNull(),
  /** When it stopped signing; it stays published until every lease it signed has expired. */
  retiredAt: integer('retired_at'),
});

/**
 * The rollout controller's record of a workload's current revision (controller-owned; the API
 * renders it as `status.rollout` and the Progressing condition).
 */
export interface RolloutRecord {
  revision: number;
  /** Progressing, Complete, Paused, CanaryHold (canary pods up, waiting for promotion), Failed (paused on failure, or nothing to roll back to). */
  state: 'Progressing' | 'Complete' | 'Paused' | 'CanaryHold' | 'Failed';
  reason: string;
  message: string;
  /** When the state last changed (ms). */
  since: number;
  /** Last progress (ms) and the counts it was measured by: more updated or available pods, fewer old ones. */
  progressAt: number;
  updated: number;
  available: number;
  outdated: number;
  /** Canary: when every canary pod was first available; and whether the canary was promoted. */
  canaryAvailableAt?: number;
  promoted?: boolean;
  /** Failed and paused by the controller (the workload's `flotilla.dev/on-failure: pause`): resuming retries. */
  pausedOnFailure?: boolean;
  /** This revision is an automatic rollback: from which revision, to which one's template, and why. */
  rolledBack?: { from: number; to: number; reason: string; message: string; at: number };
}

/**
 * Workloads (Deployments and DaemonSets; the table keeps its first name). `want` is how many pods the
 * last plan wanted (DaemonSets: matching nodes) and `observed_fleet` the fleet version it saw, so the
 * idle check can tell in SQL whether a DaemonSet needs a look.
 */
export const deployments = sqliteTable(
  'deployments',
  {
    id: text('id').primaryKey(),
    kind: text('kind', { enum: ['Deployment', 'DaemonSet'] })
      .notNull()
      .default('Deployment'),
    want: integer('want').notNull().default(0),
    observedFleet: integer('observed_fleet').notNull().default(-1),
    namespace: text('namespace').notNull(),
    name: text('name').notNull(),
    labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
    annotations: text('annotations', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
    /** The validated spec (replicas, selector, template). */
    spec: text('spec', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    generation: integer('generation').notNull(),
    revision: integer('revision').notNull(),
    templateDigest: text('template_digest').notNull(),
    /** Optimistic-concurrency guard for controller plans: bumped, with a unique stamp, by every plan. */
    planVersion: integer('plan_version').notNull().default(0),
    planStamp: text('plan_stamp'),
    /** Rollout state of the current revision (see RolloutRecord); null until the controller first looks. */
    rollout: text('rollout', { mode: 'json' }).$type<RolloutRecord | null>(),
    /** The last revision that was fully rolled out and available: what an automatic rollback returns to. */
    stableRevision: integer('stable_revision').notNull().default(0),
    /** A canary of this revision was promoted by an operator (`rollout promote`). */
    promotedRevision: integer('promoted_revision').notNull().default(0),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [uniqueIndex('deployments_ns_kind_name').on(t.namespace, t.kind, t.name)],
);

export const revisions = sqliteTable(
  'revisions',
  {
    deploymentId: text('deployment_id').notNull(),
    revision: integer('revision').notNull(),
    template: text('template', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    digest: text('digest').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [uniqueIndex('revisions_pk').on(t.deploymentId, t.revision)],
);

export const pods = sqliteTable(
  'pods',
  {
    id: text('id').primaryKey(),
    namespace: text('namespace').notNull(),
    name: text('name').notNull(),
    deploymentId: text('deployment_id').notNull(),
    workload: text('workload').notNull(),
    revision: integer('revision').notNull(),
    spec: text('spec', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    specDigest: text('spec_digest').notNull(),
    labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
    /** Summed requests (millicores, bytes) and host ports, so a tick needs no pod specs for placed pods. */
    cpuRequest: integer('cpu_request').notNull().default(0),
    memoryRequest: integer('memory_request').notNull().default(0),
    hostPorts: text('host_ports', { mode: 'json' }).$type<string[]>().notNull().default([]),
    /** Disconnect policy: 'stop' pods move when their node's lease lapses; 'keep' pods stay. */
    policy: text('policy', { enum: ['stop', 'keep'] })
      .notNull()
      .default('stop'),
    /** A DaemonSet pod belongs to one node: placement considers only it. */
    pinnedNode: text('pinned_node'),
    nodeId: text('node_id'),
    /** Fencing epoch: only increases, bumped whenever the slot is (re)assigned. */
    epoch: integer('epoch').notNull().default(0),
    /** 'run' or 'stop' (terminating). */
    desired: text('desired', { enum: ['run', 'stop'] })
      .notNull()
      .default('run'),
    phase: text('phase').notNull().default('Pending'),
    ready: integer('ready', { mode: 'boolean' }).notNull().default(false),
    /** Since when the pod has been Ready without interruption (for minReadySeconds); null while not Ready. */
    readySince: integer('ready_since'),
    /** Container restarts reported by the agent (summed over containers): crash loops fail a rollout. */
    restarts: integer('restarts').notNull().default(0),
    reason: text('reason'),
    message: text('message'),
    status: text('status', { mode: 'json' }).$type<Record<string, unknown>>(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
    deletionRequestedAt: integer('deletion_requested_at'),
  },
  (t) => [
    uniqueIndex('pods_ns_name').on(t.namespace, t.name),
    index('pods_node').on(t.nodeId),
    // A workload's pods by state and revision: the controllers' idle check and rollout counts read
    // the index alone (with `pods_deployment` each pod row was read: 3.5 ms per tick at 2,500 pods).
    index('pods_workload').on(t.deploymentId, t.desired, t.revision),
    // What the controllers look for on every tick: pods to place, pods terminating.
    index('pods_pending').on(t.createdAt).where(sql`node_id IS NULL AND desired = 'run'`),
    index('pods_stopping').on(t.nodeId).where(sql`desired = 'stop'`),
  ],
);

export const events = sqliteTable(
  'events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    namespace: text('namespace').notNull(),
    kind: text('kind').notNull(),
    name: text('name').notNull(),
    type: text('type', { enum: ['Normal', 'Warning'] }).notNull(),
    reason: text('reason').notNull(),
    message: text('message').notNull(),
    source: text('source').notNull(),
    at: integer('at').notNull(),
  },
  (t) => [index('events_object').on(t.namespace, t.kind, t.name), index('events_at').on(t.at)],
);

/** Rate limit for controller ticks piggybacked on requests: whoever moves `until` runs the tick. */
export const controllerLocks = sqliteTable('controller_locks', {
  name: text('name').primaryKey(),
  until: integer('until').notNull(),
});

/**
 * Secrets and ConfigMaps. A Secret's values are sealed (AES-256-GCM, `kid` names the master key);
 * a ConfigMap's are stored as they are. `keys` lists key names and sizes for the API, which never
 * returns a Secret's values. `version` goes up with every change of the values.
 */
export const configObjects = sqliteTable(
  'config_objects',
  {
    id: text('id').primaryKey(),
    namespace: text('namespace').notNull(),
    kind: text('kind', { enum: ['Secret', 'ConfigMap'] }).notNull(),
    name: text('name').notNull(),
    type: text('type').notNull(),
    labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
    annotations: text('annotations', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
    keys: text('keys', { mode: 'json' }).$type<{ key: string; size: number }[]>().notNull(),
    /** ConfigMap: JSON of the values. Secret: JSON of the sealed JSON of base64 values. */
    data: text('data').notNull(),
    kid: text('kid'),
    version: integer('version').notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [uniqueIndex('config_objects_ns_kind_name').on(t.namespace, t.kind, t.name)],
);

/**
 * Services: a stable name, address and port for the Ready pods their selector matches. `clusterIp`
 * is the service's address in 127.77.0.0/16 on every node (the agents' proxies listen there);
 * `nodePorts` the ports a NodePort service opens on every node. `version` goes up with every change.
 */
export const services = sqliteTable(
  'services',
  {
    id: text('id').primaryKey(),
    namespace: text('namespace').notNull(),
    name: text('name').notNull(),
    type: text('type', { enum: ['ClusterIP', 'NodePort'] }).notNull(),
    spec: text('spec', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
    annotations: text('annotations', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
    clusterIp: text('cluster_ip').notNull(),
    version: integer('version').notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [uniqueIndex('services_ns_name').on(t.namespace, t.name), uniqueIndex('services_cluster_ip').on(t.clusterIp)],
);

/**
 * PersistentVolumeClaims of the `local` class: a Docker named volume (`flotilla-pvc-<id>`) on the
 * node the claim binds to (that of its first pod; null while Pending). Deleting a claim sets
 * `deletionRequestedAt`; once no pod uses it, Retain (or an unbound claim) removes the row and
 * leaves any data, Delete moves it to `Releasing` until the node's agent has removed the volume.
 */
export const volumeClaims = sqliteTable(
  'volume_claims',
  {
    id: text('id').primaryKey(),
    namespace: text('namespace').notNull(),
    name: text('name').notNull(),
    storageClass: text('storage_class').notNull(),
    storageBytes: integer('storage_bytes').notNull(),
    storage: text('storage').notNull(),
    accessModes: text('access_modes', { mode: 'json' }).$type<string[]>().notNull(),
    reclaimPolicy: text('reclaim_policy', { enum: ['Delete', 'Retain'] }).notNull(),
    labels: text('labels', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
    annotations: text('annotations', { mode: 'json' }).$type<Record<string, string>>().notNull().default({}),
    nodeId: text('node_id'),
    phase: text('phase', { enum: ['Pending', 'Bound', 'Releasing'] }).notNull(),
    boundAt: integer('bound_at'),
    version: integer('version').notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
    deletionRequestedAt: integer('deletion_requested_at'),
  },
  (t) => [uniqueIndex('volume_claims_ns_name').on(t.namespace, t.name), index('volume_claims_node').on(t.nodeId)],
);

/**
 * Log sessions: an operator's `logs` request waiting for (or being served by) the pod's node. The
 * node's agent reads the container's log from Docker and uploads it in chunks; the request that
 * opened the session streams them out and deletes each once written. Nothing outlives delivery:
 * a session and its chunks are deleted when the client is done or when it expires.
 */
export const logSessions = sqliteTable(
  'log_sessions',
  {
    id: text('id').primaryKey(),
    nodeId: text('node_id').notNull(),
    podId: text('pod_id').notNull(),
    container: text('container').notNull(),
    tailLines: integer('tail_lines'),
    sinceSeconds: integer('since_seconds'),
    follow: integer('follow', { mode: 'boolean' }).notNull(),
    limitBytes: integer('limit_bytes').notNull(),
    /** pending (not picked up yet), streaming, done (the agent sent everything), closed (the client left). */
    state: text('state', { enum: ['pending', 'streaming', 'done', 'closed'] }).notNull(),
    error: text('error'),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [index('log_sessions_node').on(t.nodeId, t.state)],
);

export const logChunks = sqliteTable(
  'log_chunks',
  {
    sessionId: text('session_id').notNull(),
    seq: integer('seq').notNull(),
    data: text('data').notNull(),
  },
  (t) => [uniqueIndex('log_chunks_pk').on(t.sessionId, t.seq)],
);

/**
 * The change log behind watches and resourceVersions: one row per committed change of a watched object, written by
 * triggers (migration 0008) in the same transaction as the change, so nothing is lost and the
 * order of `seq` is the order of commits. `object` is the row as it was after the change (before,
 * for DELETED); Secret values are never copied. An object's resourceVersion is the seq of its latest
 * change. Rows older than the watch retention are pruned by the tick, except each live object's
 * latest; `meta.changes_pruned_through` remembers the last pruned seq (older watches get 410).
 */
export const changes = sqliteTable(
  'changes',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    kind: text('kind').notNull(),
    namespace: text('namespace').notNull(),
    name: text('name').notNull(),
    type: text('type', { enum: ['ADDED', 'MODIFIED', 'DELETED'] }).notNull(),
    object: text('object').notNull(),
    at: integer('at').notNull(),
  },
  (t) => [index('changes_kind_ns').on(t.kind, t.namespace, t.seq), index('changes_object').on(t.kind, t.namespace, t.name, t.seq), index('changes_at').on(t.at)],
);

/**
 * Never holds a row: a write conditional on an object's resourceVersion starts its batch with an
 * insert of `ok = 0` here that happens only when the version differs, so the CHECK fails and the
 * whole batch (one transaction) rolls back (If-Match, atomically, on libSQL and D1).
 */
export const preconditions = sqliteTable(
  'preconditions',
  {
    ok: integer('ok').notNull(),
  },
  (t) => [check('preconditions_ok', sql`${t.ok} = 1`)],
);

/**
 * Resource use as agents last reported it (`flotilla top`): one row per node (`pod_id` '') and per
 * pod, replaced by each report (every FLOTILLA_METRICS_INTERVAL on the agent). Not watched, not
 * history: like Kubernetes' metrics-server, the latest sample only.
 */
export const usage = sqliteTable(
  'usage',
  {
    nodeId: text('node_id').notNull(),
    podId: text('pod_id').notNull(),
    cpu: integer('cpu').notNull(),
    memory: integer('memory').notNull(),
    containers: text('containers', { mode: 'json' }).$type<Array<{ name: string; cpu: number; memory: number }>>().notNull().default([]),
    window: integer('window').notNull(),
    at: integer('at').notNull(),
  },
  (t) => [uniqueIndex('usage_pk').on(t.nodeId, t.podId)],
);
