import { and, asc, eq, inArray, lt, lte } from 'drizzle-orm';
import type { Db } from './db.js';
import { bumpNodes } from './pods.js';
import { logChunks, logSessions } from './schema.js';

/** A stored log session. */
export type LogSession = typeof logSessions.$inferSelect;

/**
 * Opens a session for the pod's node and tells the node (its desired state lists open sessions).
 * Sessions past their expiry (a reader that crashed) are dropped on the way.
 */
export async function openLogSession(db: Db, s: Omit<LogSession, 'state' | 'error'>): Promise<void> {
  await db.batch([
    db.delete(logChunks).where(inArray(logChunks.sessionId, db.select({ id: logSessions.id }).from(logSessions).where(lt(logSessions.expiresAt, s.createdAt)))),
    db.delete(logSessions).where(lt(logSessions.expiresAt, s.createdAt)),
    db.insert(logSessions).values({ ...s, state: 'pending', error: null }),
    ...bumpNodes(db, [s.nodeId]),
  ]);
}

export function getLogSession(db: Db, id: string): Promise<LogSession | undefined> {
  return db.select().from(logSessions).where(eq(logSessions.id, id)).get();
}

/** Sessions a node should serve (not yet done or closed, not expired). */
export async function logSessionsFor(db: Db, nodeId: string, now: number): Promise<LogSession[]> {
  const rows = await db
    .select()
    .from(logSessions)
    .where(and(eq(logSessions.nodeId, nodeId), inArray(logSessions.state, ['pending', 'streaming'])))
    .all();
  return rows.filter((r) => r.expiresAt > now).slice(0, 64);
}

/**
 * A chunk from the node: stored for the reader (empty ones only ask whether the reader is still
 * there). Returns false when the session is gone, closed or expired: the node stops sending.
 */
export async function appendLogChunk(db: Db, nodeId: string, id: string, chunk: { seq: number; data: string; done?: boolean; error?: string }, now: number): Promise<boolean> {
  const s = await getLogSession(db, id);
  if (!s || s.nodeId !== nodeId || s.state === 'closed' || s.expiresAt <= now) return false;
  const stmts: Parameters<Db['batch']>[0][number][] = [];
  if (chunk.data.length > 0) stmts.push(db.insert(logChunks).values({ sessionId: id, seq: chunk.seq, data: chunk.data }).onConflictDoNothing());
  const state = chunk.done ? 'done' : 'streaming';
  if (state !== s.state || chunk.error)
    stmts.push(
      db
        .update(logSessions)
        .set({ state, ...(chunk.error ? { error: chunk.error.slice(0, 512) } : {}) })
        .where(and(eq(logSessions.id, id), inArray(logSessions.state, ['pending', 'streaming']))),
    );
  if (stmts.length > 0) await db.batch(stmts as [Parameters<Db['batch']>[0][number]]);
  return true;
}

/** The chunks waiting for the reader, in order; they are deleted as they are taken. */
export async function takeLogChunks(db: Db, id: string): Promise<string[]> {
  const rows = await db.select().from(logChunks).where(eq(logChunks.sessionId, id)).orderBy(asc(logChunks.seq)).limit(64).all();
  if (rows.length === 0) return [];
  await db.delete(logChunks).where(and(eq(logChunks.sessionId, id), lte(logChunks.seq, rows[rows.length - 1]?.seq as number)));
  return rows.map((r) => r.data);
}

/** Ends a session: the reader left or got everything. Nothing of it is kept. */
export async function closeLogSession(db: Db, id: string): Promise<void> {
  await db.batch([db.delete(logChunks).where(eq(logChunks.sessionId, id)), db.delete(logSessions).where(eq(logSessions.id, id))]);
}
