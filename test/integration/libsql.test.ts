import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../control-plane/store/db.js';
import { openLibsql } from '../../control-plane/store/libsql.js';
import { isUniqueViolation } from '../../control-plane/store/workloads.js';

// The embedded database reuses prepared statements (FLOTILLA_DB_STATEMENT_CACHE, on by default):
// a reused statement must answer exactly as a freshly prepared one would.
describe('embedded libSQL with reused prepared statements', () => {
  let dir: string;
  let db: Db;
  let close: () => Promise<void>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-stmt-'));
    ({ db, close } = await openLibsql(`file:${join(dir, 'stmt.db')}`));
    await db.run(sql`CREATE TABLE items (id TEXT PRIMARY KEY, n INTEGER NOT NULL)`);
  });
  afterAll(async () => {
    await close?.();
    rmSync(dir, { recursive: true, force: true });
  });

  const insert = (id: string, n: number) => db.run(sql`INSERT INTO items (id, n) VALUES (${id}, ${n})`);
  const all = () => db.all<Record<string, unknown>>(sql`SELECT * FROM items ORDER BY id`);

  it('the same statement with new values, after one of its runs failed, still writes and reads', async () => {
    await insert('a', 1);
    const dup = await insert('a', 2).catch((e: unknown) => e);
    expect(isUniqueViolation(dup)).toBe(true);
    await insert('b', 3);
    expect(await all()).toEqual([
      { id: 'a', n: 1 },
      { id: 'b', n: 3 },
    ]);
    const returned = await db.all<{ n: number }>(sql`UPDATE items SET n = n + 1 WHERE id = ${'a'} RETURNING n`);
    const again = await db.all<{ n: number }>(sql`UPDATE items SET n = n + 1 WHERE id = ${'a'} RETURNING n`);
    expect([returned, again]).toEqual([[{ n: 2 }], [{ n: 3 }]]);
  });

  it('a statement prepared before a schema change sees the new schema', async () => {
    expect(Object.keys((await all())[0] ?? {})).toEqual(['id', 'n']);
    await db.run(sql`ALTER TABLE items ADD COLUMN note TEXT`);
    await db.run(sql`UPDATE items SET note = ${'hi'} WHERE id = ${'b'}`);
    expect(await all()).toEqual([
      { id: 'a', n: 3, note: null },
      { id: 'b', n: 3, note: 'hi' },
    ]);
  });

  it('more distinct statements than the cache holds (512) all answer, and the first ones again after', async () => {
    for (let k = 1; k <= 600; k++) {
      const ids = Array.from({ length: k % 60 }, (_, i) => `x${i}`);
      // 600 distinct SQL texts: a different constant in each, and IN lists of varying length.
      const rows = await db.all<{ c: number; k: number }>(
        sql`SELECT COUNT(*) AS c, ${sql.raw(String(k))} AS k FROM items WHERE id IN (${sql.join(
          [...ids, 'a'].map((i) => sql`${i}`),
          sql`, `,
        )})`,
      );
      expect(rows).toEqual([{ c: 1, k }]);
    }
    const first = await db.all<{ c: number; k: number }>(sql`SELECT COUNT(*) AS c, ${sql.raw('1')} AS k FROM items WHERE id IN (${'x0'}, ${'a'})`);
    expect(first).toEqual([{ c: 1, k: 1 }]);
  });
});
