import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeLeaseSigner } from '../../control-plane/entry/node.js';
import { Keyring } from '../../control-plane/keys.js';
import type { LeaseClaims } from '../../shared/lease.js';
import { libsqlTestDb, type TestDb } from '../lib/db.js';

// On Node leases are signed with node:crypto (synchronous); on Workers with jose's WebCrypto path.
// Agents verify both with jose against the JWKS, so the two must write the same token.
describe('lease signing on Node', () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await libsqlTestDb();
  });
  afterAll(async () => {
    await t?.close();
  });

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
