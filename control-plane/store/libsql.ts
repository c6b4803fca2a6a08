import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { type Client, createClient, type InStatement } from '@libsql/client';
import { drizzle } from 'drizzle-orm/libsql';
import { migrate } from 'drizzle-orm/libsql/migrator';
import { isWriteStatement, type Metrics } from '../metrics.js';
import type { Db } from './db.js';
import * as schema from './schema.js';

/** How an embedded database file syncs: FULL survives power loss at every commit; NORMAL may lose the last commits on power loss (not on a crash). */
export type SyncMode = 'full' | 'normal';

/** Prepared statements kept per connection (distinct SQL texts; drizzle's are few but `IN` lists vary). */
const STATEMENT_CACHE = 512;

const DDL = /^\s*(?:CREATE|ALTER|DROP)\b/i;

interface NativeDatabase {
  prepare(sql: string): unknown;
}

let cachingStatements = false;

/**
 * Makes the embedded client reuse prepared statements. @libsql/client's file client prepares every
 * statement on every call (parse and plan: most of a simple query's cost; a primary-key select
 * through drizzle took 119 µs, 67 µs reusing it); its connections are `libsql` Database objects, so their
 * `prepare` keeps the last STATEMENT_CACHE statements per connection by SQL text (least recently
 * used out). Reuse is safe because the client runs each statement to completion synchronously
 * (bind, step, reset) before it returns, and SQLite re-prepares a statement whose schema changed.
 * The class is taken from where @libsql/client loads it, so it is the same module instance. Once
 * on, it is on for every embedded database of the process (`FLOTILLA_DB_STATEMENT_CACHE=off` keeps
 * it off, to compare or to rule it out).
 */
function cachePreparedStatements(): void {
  if (cachingStatements) return;
  cachingStatements = true;
  const fromClient = createRequire(createRequire(import.meta.url).resolve('@libsql/client'));
  const Database = fromClient('libsql') as { prototype: NativeDatabase };
  const prepare = Database.prototype.prepare;
  const caches = new WeakMap<object, Map<string, unknown>>();
  Database.prototype.prepare = function (this: NativeDatabase, sql: string) {
    let cache = caches.get(this);
    if (!cache) {
      cache = new Map();
      caches.set(this, cache);
    }
    // A schema change (migrations) drops the connection's statements: SQLite re-prepares a stale one
    // when it steps, but the client reads its column names before that (a `SELECT *` would keep the
    // old list). Flotilla's queries name their columns, so another process's migration cannot
    // change what they return.
    if (DDL.test(sql)) {
      cache.clear();
      return prepare.call(this, sql);
    }
    let stmt = cache.get(sql);
    if (stmt !== undefined) {
      cache.delete(sql); // most recently used goes last
    } else {
      stmt = prepare.call(this, sql);
      if (cache.size >= STATEMENT_CACHE) cache.delete(cache.keys().next().value as string);
    }
    cache.set(sql, stmt);
    return stmt;
  };
}

/**
 * Opens (creating if needed) a libSQL database: a `file:` path on disk, or a remote Turso URL.
 * Files run in WAL mode: a commit appends to the log (one fsync with `full`) instead of rewriting a
 * rollback journal, which matters because libSQL's native calls block the event loop while they sync.
 */
export async function openLibsql(url: string, o: { authToken?: string; metrics?: Metrics; sync?: SyncMode; statementCache?: boolean } = {}): Promise<{ db: Db; close: () => Promise<void> }> {
  const file = url.startsWith('file:');
  if (file) mkdirSync(dirname(url.slice('file:'.length)) || '.', { recursive: true });
  if (file && o.statementCache !== false) cachePreparedStatements();
  const client = createClient({ url, authToken: o.authToken });
  if (file) {
    await client.execute('PRAGMA journal_mode = WAL');
    await client.execute(`PRAGMA synchronous = ${o.sync === 'normal' ? 'NORMAL' : 'FULL'}`);
    await client.execute('PRAGMA busy_timeout = 5000');
  }
  return {
    db: drizzle(o.metrics ? counting(client, o.metrics) : client, { schema }),
    close: async () => {
      client.close();
    },
  };
}

const sqlOf = (s: InStatement) => (typeof s === 'string' ? s : s.sql);

/** Counts write statements and write transactions (a batch is one transaction). */
function counting(client: Client, m: Metrics): Client {
  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'execute')
        return (stmt: InStatement, ...rest: unknown[]) => {
          if (isWriteStatement(sqlOf(stmt))) {
            m.inc('flotilla_db_write_statements_total');
            m.inc('flotilla_db_write_transactions_total');
          }
          return (target.execute as (...a: unknown[]) => unknown)(stmt, ...rest);
        };
      if (prop === 'batch')
        return (stmts: InStatement[], ...rest: unknown[]) => {
          const writes = stmts.filter((s) => isWriteStatement(sqlOf(s))).length;
          if (writes > 0) {
            m.inc('flotilla_db_write_statements_total', writes);
            m.inc('flotilla_db_write_transactions_total');
          }
          return (target.batch as (...a: unknown[]) => unknown)(stmts, ...rest);
        };
      // Bind to the real client: its methods use private fields a proxy receiver cannot reach.
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** Applies the committed migrations in `migrationsFolder` (idempotent). */
export async function migrateLibsql(db: Db, migrationsFolder: string): Promise<void> {
  await migrate(db, { migrationsFolder });
}
