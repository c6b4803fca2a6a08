import { eq } from 'drizzle-orm';
import { createMiddleware } from 'hono/factory';
import { type CryptoKey, decodeJwt, importJWK, type JWK, errors as joseErrors, jwtVerify } from 'jose';
import { unauthenticated } from '../../shared/errors.js';
import type { AppEnv } from '../context.js';
import { nodes } from '../store/schema.js';

/** Longest lifetime an agent request JWT may claim. */
export const MAX_AGENT_JWT_SECONDS = 60;

const keyCache = new WeakMap<object, Map<string, CryptoKey>>();

/**
 * Authenticates an agent request: a JWT signed with the node's own Ed25519 key (`sub` = node id,
 * `aud` = the cluster's agent audience, exp - iat <= 60 s). The node row is read on every request
 * so a revocation takes effect at the very next request.
 */
export const agentAuth = createMiddleware<AppEnv>(async (c, next) => {
  const m = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '');
  if (!m) throw unauthenticated('a node-signed JWT is required');
  const token = m[1] as string;
  let sub: unknown;
  try {
    sub = decodeJwt(token).sub;
  } catch {
    throw unauthenticated('malformed JWT');
  }
  if (typeof sub !== 'string') throw unauthenticated('JWT has no subject');
  const { db, cluster, clock } = c.var.deps;
  const node = await db.select().from(nodes).where(eq(nodes.id, sub)).get();
  if (!node) throw unauthenticated('unknown node');
  if (node.revokedAt !== null) throw unauthenticated('node revoked');
  const key = await nodeKey(c.var.deps, node.id, node.publicKey);
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ['EdDSA'],
      audience: cluster.audience,
      subject: node.id,
      requiredClaims: ['exp', 'iat'],
      currentDate: new Date(clock()),
      clockTolerance: 5,
    });
    if ((payload.exp as number) - (payload.iat as number) > MAX_AGENT_JWT_SECONDS) throw unauthenticated(`JWT lifetime exceeds ${MAX_AGENT_JWT_SECONDS}s`);
  } catch (e) {
    if (e instanceof joseErrors.JOSEError) throw unauthenticated(`JWT rejected: ${e.code}`);
    throw e;
  }
  c.set('principal', { kind: 'node', nodeId: node.id, nodeName: node.name });
  c.set('node', node);
  await next();
});

async function nodeKey(scope: object, nodeId: string, jwk: Record<string, string>): Promise<CryptoKey> {
  let m = keyCache.get(scope);
  if (!m) {
    m = new Map();
    keyCache.set(scope, m);
  }
  const id = `${nodeId}:${jwk.x}`;
  let k = m.get(id);
  if (!k) {
    if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') throw unauthenticated('node key is not Ed25519');
    k = (await importJWK({ kty: 'OKP', crv: 'Ed25519', x: jwk.x } as JWK, 'EdDSA')) as CryptoKey;
    if (m.size > 10_000) m.clear();
    m.set(id, k);
  }
  return k;
}
