import { and, eq, getTableColumns, gt, inArray, isNull, sql } from 'drizzle-orm';
import { sha256Hex } from '../../shared/digest.js';
import { conflict, unauthenticated } from '../../shared/errors.js';
import type { EnrollRequest } from '../../shared/protocol.js';
import { chunkRows, type Db, type Page, type PageQuery, readPage } from './db.js';
import { insertEvent } from './events.js';
import { bumpFleet } from './meta.js';
import { enrollmentTokens, type NodeTaint, nodeLeases, nodes, pods } from './schema.js';
import { consumeEnrollmentToken, usableEnrollmentToken } from './tokens.js';
import { isUniqueViolation } from './workloads.js';

/** A stored node with its liveness. */
export type NodeRow = typeof nodes.$inferSelect & { lastSeenAt: number; leaseExpiresAt: number };

/** Columns of a node joined with its liveness row. */
const nodeColumns = { ...getTableColumns(nodes), lastSeenAt: nodeLeases.lastSeenAt, leaseExpiresAt: nodeLeases.leaseExpiresAt };

function selectNodes(db: Db) {
  return db.select(nodeColumns).from(nodes).innerJoin(nodeLeases, eq(nodeLeases.nodeId, nodes.id));
}

/**
 * SQL condition on node_leases: the node is not revoked (a revoked node never renews). Correlated on
 * the primary key: a `NOT IN (SELECT ... WHERE revoked_at IS NOT NULL)` made SQLite scan every node
 * row on each renewal, a fifth of the control plane's CPU at a thousand nodes.
 */
export const leaseNotRevoked = sql`NOT EXISTS (SELECT 1 FROM nodes WHERE nodes.id = ${nodeLeases.nodeId} AND nodes.revoked_at IS NOT NULL)`;

/**
 * Enrolls a node with a one-batch compare-and-set: the node row is inserted only if the token is
 * usable, and the token's use is counted only if the node row now exists. Concurrent enrollments
 * against a token with one use left: exactly one wins (SQLite serialises the batches).
 */
export async function enrollNode(db: Db, req: EnrollRequest, now: number, leaseTtlMs: number): Promise<NodeRow> {
  const hash = await sha256Hex(req.token);
  const token = await db.select().from(enrollmentTokens).where(usableEnrollmentToken(hash, now)).get();
  if (!token) throw unauthenticated('enrollment token is invalid, expired, revoked or used up');
  const id = crypto.randomUUID();
  const labels = { ...(req.labels ?? {}), ...token.labels, 'kubernetes.io/hostname': req.name };
  const facts = req.facts as Record<string, unknown>;
  const values = [id, req.name, JSON.stringify(req.publicKey), req.encryptionKey ? JSON.stringify(req.encryptionKey) : null, JSON.stringify(labels), JSON.stringify(facts), token.id, now];
  try {
    await db.batch([
      db.run(sql`INSERT INTO nodes (id, name, public_key, encryption_key, labels, facts, enrollment_token_id, enrolled_at)
        SELECT ${sql.join(
          values.map((v) => sql`${v}`),
          sql`, `,
        )} WHERE EXISTS (SELECT 1 FROM enrollment_tokens WHERE ${usableEnrollmentToken(hash, now)})`),
      consumeEnrollmentToken(db, hash, now, id),
      db.run(sql`INSERT INTO node_leases (node_id, last_seen_at, lease_expires_at) SELECT ${id}, ${now}, ${now + leaseTtlMs} WHERE EXISTS (SELECT 1 FROM nodes WHERE id = ${id})`),
      db.run(sql`INSERT INTO events (namespace, kind, name, type, reason, message, source, at)
        SELECT '', 'Node', ${req.name}, 'Normal', 'Enrolled', ${`enrolled with token ${token.id}`}, 'api', ${now} WHERE EXISTS (SELECT 1 FROM nodes WHERE id = ${id})`),
      bumpFleet(db),
    ]);
  } catch (e) {
    if (isUniqueViolation(e)) throw conflict(`a node named "${req.name}" is already enrolled; choose another --name or revoke the old node`);
    throw e;
  }
  const row = await selectNodes(db).where(eq(nodes.id, id)).get();
  if (!row) throw unauthenticated('enrollment token is invalid, expired, revoked or used up');
  return row;
}

/** All nodes that are not revoked (or all, with `includeRevoked`). */
export function listNodes(db: Db, includeRevoked = false): Promise<NodeRow[]> {
  const q = selectNodes(db);
  return (includeRevoked ? q : q.where(isNull(nodes.revokedAt))).orderBy(nodes.name).all();
}

/** A page of the live nodes by name, read in SQL (see `listPodsPage`); nodes' keys are ['', name]. */
export async function listNodesPage(db: Db, q: PageQuery): Promise<Page<NodeRow>> {
  const live = isNull(nodes.revokedAt);
  const base = selectNodes(db)
    .where(and(live, q.after ? gt(nodes.name, q.after[1]) : undefined))
    .orderBy(nodes.name);
  return readPage(
    q.limit,
    (n) => (n ? base.limit(n) : base).all(),
    (last) =>
      db
        .select({ n: sql<number>`COUNT(*)` })
        .from(nodes)
        .where(and(live, gt(nodes.name, last.name))),
  );
}

/** A node's name and liveness, as pods, claims and watch events show it. */
export interface NodeName {
  name: string;
  lastSeenAt: number;
  leaseExpiresAt: number;
}

/**
 * Name and liveness of the given nodes (revoked ones too), read by primary key: what a page of
 * pods or claims, or a batch of watch events, names, never every node of the fleet.
 */
export async function nodeNamesOf(db: Db, ids: Iterable<string>): Promise<Map<string, NodeName>> {
  const out = new Map<string, NodeName>();
  for (const chunk of chunkRows(db, [...new Set(ids)], 1)) {
    const rows = await db
      .select({ id: nodes.id, name: nodes.name, lastSeenAt: nodeLeases.lastSeenAt, leaseExpiresAt: nodeLeases.leaseExpiresAt })
      .from(nodes)
      .innerJoin(nodeLeases, eq(nodeLeases.nodeId, nodes.id))
      .where(inArray(nodes.id, chunk))
      .all();
    for (const r of rows) out.set(r.id, { name: r.name, lastSeenAt: r.lastSeenAt, leaseExpiresAt: r.leaseExpiresAt });
  }
  return out;
}

/**
 * The most CPU (millicores) and memory (bytes) any live node can allocate, in one aggregate: the
 * same rule as `allocatableOf` (the operator's override, else the reported capacity less the
 * reserve), evaluated by SQLite over the nodes table instead of reading every node. Undefined
 * while no node is enrolled.
 */
export async function largestAllocatable(db: Db, reserve: { cpu: number; memory: number }): Promise<{ cpu: number; memory: number } | undefined> {
  const row = await db
    .select({
      n: sql<number>`COUNT(*)`,
      cpu: sql<number>`MAX(COALESCE(json_extract(${nodes.allocatable}, '$.cpu'), MAX(0, COALESCE(json_extract(${nodes.facts}, '$.cpus'), 0) * 1000 - ${reserve.cpu})))`,
      memory: sql<number>`MAX(COALESCE(json_extract(${nodes.allocatable}, '$.memory'), MAX(0, COALESCE(json_extract(${nodes.facts}, '$.memoryBytes'), 0) - ${reserve.memory})))`,
    })
    .from(nodes)
    .where(isNull(nodes.revokedAt))
    .get();
  return row && row.n > 0 ? { cpu: Number(row.cpu), memory: Number(row.memory) } : undefined;
}

/** A live node by name. */
export function getNodeByName(db: Db, name: string): Promise<NodeRow | undefined> {
  return selectNodes(db)
    .where(and(eq(nodes.name, name), isNull(nodes.revokedAt)))
    .get();
}

/**
 * Revokes a node: its next request fails, its leases are not renewed, and its pods are released
 * for deletion once their leases lapse (terminating).
 */
export async function revokeNode(db: Db, node: NodeRow, now: number, source: string): Promise<void> {
  await db.batch([
    db.update(nodes).set({ revokedAt: now }).where(eq(nodes.id, node.id)),
    db
      .update(pods)
      .set({ desired: 'stop', deletionRequestedAt: now, updatedAt: now })
      .where(and(eq(pods.nodeId, node.id), eq(pods.desired, 'run'))),
    insertEvent(db, { namespace: '', kind: 'Node', name: node.name, type: 'Warning', reason: 'Revoked', message: `revoked by ${source}`, source: 'api', at: now }),
    bumpFleet(db),
  ]);
}

/** What an operator may change on a node. */
export interface NodePatch {
  labels?: Record<string, string>;
  taints?: NodeTaint[];
  cordoned?: boolean;
  draining?: boolean;
  allocatable?: { cpu?: number; memory?: number } | null;
}

/** Updates a node's labels, taints, schedulability or allocatable override, with an event. */
export async function patchNode(db: Db, node: NodeRow, patch: NodePatch, now: number, source: string): Promise<void> {
  const set: Partial<typeof nodes.$inferInsert> = {};
  if (patch.labels !== undefined) set.labels = { ...patch.labels, 'kubernetes.io/hostname': node.name };
  if (patch.taints !== undefined) {
    // A taint that was already there keeps the time it was added; a new one is added now.
    const same = (a: NodeTaint, b: NodeTaint) => a.key === b.key && (a.value ?? '') === (b.value ?? '') && a.effect === b.effect;
    set.taints = patch.taints.map((t) => ({ key: t.key, ...(t.value ? { value: t.value } : {}), effect: t.effect, timeAdded: node.taints.find((o) => same(o, t))?.timeAdded ?? now }));
  }
  if (patch.cordoned !== undefined) set.cordoned = patch.cordoned;
  if (patch.draining !== undefined) set.draining = patch.draining;
  if (patch.allocatable !== undefined) set.allocatable = patch.allocatable;
  if (Object.keys(set).length === 0) return;
  const what = Object.keys(set).join(', ');
  const reason = patch.draining ? 'Draining' : patch.cordoned === true ? 'Cordoned' : patch.cordoned === false ? 'Uncordoned' : 'Updated';
  await db.batch([
    db.update(nodes).set(set).where(eq(nodes.id, node.id)),
    insertEvent(db, { namespace: '', kind: 'Node', name: node.name, type: 'Normal', reason, message: `${what} changed by ${source}`, source: 'api', at: now }),
    bumpFleet(db),
  ]);
}
