import { createMiddleware } from 'hono/factory';
import { type CryptoKey, decodeJwt, importJWK, type JWK, errors as joseErrors, jwtVerify } from 'jose';
import { unauthenticated } from '../../shared/errors.js';
import type { AppEnv } from '../context.js';

/** Longest lifetime an agent request JWT may claim. */
export const MAX_AGENT_JWT_SECONDS = 60;

const keyCache = new WeakMap<object, Map<string, CryptoKey>>();

/**
 * Tokens whose signature and claims already verified, by exact token text, until their `exp`.
 * Agents reuse a JWT for about 30 s, so most requests skip the Ed25519 verification. Safe: only a
 * byte-identical token hits, it still expires at its own `exp`, and the node row (revocation) is
 * read on every request regardless. Bounded; per app instance.
 */
const verifiedCache = new WeakMap<object, Map<string, { sub: string; exp: number }>>();
const VERIFIED_MAX = 100_000;

/**
 * Authenticates an agent request: a JWT signed with the node's own Ed25519 key (`sub` = node id,
 * `aud` = the cluster's agent audience, exp - iat <= 60 s). The node row is read on every request
 * so a revocation takes effect at the very next request.
 */
export const agentAuth = createMiddleware<AppEnv>(async (c, next) => {
  const m = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '');
  if (!m) throw unauthenticated('a node-signed JWT is required');
  const token = m[1] as string;
  const { db, cluster, clock } = c.var.deps;
  let verified = verifiedCache.get(cluster);
  if (!verified) {
    verified = new Map();
    verifiedCache.set(cluster, verified);
  }
  const hit = verified.get(token);
  const fresh = hit !== undefined && hit.exp * 1000 > clock();
  let sub: unknown = hit?.sub;
  if (!fresh) {
    try {
      sub = decodeJwt(token).sub;
    } catch {
      throw unauthenticated('malformed JWT');
    }
  }
  if (typeof sub !== 'string') throw unauthenticated('JWT has no subject');
  const node = await c.var.deps.directory?.lookup(db, sub, clock());
  if (!node) throw unauthenticated('unknown or revoked node');
  if (!fresh) await verifyToken(token, node, c.var.deps, verified);
  c.set('principal', { kind: 'node', nodeId: node.id, nodeName: node.name });
  c.set('node', node);
  await next();
});

async function verifyToken(
  token: string,
  node: { id: string; publicKey: Record<string, string> },
  deps: AppEnv['Variables']['deps'],
  verified: Map<string, { sub: string; exp: number }>,
): Promise<void> {
  const { cluster, clock } = deps;
  const key = await nodeKey(cluster, node.id, node.publicKey);
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
    if (verified.size >= VERIFIED_MAX) verified.clear();
    verified.set(token, { sub: node.id, exp: payload.exp as number });
  } catch (e) {
    if (e instanceof joseErrors.JOSEError) throw unauthenticated(`JWT rejected: ${e.code}`);
    throw e;
  }
}

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
