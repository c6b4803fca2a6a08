import { and, asc, desc, eq, getTableColumns, gt, inArray, lte, sql } from 'drizzle-orm';
import type { SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { Db } from './db.js';
import { keyAfter, keyThrough } from './pods.js';
import { changes } from './schema.js';

// The change log behind watches (see schema.ts `changes`): triggers write it, watches read it.

export type ChangeRow = typeof changes.$inferSelect;

const PRUNED = 'changes_pruned_through';

/** The newest committed change (the resourceVersion a list reports); 0 before the first. */
export async function currentSeq(db: Db): Promise<number> {
  const row = await db.get<{ v: number | null }>(sql`SELECT MAX(COALESCE((SELECT MAX(seq) FROM changes), 0), COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ${PRUNED}), 0)) AS v`);
  return Number(row?.v ?? 0);
}

/** The newest change that was pruned: a watch must start at or after it. */
export async function prunedThrough(db: Db): Promise<number> {
  const row = await db.get<{ v: number | null }>(sql`SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ${PRUNED}), 0) AS v`);
  return Number(row?.v ?? 0);
}

/** Changes of the given kinds (in one namespace, or all) after `after`, up to `upTo`, oldest first. */
export function readChanges(db: Db, q: { kinds: readonly string[]; namespace?: string; after: number; upTo: number; limit: number }): Promise<ChangeRow[]> {
  return db
    .select()
    .from(changes)
    .where(and(inArray(changes.kind, [...q.kinds]), q.namespace === undefined ? undefined : sql`${changes.namespace} = ${q.namespace}`, gt(changes.seq, q.after), lte(changes.seq, q.upTo)))
    .orderBy(asc(changes.seq))
    .limit(q.limit)
    .all();
}

/**
 * Statements that drop changes older than `retentionMs` (by the database's clock, which also stamps
 * them), except each live object's latest, and remember the newest dropped seq, for a batch.
 */
export function pruneChanges(db: Db, retentionMs: number) {
  const before = sql`CAST(strftime('%s', 'now') AS INTEGER) * 1000 - ${Math.floor(retentionMs)}`;
  // Each live object's latest change stays: it is the object's resourceVersion.
  const old = sql`at < ${before} AND (type = 'DELETED' OR kind = 'Event' OR seq < (SELECT MAX(c2.seq) FROM changes c2 WHERE c2.kind = changes.kind AND c2.namespace = changes.namespace AND c2.name = changes.name))`;
  return [
    db.run(
      sql`INSERT INTO meta (key, value) SELECT ${PRUNED}, CAST(MAX(seq) AS TEXT) FROM changes WHERE ${old} HAVING MAX(seq) IS NOT NULL ON CONFLICT (key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))`,
    ),
    db.run(sql`DELETE FROM changes WHERE ${old}`),
  ] as const;
}

/**
 * A row of `table` from the JSON a trigger copied (SQL column names, driver values), mapped the way
 * drizzle maps a selected row: JSON columns parsed, booleans as booleans.
 */
export function rowFromSnapshot<T extends SQLiteTable>(table: T, object: string): T['$inferSelect'] {
  const raw = JSON.parse(object) as Record<string, unknown>;
  const row: Record<string, unknown> = {};
  for (const [key, col] of Object.entries(getTableColumns(table))) {
    const v = raw[col.name];
    row[key] = v === null || v === undefined ? null : col.mapFromDriverValue(v);
  }
  return row as T['$inferSelect'];
}

/**
 * resourceVersions: the seq of each object's latest change, keyed `kind/namespace/name`
 * (namespace '' for nodes), for objects of the given kinds (in one namespace, or all; one name).
 */
export async function versionsOf(
  db: Db,
  kinds: readonly string[],
  namespace?: string,
  name?: string,
  range?: { after?: readonly [string, string]; through: readonly [string, string] },
): Promise<Map<string, number>> {
  // A page's objects: only their [namespace, name] range of the change log is read.
  const rows = await db
    .select({ kind: changes.kind, namespace: changes.namespace, name: changes.name, seq: sql<number>`MAX(${changes.seq})` })
    .from(changes)
    .where(
      and(
        inArray(changes.kind, [...kinds]),
        namespace === undefined ? undefined : eq(changes.namespace, namespace),
        name === undefined ? undefined : eq(changes.name, name),
        range?.after ? keyAfter(changes.namespace, changes.name, range.after, namespace) : undefined,
        range ? keyThrough(changes.namespace, changes.name, range.through, namespace) : undefined,
      ),
    )
    .groupBy(changes.kind, changes.namespace, changes.name)
    .all();
  return new Map(rows.map((r) => [`${r.kind}/${r.namespace}/${r.name}`, Number(r.seq)]));
}

/** The two snapshots of one object at `from` (if still kept) and at its latest change. */
export async function snapshotsOf(db: Db, kind: string, namespace: string, name: string, from: number): Promise<{ then?: ChangeRow; now?: ChangeRow }> {
  const where = and(eq(changes.kind, kind), eq(changes.namespace, namespace), eq(changes.name, name));
  const [then, now] = await Promise.all([
    db
      .select()
      .from(changes)
      .where(and(where, eq(changes.seq, from)))
      .get(),
    db.select().from(changes).where(where).orderBy(desc(changes.seq)).limit(1).get(),
  ]);
  return { then, now };
}

/** A statement for a batch that fails it (CHECK on `preconditions`) unless the object's latest change is `expected`. */
export function preconditionStmt(db: Db, kind: string, namespace: string, name: string, expected: number) {
  return db.run(sql`INSERT INTO preconditions (ok) SELECT 0 WHERE COALESCE((SELECT MAX(seq) FROM changes WHERE kind = ${kind} AND namespace = ${namespace} AND name = ${name}), 0) != ${expected}`);
}
