import type { DrizzleD1Database } from 'drizzle-orm/d1';
import { drizzle as drizzleD1 } from 'drizzle-orm/d1';
import type { LibSQLDatabase } from 'drizzle-orm/libsql';
import * as schema from './schema.js';

/**
 * The database handle every store function takes. drizzle's libSQL and D1 databases expose the same
 * query builder and `batch()`; we type against libSQL's and never use what differs (`transaction`,
 * driver-specific result metadata). Conditional writes report success through `.returning()`, which
 * behaves the same on both.
 */
export type Db = LibSQLDatabase<typeof schema>;

/** Wraps a D1 binding (Workers, or miniflare in tests) as a Db. */
export function fromD1(d1: D1DatabaseLike): Db {
  const db = drizzleD1(d1 as never, { schema }) as DrizzleD1Database<typeof schema>;
  patchD1Batch(db, d1);
  paramLimits.set(db, 100); // D1: at most 100 bound parameters per statement
  return db as unknown as Db;
}

const paramLimits = new WeakMap<object, number>();

/**
 * Most bound parameters one statement may carry on this database: multi-row inserts are chunked
 * by it (D1 allows 100; SQLite's default limit is 32,766, of which we use a safe part).
 */
export function paramLimit(db: Db): number {
  return paramLimits.get(db) ?? 8000;
}

/** A page of a list: at most `limit` rows (0 or none: all) after the `after` key ([namespace, name]). */
export interface PageQuery {
  limit?: number;
  after?: readonly [string, string];
}

/** A page of rows and how many rows follow it. */
export interface Page<T> {
  rows: T[];
  remaining: number;
}

/**
 * Reads a page: `limit + 1` rows tell whether more follow, and only then are the rest counted
 * (`countAfter` the page's last row).
 */
export async function readPage<T>(limit: number | undefined, read: (n?: number) => Promise<T[]>, countAfter: (last: T) => Promise<Array<{ n: number }>>): Promise<Page<T>> {
  const n = limit && limit > 0 ? limit : undefined;
  const rows = await read(n === undefined ? undefined : n + 1);
  if (n === undefined || rows.length <= n) return { rows, remaining: 0 };
  const page = rows.slice(0, n);
  const [more] = await countAfter(page[n - 1] as T);
  return { rows: page, remaining: Number(more?.n ?? 0) };
}

/** Splits rows into chunks that keep each statement under the parameter limit. */
export function chunkRows<T>(db: Db, rows: readonly T[], paramsPerRow: number, extraParams = 0): T[][] {
  const per = Math.max(1, Math.floor((paramLimit(db) - extraParams) / paramsPerRow));
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += per) out.push(rows.slice(i, i + per));
  return out;
}

interface BatchItem {
  _prepare(): { stmt?: { bind(...p: unknown[]): unknown }; getQuery(): { sql: string; params: unknown[] }; mapResult(r: unknown, fromBatch: boolean): unknown };
}

/**
 * drizzle-orm 0.45's D1 session.batch() binds `preparedQuery.stmt`, which raw `db.run(sql)` items
 * (SQLiteRaw) do not have, so any conditional INSERT ... SELECT in a batch throws on D1. This shim
 * prepares such items from their SQL; everything else goes through unchanged.
 */
function patchD1Batch(db: DrizzleD1Database<typeof schema>, d1: D1DatabaseLike): void {
  const session = (db as unknown as { session: { batch(q: BatchItem[]): Promise<unknown[]> } }).session;
  session.batch = async (queries: BatchItem[]) => {
    const prepared = queries.map((q) => q._prepare());
    const built = prepared.map((p) => {
      const q = p.getQuery();
      return p.stmt && q.params.length > 0 ? p.stmt.bind(...q.params) : (d1.prepare(q.sql) as { bind(...x: unknown[]): unknown }).bind(...q.params);
    });
    const results = (await d1.batch(built)) as unknown[];
    return results.map((r, i) => prepared[i]?.mapResult(r, true));
  };
}

/** The part of the D1 binding's type we depend on (avoids pulling workers-types into Node code). */
export interface D1DatabaseLike {
  prepare(query: string): unknown;
  batch(statements: unknown[]): Promise<unknown>;
}

export { schema };
