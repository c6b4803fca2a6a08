import { and, eq, inArray, isNotNull, ne, sql } from 'drizzle-orm';
import { canonicalJson } from '../../shared/digest.js';
import { conflict, invalid } from '../../shared/errors.js';
import { type ClaimManifest, claimNames, RECLAIM_POLICY_ANNOTATION } from '../../shared/manifest.js';
import { parseMemory } from '../../shared/quantity.js';
import type { Db } from './db.js';
import { type EventInput, insertEvent, insertEvents } from './events.js';
import { bumpNodes } from './pods.js';
import { nodes, volumeClaims } from './schema.js';
import { type ApplyOutcome, ensureNamespace } from './workloads.js';

/** A stored PersistentVolumeClaim row. */
export type ClaimRow = typeof volumeClaims.$inferSelect;

/** The Docker volume holding a claim's data on its node. */
export function claimVolumeName(claimId: string): string {
  return `flotilla-pvc-${claimId}`;
}

/**
 * Creates a claim, or updates its labels and annotations (the reclaim policy among them). The spec
 * (class, size, access modes) is fixed once created: a change is refused with its field path.
 */
export async function applyClaim(db: Db, m: ClaimManifest, namespace: string, now: number, source: string): Promise<{ row: ClaimRow; outcome: ApplyOutcome }> {
  const existing = await getClaim(db, namespace, m.metadata.name);
  const storage = String(m.spec.resources.requests.storage);
  const labels = m.metadata.labels ?? {};
  const annotations = m.metadata.annotations ?? {};
  const reclaimPolicy = annotations[RECLAIM_POLICY_ANNOTATION] === 'Retain' ? 'Retain' : 'Delete';
  if (existing) {
    if (existing.deletionRequestedAt !== null) throw conflict(`persistentvolumeclaim ${namespace}/${existing.name} is being deleted`);
    if (parseMemory(storage) !== existing.storageBytes)
      throw invalid(`spec.resources.requests.storage: a claim's size cannot change (it is ${existing.storage}); local volumes are not resized`, [
        { path: 'spec.resources.requests.storage', message: `is ${existing.storage} and cannot change` },
      ]);
    if (canonicalJson(existing.accessModes) !== canonicalJson(m.spec.accessModes)) throw invalid('spec.accessModes cannot change', [{ path: 'spec.accessModes', message: 'cannot change' }]);
    if (canonicalJson(existing.labels) === canonicalJson(labels) && canonicalJson(existing.annotations) === canonicalJson(annotations)) return { row: existing, outcome: 'unchanged' };
    const updated = { labels, annotations, reclaimPolicy, version: existing.version + 1, updatedAt: now } as const;
    const [res] = await db.batch([
      db
        .update(volumeClaims)
        .set(updated)
        .where(and(eq(volumeClaims.id, existing.id), eq(volumeClaims.version, existing.version)))
        .returning({ id: volumeClaims.id }),
      insertEvent(db, {
        namespace,
        kind: 'PersistentVolumeClaim',
        name: existing.name,
        type: 'Normal',
        reason: 'Updated',
        message: `updated by ${source}; reclaim policy ${reclaimPolicy}`,
        source: 'api',
        at: now,
      }),
    ]);
    if ((res as unknown[]).length !== 1) throw conflict(`persistentvolumeclaim ${namespace}/${existing.name} is being changed concurrently; try again`);
    return { row: { ...existing, ...updated }, outcome: 'configured' };
  }
  const row: ClaimRow = {
    id: crypto.randomUUID(),
    namespace,
    name: m.metadata.name,
    storageClass: m.spec.storageClassName,
    storageBytes: parseMemory(storage) as number,
    storage,
    accessModes: m.spec.accessModes,
    reclaimPolicy,
    labels,
    annotations,
    nodeId: null,
    phase: 'Pending',
    boundAt: null,
    version: 1,
    createdAt: now,
    updatedAt: now,
    deletionRequestedAt: null,
  };
  try {
    await db.batch([
      ensureNamespace(db, namespace, now),
      db.insert(volumeClaims).values(row),
      insertEvent(db, {
        namespace,
        kind: 'PersistentVolumeClaim',
        name: row.name,
        type: 'Normal',
        reason: 'WaitForFirstConsumer',
        message: `created by ${source}; binds to the node of the first pod that uses it`,
        source: 'api',
        at: now,
      }),
    ]);
  } catch (e) {
    if (/UNIQUE/i.test(String((e as Error).message) + String((e as { cause?: Error }).cause?.message ?? '')))
      throw conflict(`persistentvolumeclaim ${namespace}/${row.name} was created concurrently; try again`);
    throw e;
  }
  return { row, outcome: 'created' };
}

export function getClaim(db: Db, namespace: string, name: string): Promise<ClaimRow | undefined> {
  return db
    .select()
    .from(volumeClaims)
    .where(and(eq(volumeClaims.namespace, namespace), eq(volumeClaims.name, name)))
    .get();
}

export function listClaims(db: Db, namespace?: string): Promise<ClaimRow[]> {
  return db
    .select()
    .from(volumeClaims)
    .where(namespace === undefined ? undefined : eq(volumeClaims.namespace, namespace))
    .orderBy(volumeClaims.namespace, volumeClaims.name)
    .all();
}

/** Claims of these namespaces (for placing pods that use them). */
export function claimsOf(db: Db, namespaces: readonly string[]): Promise<ClaimRow[]> {
  if (namespaces.length === 0) return Promise.resolve([]);
  return db
    .select()
    .from(volumeClaims)
    .where(inArray(volumeClaims.namespace, [...new Set(namespaces)]))
    .all();
}

/** How many pods (running or still terminating) mount a claim. */
async function usersOf(db: Db, claim: Pick<ClaimRow, 'namespace' | 'name'>): Promise<number> {
  const r = await db.get<{ n: number }>(sql`SELECT COUNT(DISTINCT p.id) AS n FROM pods p, json_each(p.spec, '$.volumes') v
    WHERE p.namespace = ${claim.namespace} AND json_extract(v.value, '$.persistentVolumeClaim.claimName') = ${claim.name}`);
  return Number(r?.n ?? 0);
}

/** Marks a claim for deletion (it goes once no pod uses it); returns false if there is no such claim. */
export async function requestClaimDeletion(db: Db, row: ClaimRow, now: number, source: string): Promise<boolean> {
  if (row.deletionRequestedAt !== null) return true;
  const users = await usersOf(db, row);
  const [res] = await db.batch([
    db.update(volumeClaims).set({ deletionRequestedAt: now, updatedAt: now }).where(eq(volumeClaims.id, row.id)).returning({ id: volumeClaims.id }),
    insertEvent(db, {
      namespace: row.namespace,
      kind: 'PersistentVolumeClaim',
      name: row.name,
      type: 'Normal',
      reason: 'Terminating',
      message: `deletion requested by ${source}${users > 0 ? `; waits until the ${users} pod(s) using it are gone` : ''}`,
      source: 'api',
      at: now,
    }),
  ]);
  return (res as unknown[]).length === 1;
}

/**
 * Claims whose deletion was requested and that no pod uses any more: Retain, or never bound, or
 * bound to a node that is gone → the row goes (the data, if any, stays on the node); Delete → the
 * claim is `Releasing` and its node is told to remove the volume (the row goes on its answer).
 */
export async function finalizeClaims(db: Db, now: number): Promise<string[]> {
  const doomed = await db
    .select()
    .from(volumeClaims)
    .where(and(isNotNull(volumeClaims.deletionRequestedAt), ne(volumeClaims.phase, 'Releasing')))
    .all();
  if (doomed.length === 0) return [];
  const live = new Set((await db.select({ id: nodes.id }).from(nodes).where(sql`${nodes.revokedAt} IS NULL`).all()).map((n) => n.id));
  const stmts: Parameters<Db['batch']>[0][number][] = [];
  const evs: EventInput[] = [];
  const bump: string[] = [];
  for (const c of doomed) {
    if ((await usersOf(db, c)) > 0) continue;
    const ev = (message: string): EventInput => ({
      namespace: c.namespace,
      kind: 'PersistentVolumeClaim',
      name: c.name,
      type: 'Normal',
      reason: 'Deleted',
      message,
      source: 'volume-controller',
      at: now,
    });
    if (c.nodeId !== null && c.reclaimPolicy === 'Delete' && live.has(c.nodeId)) {
      stmts.push(db.update(volumeClaims).set({ phase: 'Releasing', updatedAt: now }).where(eq(volumeClaims.id, c.id)));
      bump.push(c.nodeId);
      continue;
    }
    stmts.push(db.delete(volumeClaims).where(eq(volumeClaims.id, c.id)));
    evs.push(
      ev(
        c.nodeId === null
          ? 'deleted (never bound: no data)'
          : c.reclaimPolicy === 'Retain'
            ? `deleted; reclaim policy Retain: Docker volume ${claimVolumeName(c.id)} is kept on its node`
            : `deleted; its node is gone, so was the volume ${claimVolumeName(c.id)}`,
      ),
    );
  }
  if (bump.length > 0) stmts.push(...bumpNodes(db, bump));
  stmts.push(...insertEvents(db, evs));
  if (stmts.length > 0) await db.batch(stmts as [Parameters<Db['batch']>[0][number]]);
  return bump;
}

/** Docker volumes this node must remove (claims `Releasing` on it). */
export async function volumeDeletesOf(db: Db, nodeId: string): Promise<string[]> {
  const rows = await db
    .select({ id: volumeClaims.id })
    .from(volumeClaims)
    .where(and(eq(volumeClaims.nodeId, nodeId), eq(volumeClaims.phase, 'Releasing')))
    .all();
  return rows.map((r) => claimVolumeName(r.id));
}

/** The node removed these volumes: their Releasing claims are gone. */
export async function volumesRemoved(db: Db, nodeId: string, nodeName: string, names: readonly string[], now: number): Promise<number> {
  const ids = names.filter((n) => n.startsWith('flotilla-pvc-')).map((n) => n.slice('flotilla-pvc-'.length));
  if (ids.length === 0) return 0;
  const rows = await db
    .delete(volumeClaims)
    .where(and(inArray(volumeClaims.id, ids), eq(volumeClaims.nodeId, nodeId), eq(volumeClaims.phase, 'Releasing')))
    .returning({ namespace: volumeClaims.namespace, name: volumeClaims.name, id: volumeClaims.id });
  if (rows.length > 0)
    await db.batch([
      // The node's desired state no longer lists them.
      ...bumpNodes(db, [nodeId]),
      ...insertEvents(
        db,
        rows.map((r) => ({
          namespace: r.namespace,
          kind: 'PersistentVolumeClaim',
          name: r.name,
          type: 'Normal' as const,
          reason: 'Deleted',
          message: `deleted; reclaim policy Delete: node ${nodeName} removed volume ${claimVolumeName(r.id)}`,
          source: 'volume-controller',
          at: now,
        })),
      ),
    ] as unknown as [Parameters<Db['batch']>[0][number]]);
  return rows.length;
}

/** For each pod, claim name -> Docker volume name of the claims it mounts (bound ones). */
export async function claimVolumesOf(db: Db, pods: readonly { id: string; namespace: string; spec: unknown }[]): Promise<Map<string, Record<string, string>>> {
  const users = pods.filter((p) => claimNames(p.spec).length > 0);
  if (users.length === 0) return new Map();
  const claims = await claimsOf(
    db,
    users.map((p) => p.namespace),
  );
  const byKey = new Map(claims.map((c) => [`${c.namespace}/${c.name}`, c]));
  return new Map(
    users.map((p) => [
      p.id,
      Object.fromEntries(
        claimNames(p.spec).flatMap((n) => {
          const c = byKey.get(`${p.namespace}/${n}`);
          return c ? [[n, claimVolumeName(c.id)]] : [];
        }),
      ),
    ]),
  );
}
