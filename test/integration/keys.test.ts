import { generateKeyPairSync, sign } from 'node:crypto';
import { decodeProtectedHeader, importJWK, jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeLeaseSigner, nodeSignatureVerifier } from '../../control-plane/entry/node.js';
import { Keyring } from '../../control-plane/keys.js';
import type { LeaseClaims } from '../../shared/lease.js';
import { FACTS, testControlPlane } from '../lib/cp.js';
import { libsqlTestDb, type TestDb } from '../lib/db.js';

// One database for the file: each test makes its own keys, tokens and nodes.
let t: TestDb;
beforeAll(async () => {
  t = await libsqlTestDb();
});
afterAll(async () => {
  await t?.close();
});

// On Node leases are signed with node:crypto (synchronous); on Workers with jose's WebCrypto path.
// Agents verify both with jose against the JWKS, so the two must write the same token.
describe('lease signing on Node', () => {
  const claims = (exp: number): LeaseClaims => ({
    iss: 'flotilla',
    aud: 'node-1',
    sub: 'pod-1',
    node: 'node-1',
    pod: 'pod-1',
    ns: 'default',
    workload: 'web',
    rev: 3,
    digest: 'a'.repeat(64),
    epoch: 2,
    policy: 'stop',
    iat: Math.floor(exp / 1000) - 30,
    exp: exp / 1000,
  });

  it('writes the same token as jose for the same key and claims, and it verifies against the JWKS; a rotated key signs at once', async () => {
    const now = Date.now();
    const webcrypto = new Keyring(t.db, 60_000, 0);
    const node = new Keyring(t.db, 60_000, 0, nodeLeaseSigner);
    await webcrypto.ensure(now);
    const c = claims(now + 30_123); // a fractional NumericDate, as leases carry
    const token = await node.signLease(c, now);
    expect(token).toBe(await webcrypto.signLease(c, now));
    const jwks = await node.jwks(now);
    const kid = decodeProtectedHeader(token).kid;
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', kid, typ: 'flotilla-lease+jwt' });
    const { payload } = await jwtVerify(token, await importJWK(jwks.keys.find((k) => k.kid === kid) as never, 'EdDSA'), { currentDate: new Date(now) });
    expect(payload).toEqual(c);
    // After a rotation the Node signer uses the new key (its per-key cache is by kid).
    const next = await node.rotate(now + 1);
    const rotated = await node.signLease(c, now + 1);
    expect(decodeProtectedHeader(rotated).kid).toBe(next);
    expect(rotated).toBe(await webcrypto.signLease(c, now + 1));
  });
});

// On Node agents' JWTs are checked with node:crypto and a claims check of our own; on Workers with
// jose's jwtVerify. Both must give every token the same verdict.
describe('agent JWT verification on Node', () => {
  it('accepts and refuses the same tokens as the jose path', async () => {
    const jose = await testControlPlane(t.db);
    const node = await testControlPlane(t.db, {}, { agentJwtVerifier: nodeSignatureVerifier });
    const enrollAs = async (name: string) => {
      const token = ((await (await jose.req('POST', '/v1/enrollment-tokens', { uses: 1 })).json()) as { token: string }).token;
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const res = await jose.app.request('/v1/agent/enroll', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token, name, publicKey: publicKey.export({ format: 'jwk' }), facts: FACTS }),
      });
      expect(res.status).toBe(201);
      return { privateKey, ...((await res.json()) as { nodeId: string; audience: string }) };
    };
    const a = await enrollAs('jwt-a');
    const b = await enrollAs('jwt-b');
    const nowS = Math.floor(jose.now() / 1000);
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    // Signed by hand (jose's signer refuses some of the headers tried here).
    const signed = async (claims: unknown, header: Record<string, unknown> = { alg: 'EdDSA' }, key = a.privateKey) => {
      const input = `${enc(header)}.${enc(claims)}`;
      return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
    };
    const good = { sub: a.nodeId, aud: a.audience, iat: nowS, exp: nowS + 60 };
    const valid = await signed(good);
    const [h, , sig] = valid.split('.');
    const cases: Array<[string, string, number]> = [
      ['valid', valid, 200],
      [
        'valid, signed by jose as the agent does',
        await new SignJWT({})
          .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
          .setSubject(a.nodeId)
          .setAudience(a.audience)
          .setIssuedAt(nowS)
          .setExpirationTime(nowS + 60)
          .sign(a.privateKey),
        200,
      ],
      ['audience in an array', await signed({ ...good, aud: ['other', a.audience] }), 200],
      ['typ header', await signed(good, { alg: 'EdDSA', typ: 'JWT' }), 200],
      // The clock tolerance is 5 s (both control planes' clocks stand still, a few ms apart).
      ['expired past the tolerance', await signed({ ...good, iat: nowS - 57, exp: nowS - 7 }), 401],
      ['expired within the tolerance', await signed({ ...good, iat: nowS - 53, exp: nowS - 3 }), 200],
      ['not yet valid', await signed({ ...good, nbf: nowS + 7 }), 401],
      ['not yet valid within the tolerance', await signed({ ...good, nbf: nowS + 3 }), 200],
      ['lifetime over 60 s', await signed({ ...good, exp: nowS + 3600 }), 401],
      ['lifetime of 61 s', await signed({ ...good, exp: nowS + 61 }), 401],
      ['alg Ed25519, correctly signed', await signed(good, { alg: 'Ed25519' }), 401],
      ['other audience', await signed({ ...good, aud: 'flotilla:else:agents' }), 401],
      ['no audience', await signed({ sub: a.nodeId, iat: nowS, exp: nowS + 60 }), 401],
      ['no iat', await signed({ sub: a.nodeId, aud: a.audience, exp: nowS + 60 }), 401],
      ['iat not a number', await signed({ ...good, iat: String(nowS) }), 401],
      ['exp not a number', await signed({ ...good, exp: String(nowS + 60) }), 401],
      ["another node's key claiming node A", await signed(good, undefined, b.privateKey), 401],
      ['alg none', `${enc({ alg: 'none' })}.${enc(good)}.`, 401],
      ['alg HS256 header on a valid signature', `${enc({ alg: 'HS256' })}.${valid.split('.')[1]}.${sig}`, 401],
      ['payload swapped under a valid signature', `${h}.${enc({ ...good, exp: nowS + 59 })}.${sig}`, 401],
      ['crit header', await signed(good, { alg: 'EdDSA', crit: ['exp'], exp: 1 }), 401],
      ['unencoded payload', await signed(good, { alg: 'EdDSA', b64: false, crit: ['b64'] }), 401],
      ['claims not an object', await signed([1, 2] as never), 401],
      ['two segments', `${h}.${enc(good)}`, 401],
      ['not base64url', `${h}.${enc(good)}.${sig}*`, 401],
      ['not a JWT', 'not-a-jwt', 401],
    ];
    for (const [what, token, expected] of cases) {
      const ask = (cp: typeof jose) => cp.app.request('/v1/agent/heartbeat', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
      const [viaJose, viaNode] = await Promise.all([ask(jose), ask(node)]);
      expect({ what, jose: viaJose.status, node: viaNode.status }).toEqual({ what, jose: expected, node: expected });
    }
  });
});
