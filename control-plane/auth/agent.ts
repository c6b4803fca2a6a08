import { createMiddleware } from 'hono/factory';
import { type CryptoKey, decodeJwt, importJWK, type JWK, errors as joseErrors, jwtVerify } from 'jose';
import { unauthenticated } from '../../shared/errors.js';
import type { AppEnv } from '../context.js';
import type { AgentNode, NodeDirectory } from './node-directory.js';

/** Longest lifetime an agent request JWT may claim. */
export const MAX_AGENT_JWT_SECONDS = 60;

/**
 * Authenticates an agent request: a JWT signed with the node's own Ed25519 key (`sub` = node id,
 * `aud` = the cluster's agent audience, exp - iat <= 60 s). Node identity, revocation and already
 * verified tokens come from the instance's NodeDirectory, so a heartbeat between renewals needs
 * neither SQL nor a signature check; a revocation is effective at the next request.
 */
export const agentAuth = createMiddleware<AppEnv>(async (c, next) => {
  const m = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '');
  if (!m) throw unauthenticated('a node-signed JWT is required');
  const token = m[1] as string;
  const deps = c.var.deps;
  const directory = deps.directory;
  if (!directory) throw new Error('agent routes need a NodeDirectory (createApp provides one)');
  const now = deps.clock();
  let sub: unknown = directory.verifiedSubject(token, now);
  const known = sub !== undefined;
  if (!known) {
    try {
      sub = decodeJwt(token).sub;
    } catch {
      throw unauthenticated('malformed JWT');
    }
  }
  if (typeof sub !== 'string') throw unauthenticated('JWT has no subject');
  const node = await directory.lookup(deps.db, sub, now);
  if (!node) throw unauthenticated('unknown or revoked node');
  if (!known) await verifyToken(token, node, deps.cluster.audience, now, directory);
  c.set('principal', { kind: 'node', nodeId: node.id, nodeName: node.name });
  c.set('node', node);
  await next();
});

async function verifyToken(token: string, node: AgentNode, audience: string, now: number, directory: NodeDirectory): Promise<void> {
  try {
    const { payload } = await jwtVerify(token, await nodeKey(node), {
      algorithms: ['EdDSA'],
      audience,
      subject: node.id,
      requiredClaims: ['exp', 'iat'],
      currentDate: new Date(now),
      clockTolerance: 5,
    });
    if ((payload.exp as number) - (payload.iat as number) > MAX_AGENT_JWT_SECONDS) throw unauthenticated(`JWT lifetime exceeds ${MAX_AGENT_JWT_SECONDS}s`);
    directory.rememberToken(token, node.id, payload.exp as number);
  } catch (e) {
    if (e instanceof joseErrors.JOSEError) throw unauthenticated(`JWT rejected: ${e.code}`);
    throw e;
  }
}

async function nodeKey(node: AgentNode): Promise<CryptoKey> {
  if (!node.key) {
    const jwk = node.publicKey;
    if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') throw unauthenticated('node key is not Ed25519');
    node.key = (await importJWK({ kty: 'OKP', crv: 'Ed25519', x: jwk.x } as JWK, 'EdDSA')) as CryptoKey;
  }
  return node.key;
}
