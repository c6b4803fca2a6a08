import { eq } from 'drizzle-orm';
import { createMiddleware } from 'hono/factory';
import { sha256Hex, timingSafeEqual } from '../../shared/digest.js';
import { forbidden, unauthenticated } from '../../shared/errors.js';
import type { AppEnv, Principal } from '../context.js';
import { clientAddress, TooManyRequests } from '../ratelimit.js';
import { apiTokens } from '../store/schema.js';

const RANK = { read: 0, deploy: 1, admin: 2 } as const;
export type Scope = keyof typeof RANK;

/** Authenticates an operator bearer token (stored hashed) and records the principal. */
export const operatorAuth = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header('authorization') ?? '';
  const { db, clock, limits } = c.var.deps;
  // An address that failed too often gets 429 until its budget refills (FLOTILLA_AUTH_FAILURES_PER_MINUTE).
  const from = clientAddress(c);
  const wait = limits?.authFailures.wait(from, clock()) ?? 0;
  if (wait > 0) throw new TooManyRequests(`too many failed authentications from ${from}; retry in ${wait} s`, wait);
  const fail = (message: string) => {
    limits?.authFailures.take(from, clock());
    return unauthenticated(message);
  };
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  if (!m) throw unauthenticated('an operator API token is required (Authorization: Bearer TOKEN)');
  const hash = await sha256Hex(m[1] as string);
  const row = await db.select().from(apiTokens).where(eq(apiTokens.hash, hash)).get();
  // The lookup is by hash; the constant-time compare guards against any index-timing leak.
  if (!row || !timingSafeEqual(row.hash, hash)) throw fail('invalid API token');
  const now = clock();
  if (row.revokedAt !== null || (row.expiresAt !== null && row.expiresAt <= now)) throw fail('API token revoked or expired');
  c.set('principal', { kind: 'operator', tokenId: row.id, name: row.name, scope: row.scope, namespaces: row.namespaces ?? null });
  await next();
});

/** Throws 403 unless the caller is an operator with at least `scope` (on `namespace` when given). */
export function requireScope(p: Principal, scope: Scope, namespace?: string): void {
  if (p.kind !== 'operator') throw forbidden('operator credentials required');
  if (RANK[p.scope] < RANK[scope]) throw forbidden(`token scope "${p.scope}" does not allow this (needs "${scope}")`);
  if (namespace !== undefined && p.namespaces !== null && !p.namespaces.includes(namespace)) throw forbidden(`token is not allowed in namespace "${namespace}"`);
  if (namespace === undefined && p.namespaces !== null && scope === 'admin') throw forbidden('namespace-limited tokens cannot perform cluster-wide administration');
}

/** True if the principal may see objects of `namespace`. */
export function canSeeNamespace(p: Principal, namespace: string): boolean {
  return p.kind === 'operator' && (p.namespaces === null || p.namespaces.includes(namespace));
}
