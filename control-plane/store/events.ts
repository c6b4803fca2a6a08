import { and, desc, eq, gt, lt, type SQL } from 'drizzle-orm';
import { chunkRows, type Db } from './db.js';
import { events } from './schema.js';

/** An event about one object, as recorded. */
export interface EventInput {
  namespace: string;
  kind: string;
  name: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  source: string;
  at: number;
}

/** An insert statement for an event, to put in a batch with the change it describes. */
export function insertEvent(db: Db, e: EventInput) {
  return db.insert(events).values({ ...e, message: e.message.slice(0, 1024) });
}

/** Multi-row inserts for many events (chunked under the database's parameter limit). */
export function insertEvents(db: Db, list: readonly EventInput[]) {
  return chunkRows(db, list, 8).map((chunk) => db.insert(events).values(chunk.map((e) => ({ ...e, message: e.message.slice(0, 1024) }))));
}

/** Events, newest last, optionally for one namespace/object, after an id (for watching). */
export async function listEvents(db: Db, q: { namespace?: string; kind?: string; name?: string; afterId?: number; limit: number }) {
  const conds: SQL[] = [];
  if (q.namespace !== undefined) conds.push(eq(events.namespace, q.namespace));
  if (q.kind !== undefined) conds.push(eq(events.kind, q.kind));
  if (q.name !== undefined) conds.push(eq(events.name, q.name));
  if (q.afterId !== undefined) conds.push(gt(events.id, q.afterId));
  const rows = await db
    .select()
    .from(events)
    .where(and(...conds))
    .orderBy(desc(events.id))
    .limit(q.limit)
    .all();
  return rows.reverse();
}

/** Deletes events older than `before`. */
export function pruneEvents(db: Db, before: number) {
  return db.delete(events).where(lt(events.at, before));
}
