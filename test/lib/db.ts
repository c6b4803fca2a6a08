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
 * A fresh local D1 database inside workerd (wrangler's platform proxy: the same miniflare D1 that
 * `wrangler dev` uses), with the committed migrations applied as `wrangler d1 migrations apply` would.
 */
export async function d1TestDb(): Promise<TestDb> {
  // workerd's proxy occasionally fails a call while it starts on a loaded machine: one retry.
  try {
    return await openD1();
  } catch {
    return openD1();
  }
}

async function openD1(): Promise<TestDb> {
  const { getPlatformProxy } = await import('wrangler');
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-d1-'));
  const proxy = await getPlatformProxy<{ DB: D1DatabaseLike & { exec(sql: string): Promise<unknown> } }>({ configPath: 'wrangler.toml', persist: { path: dir } });
  const d1 = proxy.env.DB;
  try {
    for (const f of readdirSync('migrations')
      .filter((x) => x.endsWith('.sql'))
      .sort()) {
      const statements = readFileSync(join('migrations', f), 'utf8')
        .split('--> statement-breakpoint')
        .map((s) => s.trim())
        .filter(Boolean);
      await d1.batch(statements.map((s) => (d1.prepare(s) as { bind(): unknown }).bind()));
    }
  } catch (e) {
    await proxy.dispose().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    kind: 'd1',
    db: fromD1(d1),
    async close() {
      await proxy.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
