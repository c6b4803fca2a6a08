import { and, desc, eq, gt, isNull, lt, sql } from 'drizzle-orm';
import { randomToken, sha256Hex } from '../../shared/digest.js';
import type { Db } from './db.js';
import { apiTokens, enrollmentTokens } from './schema.js';

/** Prefixes make a leaked token recognisable (secret scanners) and its kind obvious. */
export const ENROLL_PREFIX = 'fle_';
export const API_PREFIX = 'flo_';

/** An enrollment token as listed (never with its value). */
export type EnrollmentTokenRow = typeof enrollmentTokens.$inferSelect;

/** Creates an enrollment token; the clear value is returned once and only its hash is stored. */
export async function createEnrollmentToken(db: Db, opts: { maxUses: number; ttlMs: number; labels: Record<string, string>; now: number }) {
  const token = ENROLL_PREFIX + randomToken(32);
  const row = {
    id: `et-${crypto.randomUUID().slice(0, 13)}`,
    hash: await sha256Hex(token),
    maxUses: opts.maxUses,
    uses: 0,
    labels: opts.labels,
    expiresAt: opts.now + opts.ttlMs,
    createdAt: opts.now,
    revokedAt: null,
  };
  await db.insert(enrollmentTokens).values(row);
  return { token, row };
}

/** Enrollment tokens, newest first. */
export function listEnrollmentTokens(db: Db) {
  return db.select().from(enrollmentTokens).orderBy(desc(enrollmentTokens.createdAt)).all();
}

/** Revokes an enrollment token; false if there is none by that id. */
export async function revokeEnrollmentToken(db: Db, id: string, now: number): Promise<boolean> {
  const r = await db
    .update(enrollmentTokens)
    .set({ revokedAt: now })
    .where(and(eq(enrollmentTokens.id, id), isNull(enrollmentTokens.revokedAt)))
    .returning({ id: enrollmentTokens.id });
  return r.length === 1;
}

/** SQL condition: this enrollment token (by hash) can still be used at `now`. */
export function usableEnrollmentToken(hash: string, now: number) {
  return and(eq(enrollmentTokens.hash, hash), isNull(enrollmentTokens.revokedAt), gt(enrollmentTokens.expiresAt, now), lt(enrollmentTokens.uses, enrollmentTokens.maxUses));
}

/** Increments the uses of a token, but only if it is still usable (the batch's fence). */
export function consumeEnrollmentToken(db: Db, hash: string, now: number, nodeId: string) {
  return db
    .update(enrollmentTokens)
    .set({ uses: sql`${enrollmentTokens.uses} + 1` })
    .where(and(usableEnrollmentToken(hash, now), sql`EXISTS (SELECT 1 FROM nodes WHERE id = ${nodeId})`));
}

/** An operator API token as listed (never with its value). */
export type ApiTokenRow = typeof apiTokens.$inferSelect;

/** Creates an operator API token; the clear value is returned once. */
export async function createApiToken(db: Db, opts: { name: string; scope: 'admin' | 'deploy' | 'read'; namespaces: string[] | null; ttlMs: number | null; now: number }) {
  const token = API_PREFIX + randomToken(32);
  const row = {
    id: `tok-${crypto.randomUUID().slice(0, 13)}`,
    name: opts.name,
    hash: await sha256Hex(token),
    scope: opts.scope,
    namespaces: opts.namespaces,
    createdAt: opts.now,
    expiresAt: opts.ttlMs === null ? null : opts.now + opts.ttlMs,
    revokedAt: null,
  };
  await db.insert(apiTokens).values(row);
  return { token, row };
}

/** Operator API tokens, newest first. */
export function listApiTokens(db: Db) {
  return db.select().from(apiTokens).orderBy(desc(apiTokens.createdAt)).all();
}

/** Revokes an API token; false if there is none by that id. */
export async function revokeApiToken(db: Db, id: string, now: number): Promise<boolean> {
  const r = await db
    .update(apiTokens)
    .set({ revokedAt: now })
    .where(and(eq(apiTokens.id, id), isNull(apiTokens.revokedAt)))
    .returning({ id: apiTokens.id });
  return r.length === 1;
}
