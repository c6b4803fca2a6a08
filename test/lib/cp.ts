import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { createApp } from '../../control-plane/app.js';
import { type Config, configFromEnv, silentLogger } from '../../control-plane/config.js';
import type { Deps } from '../../control-plane/context.js';
import { Keyring } from '../../control-plane/keys.js';
import type { Db } from '../../control-plane/store/db.js';
import { ensureBootstrapToken, ensureCluster } from '../../control-plane/store/meta.js';

export const ADMIN = 'flo_test-admin-token-0123456789abcdef';

/** An in-process control plane over `db` with a controllable clock, for app.request() tests. */
export async function testControlPlane(db: Db, config: Partial<Config> = {}, more: Partial<Deps> = {}) {
  let now = Date.now();
  const cfg = configFromEnv({}, { pollWaitMs: 0, ...config });
  const cluster = await ensureCluster(db, now);
  const keys = new Keyring(db, cfg.leaseTtlMs + cfg.clockSkewMs, 0);
  await keys.ensure(now);
  await ensureBootstrapToken(db, ADMIN, now);
  const pending: Promise<unknown>[] = [];
  const deps: Deps = { db, config: cfg, logger: silentLogger, clock: () => now, keys, cluster, defer: (p) => pending.push(p), ...more };
  const app = createApp(deps);
  return {
    app,
    deps,
    advance(ms: number) {
      now += ms;
    },
    now: () => now,
    /** Waits for work deferred past responses (ticks). */
    async settle() {
      while (pending.length) await pending.shift();
    },
    /** An operator request. */
    req(method: string, path: string, body?: unknown, o: { token?: string; type?: string } = {}) {
      const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? ADMIN}` };
      if (body !== undefined) headers['content-type'] = o.type ?? 'application/json';
      return app.request(path, { method, headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
    },
  };
}

/** A node identity as an agent would make it: key pair, and a way to sign request JWTs. */
export async function nodeKeys() {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const pub = (await exportJWK(publicKey)) as JWK & { kty: string; crv: string; x: string };
  return {
    publicKey: pub,
    sign(claims: { sub: string; aud: string; iat?: number; exp?: number }) {
      const iat = claims.iat ?? Math.floor(Date.now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA' })
        .setSubject(claims.sub)
        .setAudience(claims.aud)
        .setIssuedAt(iat)
        .setExpirationTime(claims.exp ?? iat + 60)
        .sign(privateKey);
    },
  };
}

/** Node facts for enrollment requests. */
export const FACTS = { hostname: 'test', os: 'linux', arch: 'x64', cpus: 2, memoryBytes: 2 ** 30, dockerVersion: '20.10', agentVersion: '0.1.0' };
