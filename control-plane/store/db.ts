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
  return drizzleD1(d1 as never, { schema }) as DrizzleD1Database<typeof schema> as unknown as Db;
}

/** The part of the D1 binding's type we depend on (avoids pulling workers-types into Node code). */
export interface D1DatabaseLike {
  prepare(query: string): unknown;
  batch(statements: unknown[]): Promise<unknown>;
}

export { schema };
