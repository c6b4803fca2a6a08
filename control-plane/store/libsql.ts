import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createClient } from '@libsql/client';
import { drizzle } from 'drizzle-orm/libsql';
import { migrate } from 'drizzle-orm/libsql/migrator';
import type { Db } from './db.js';
import * as schema from './schema.js';

/** Opens (creating if needed) a libSQL database: a `file:` path on disk, or a remote Turso URL. */
export function openLibsql(url: string, authToken?: string): { db: Db; close: () => void } {
  if (url.startsWith('file:')) mkdirSync(dirname(url.slice('file:'.length)) || '.', { recursive: true });
  const client = createClient({ url, authToken });
  return { db: drizzle(client, { schema }), close: () => client.close() };
}

/** Applies the committed migrations in `migrationsFolder` (idempotent). */
export async function migrateLibsql(db: Db, migrationsFolder: string): Promise<void> {
  await migrate(db, { migrationsFolder });
}
