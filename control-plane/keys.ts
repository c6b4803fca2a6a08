import { desc, isNull } from 'drizzle-orm';
import { base64url, type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import type { LeaseClaims } from '../shared/lease.js';
import type { Db } from './store/db.js';
import { signingKeys } from './store/schema.js';

/** A lease-signing key as stored. */
export interface SigningKey {
  kid: string;
  privateJwk: Record<string, string>;
  publicJwk: Record<string, string>;
  createdAt: number;
  retiredAt: number | null;
}

/** Makes a fresh Ed25519 signing key. */
export async function generateSigningKey(now: number): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const kid = `k${now.toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
  const priv = (await exportJWK(privateKey)) as Record<string, string>;
  const pub = (await exportJWK(publicKey)) as Record<string, string>;
  return { kid, privateJwk: { ...priv, kid, alg: 'EdDSA' }, publicJwk: { ...pub, kid, alg: 'EdDSA', use: 'sig' }, createdAt: now, retiredAt: null };
}

/** Parses a signing key given as a private JWK (a wrangler secret on Workers). */
export function signingKeyFromJwk(json: string, now: number): SigningKey {
  const jwk = JSON.parse(json) as Record<string, string>;
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || !jwk.d || !jwk.x) throw new Error('FLOTILLA_SIGNING_KEY must be an Ed25519 private JWK');
  const kid = jwk.kid ?? `seed-${jwk.x.slice(0, 8)}`;
  const { d: _d, ...pub } = jwk;
  return { kid, privateJwk: { ...jwk, kid, alg: 'EdDSA' }, publicJwk: { ...pub, kid, alg: 'EdDSA', use: 'sig' }, createdAt: now, retiredAt: null };
}

/**
 * Makes a synchronous Ed25519 signing function from a private JWK. The Node entry passes one built
 * on node:crypto; without one (Workers) leases are signed with jose's WebCrypto path. Ed25519 is
 * deterministic, so both give the same token byte for byte. On a pinned core WebCrypto's
 * asynchronous job cost ~100 µs a signature and node:crypto's ~36 µs (by hand; bench/FINDINGS.md),
 * and a fleet re-signs every lease of a node at each of its renewals.
 */
export type LeaseSigner = (privateJwk: Record<string, string>) => (data: Uint8Array) => Uint8Array;

const encoder = new TextEncoder();

/**
 * The keyring: reads keys from the database (so every stateless instance signs with the same key and
 * a rotation by one is seen by all), caching them for a few seconds.
 *
 * Invariant: a key retired at time R stays in the JWKS until R + lease TTL + skew, so every lease it
 * signed has expired before agents can no longer verify it.
 */
export class Keyring {
  private cache: { at: number; keys: SigningKey[] } | null = null;
  private imported = new Map<string, CryptoKey>();
  private signers = new Map<string, (data: Uint8Array) => Uint8Array>();

  constructor(
    private readonly db: Db,
    private readonly publishAfterRetireMs: number,
    private readonly cacheMs = 5000,
    private readonly signer?: LeaseSigner,
  ) {}

  /** Makes sure a signing key exists, seeding it from `seed` (or a new key) on first use. */
  async ensure(now: number, seed?: SigningKey): Promise<void> {
    const keys = await this.load(now, true);
    if (keys.some((k) => k.retiredAt === null)) return;
    const k = seed ?? (await generateSigningKey(now));
    await this.db.insert(signingKeys).values(k).onConflictDoNothing();
    this.cache = null;
  }

  /** Starts signing with a new key; the old ones are retired but stay published. Returns the new kid. */
  async rotate(now: number): Promise<string> {
    const k = await generateSigningKey(now);
    await this.db.batch([this.db.update(signingKeys).set({ retiredAt: now }).where(isNull(signingKeys.retiredAt)), this.db.insert(signingKeys).values(k)]);
    this.cache = null;
    return k.kid;
  }

  /** The public keys agents must accept now. */
  async jwks(now: number): Promise<{ keys: JWK[] }> {
    const keys = await this.load(now);
    return { keys: keys.filter((k) => k.retiredAt === null || k.retiredAt + this.publishAfterRetireMs > now).map((k) => k.publicJwk as JWK) };
  }

  /** Signs a lease with the current key. */
  async signLease(claims: LeaseClaims, now: number): Promise<string> {
    const key = await this.current(now);
    const header = { alg: 'EdDSA', kid: key.kid, typ: 'flotilla-lease+jwt' };
    if (this.signer) {
      let sign = this.signers.get(key.kid);
      if (!sign) {
        sign = this.signer(key.privateJwk);
        this.signers.set(key.kid, sign);
      }
      // A compact JWS, as jose's SignJWT writes it: header and claims as JSON, base64url, signed.
      const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}`;
      return `${input}.${base64url.encode(sign(encoder.encode(input)))}`;
    }
    let priv = this.imported.get(key.kid);
    if (!priv) {
      priv = (await importJWK(key.privateJwk as JWK, 'EdDSA')) as CryptoKey;
      this.imported.set(key.kid, priv);
    }
    return new SignJWT({ ...claims }).setProtectedHeader(header).sign(priv);
  }

  private async current(now: number): Promise<SigningKey> {
    let keys = await this.load(now);
    let k = keys.find((x) => x.retiredAt === null);
    if (!k) {
      keys = await this.load(now, true);
      k = keys.find((x) => x.retiredAt === null);
    }
    if (!k) throw new Error('no lease-signing key; the control plane was not initialised');
    return k;
  }

  private async load(now: number, fresh = false): Promise<SigningKey[]> {
    if (!fresh && this.cache && now - this.cache.at < this.cacheMs) return this.cache.keys;
    const rows = await this.db.select().from(signingKeys).orderBy(desc(signingKeys.createdAt), desc(signingKeys.kid)).all();
    this.cache = { at: now, keys: rows };
    return rows;
  }
}
