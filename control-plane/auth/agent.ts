import { createMiddleware } from 'hono/factory';
import { type CryptoKey, decodeJwt, importJWK, type JWK, errors as joseErrors, jwtVerify } from 'jose';
import { unauthenticated } from '../../shared/errors.js';
import type { AppEnv } from '../context.js';
import type { AgentNode, NodeDirectory } from './node-directory.js';

/** Longest lifetime an agent request JWT may claim. */
export const MAX_AGENT_JWT_SECONDS = 60;
/** Clock skew allowed on an agent JWT's exp and nbf. */
const TOLERANCE_S = 5;

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
  if (!known) {
    if (deps.agentJwtVerifier) verifyTokenSync(token, node, deps.cluster.audience, now, directory, deps.agentJwtVerifier);
    else await verifyToken(token, node, deps.cluster.audience, now, directory);
  }
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
      clockTolerance: TOLERANCE_S,
    });
    if ((payload.exp as number) - (payload.iat as number) > MAX_AGENT_JWT_SECONDS) throw unauthenticated(`JWT lifetime exceeds ${MAX_AGENT_JWT_SECONDS}s`);
    directory.rememberToken(token, node.id, payload.exp as number, now);
  } catch (e) {
    if (e instanceof joseErrors.JOSEError) throw unauthenticated(`JWT rejected: ${e.code}`);
    throw e;
  }
}

/** A synchronous Ed25519 check for a node's public key (`x` of its JWK): node:crypto on Node. */
export type SignatureVerifier = (x: string) => (data: Uint8Array, signature: Uint8Array) => boolean;

const B64URL = /^[A-Za-z0-9_-]*$/;

function segment(s: string): Record<string, unknown> {
  if (!B64URL.test(s)) throw new JwtRejected('ERR_JWS_INVALID');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    throw new JwtRejected('ERR_JWS_INVALID');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JwtRejected('ERR_JWT_INVALID');
  return v as Record<string, unknown>;
}

class JwtRejected extends Error {}

/**
 * The checks of `verifyToken` (jose's jwtVerify with its options there) without WebCrypto's
 * asynchronous round trip: compact form, `alg` EdDSA and no `crit`, the signature over the first two
 * segments, then the claims (`sub`, `aud`, numeric `iat` and `exp`, `nbf` if present, 5 s tolerance,
 * lifetime at most 60 s). test/integration/keys.test.ts holds both paths to the same verdicts.
 */
function verifyTokenSync(token: string, node: AgentNode, audience: string, now: number, directory: NodeDirectory, verifier: SignatureVerifier): void {
  try {
    const parts = token.split('.');
    if (parts.length !== 3) throw new JwtRejected('ERR_JWS_INVALID');
    const [h, p, sig] = parts as [string, string, string];
    const header = segment(h);
    if (header.alg !== 'EdDSA') throw new JwtRejected('ERR_JOSE_ALG_NOT_ALLOWED');
    if (header.crit !== undefined || header.b64 !== undefined) throw new JwtRejected('ERR_JWS_INVALID');
    if (!B64URL.test(sig)) throw new JwtRejected('ERR_JWS_INVALID');
    const jwk = node.publicKey;
    if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') throw unauthenticated('node key is not Ed25519');
    node.verify ??= verifier(jwk.x as string);
    if (!node.verify(Buffer.from(`${h}.${p}`), Buffer.from(sig, 'base64url'))) throw new JwtRejected('ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
    const claims = segment(p);
    // A missing sub, aud, iat or exp fails these checks as jose's presence check does.
    const aud = claims.aud;
    if (claims.sub !== node.id || !(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) throw new JwtRejected('ERR_JWT_CLAIM_VALIDATION_FAILED');
    const { iat, exp, nbf } = claims;
    if (typeof iat !== 'number' || typeof exp !== 'number' || (nbf !== undefined && typeof nbf !== 'number')) throw new JwtRejected('ERR_JWT_CLAIM_VALIDATION_FAILED');
    const nowS = Math.floor(now / 1000);
    if (nbf !== undefined && (nbf as number) > nowS + TOLERANCE_S) throw new JwtRejected('ERR_JWT_CLAIM_VALIDATION_FAILED');
    if (exp <= nowS - TOLERANCE_S) throw new JwtRejected('ERR_JWT_EXPIRED');
    if (exp - iat > MAX_AGENT_JWT_SECONDS) throw unauthenticated(`JWT lifetime exceeds ${MAX_AGENT_JWT_SECONDS}s`);
    directory.rememberToken(token, node.id, exp, now);
  } catch (e) {
    if (e instanceof JwtRejected) throw unauthenticated(`JWT rejected: ${e.message}`);
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
