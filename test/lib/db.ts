import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type D1DatabaseLike, type Db, fromD1 } from '../../control-plane/store/db.js';
import { migrateLibsql, openLibsql } from '../../control-plane/store/libsql.js';

/** A database under test and how to dispose of it. */
export interface TestDb {
  kind: 'libsql' | 'd1';
  db: Db;
  close(): Promise<void>;
  /** D1 only: the SQL of every statement prepared since the database was opened (what D1 bills). */
  statements?: string[];
}

/** A fresh embedded libSQL file with the migrations applied. */
export async function libsqlTestDb(): Promise<TestDb> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-db-'));
  const { db, close } = await openLibsql(`file:${join(dir, 'test.db')}`);
  await migrateLibsql(db, 'migrations');
  return {
    kind: 'libsql',
    db,
    async close() {
      await close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A fresh local D1 database inside workerd (miniflare's D1, the one `wrangler dev` runs), with the
 * committed migrations applied as `wrangler d1 migrations apply` would.
 *
 * Node reaches it through a small Worker that owns the binding and answers one HTTP request per
 * statement or batch, so every call is an ordinary asynchronous request. wrangler's platform proxy
 * (`getPlatformProxy`) was used before: its `prepare`/`bind` are synchronous calls over a worker
 * thread whose handshake can desynchronise under CPU contention (every later call then fails with
 * `AssertionError: false == true` in miniflare's SynchronousFetcher; cloudflare/workers-sdk#15552,
 * fixed after the miniflare 4 release we pin). The database, its SQL and its errors are D1's own.
 */
export async function d1TestDb(): Promise<TestDb> {
  const { Miniflare } = await import('miniflare');
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-d1-'));
  const mf = new Miniflare({
    modules: true,
    script: D1_GATEWAY,
    compatibilityDate: '2025-09-01',
    d1Databases: { DB: 'flotilla-test' },
    d1Persist: dir,
  });
  const dispose = async () => {
    await mf.dispose().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  let d1: HttpD1;
  try {
    d1 = new HttpD1(await mf.ready);
    for (const f of readdirSync('migrations')
      .filter((x) => x.endsWith('.sql'))
      .sort()) {
      const statements = readFileSync(join('migrations', f), 'utf8')
        .split('--> statement-breakpoint')
        .map((s) => s.trim())
        .filter(Boolean);
      await d1.batch(statements.map((s) => d1.prepare(s)));
    }
  } catch (e) {
    await dispose();
    throw e;
  }
  d1.statements.length = 0; // the migrations'
  return { kind: 'd1', db: fromD1(d1), close: dispose, statements: d1.statements };
}

/** The Worker that owns the D1 binding: one JSON request runs one statement or one batch. */
const D1_GATEWAY = `
export default {
  async fetch(request, env) {
    const q = await request.json();
    const bound = (s) => env.DB.prepare(s.sql).bind(...s.params);
    try {
      let result;
      if (q.op === 'batch') result = await env.DB.batch(q.statements.map(bound));
      else if (q.op === 'all') result = await bound(q).all();
      else if (q.op === 'run') result = await bound(q).run();
      else if (q.op === 'raw') result = await bound(q).raw();
      else if (q.op === 'first') result = await bound(q).first();
      else return Response.json({ error: 'unknown op ' + q.op }, { status: 400 });
      return Response.json({ result });
    } catch (e) {
      const cause = e && e.cause ? String(e.cause.message ?? e.cause) : undefined;
      return Response.json({ error: String(e && e.message ? e.message : e), cause }, { status: 500 });
    }
  },
};
`;

/** A D1 statement on the Node side: SQL and parameters, sent when it is run. */
class HttpStatement {
  constructor(
    private readonly d1: HttpD1,
    readonly sql: string,
    readonly params: unknown[] = [],
  ) {}
  bind(...params: unknown[]): HttpStatement {
    return new HttpStatement(this.d1, this.sql, params);
  }
  all(): Promise<unknown> {
    return this.d1.send({ op: 'all', sql: this.sql, params: this.params });
  }
  run(): Promise<unknown> {
    return this.d1.send({ op: 'run', sql: this.sql, params: this.params });
  }
  raw(): Promise<unknown> {
    return this.d1.send({ op: 'raw', sql: this.sql, params: this.params });
  }
  first(): Promise<unknown> {
    return this.d1.send({ op: 'first', sql: this.sql, params: this.params });
  }
}

/** The D1 binding's surface that drizzle and the store use, over HTTP to the gateway Worker. */
class HttpD1 implements D1DatabaseLike {
  readonly statements: string[] = [];
  constructor(private readonly url: URL) {}
  prepare(sql: string): HttpStatement {
    this.statements.push(sql);
    return new HttpStatement(this, sql);
  }
  batch(statements: unknown[]): Promise<unknown> {
    const list = (statements as HttpStatement[]).map((s) => ({ sql: s.sql, params: s.params }));
    return this.send({ op: 'batch', statements: list });
  }
  async send(body: unknown): Promise<unknown> {
    const res = await fetch(this.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const out = (await res.json()) as { result?: unknown; error?: string; cause?: string };
    if (out.error !== undefined) {
      const e = new Error(out.error);
      if (out.cause !== undefined) (e as Error & { cause?: unknown }).cause = new Error(out.cause);
      throw e;
    }
    return out.result;
  }
}
