import { and, asc, getTableColumns, gt, inArray, lte, sql } from 'drizzle-orm';
import type { SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { Db } from './db.js';
import { changes } from './schema.js';

// The change log behind watches (see schema.ts `changes`): triggers write it, watches read it.

export type ChangeRow = typeof changes.$inferSelect;

const PRUNED = 'changes_pruned_through';

/** The newest committed change (the resourceVersion a list reports); 0 before the first. */
export async function currentSeq(db: Db): Promise<number> {
  const row = await db.get<{ v: number | null }>(sql`SELECT COALESCE((SELECT MAX(seq) FROM changes), (SELECT CAST(value AS INTEGER) FROM meta WHERE key = ${PRUNED}), 0) AS v`);
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
 * them) and remember the newest dropped seq, for a batch.
 */
export function pruneChanges(db: Db, retentionMs: number) {
  const before = sql`CAST(strftime('%s', 'now') AS INTEGER) * 1000 - ${Math.floor(retentionMs)}`;
  return [
    db.run(
      sql`INSERT INTO meta (key, value) SELECT ${PRUNED}, CAST(MAX(seq) AS TEXT) FROM changes WHERE at < ${before} HAVING MAX(seq) IS NOT NULL ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    ),
    db.run(sql`DELETE FROM changes WHERE at < ${before}`),
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
