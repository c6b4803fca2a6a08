import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import { checkLeaseClaims, type LeaseClaims } from '../shared/lease.js';

/** A lease that verified: the agent may run the pod until `exp` (seconds). */
export interface VerifiedLease {
  podId: string;
  epoch: number;
  exp: number;
  /** When it was issued (seconds): `exp - iat` is the lease TTL. */
  iat: number;
  policy: LeaseClaims['policy'];
  /** A `keep` lease past its expiry: still a valid signature, so the pod keeps running offline. */
  lapsed?: boolean;
}

/**
 * Verifies lease JWSs against the control plane's JWKS, cached; an unknown key id triggers one
 * refresh (rate-limited), so a key rotation never strands the agent.
 */
export class LeaseVerifier {
  private set: ReturnType<typeof createLocalJWKSet> | null = null;
  private kids = new Set<string>();
  private lastFetch = 0;

  constructor(
    private readonly fetchJwks: () => Promise<{ keys: unknown[] }>,
    private readonly issuer: string,
    private readonly nodeId: string,
    private readonly onKeys?: (jwks: { keys: unknown[] }) => void,
    initial?: { keys: unknown[] },
  ) {
    if (initial) this.load(initial);
  }

  private load(jwks: { keys: unknown[] }): void {
    this.set = createLocalJWKSet(jwks as JSONWebKeySet);
    this.kids = new Set(jwks.keys.map((k) => String((k as { kid?: unknown }).kid)));
  }

  /** Refreshes the key set (at most every 5 s unless forced). */
  async refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.lastFetch < 5000) return;
    this.lastFetch = Date.now();
    const jwks = await this.fetchJwks();
    this.load(jwks);
    this.onKeys?.(jwks);
  }

  /** Verifies one lease for a pod; returns the lease or a reason for refusing it. */
  async verify(token: string, expect: { podId: string; specDigest: string; minEpoch: number }, nowMs: number): Promise<VerifiedLease | { refused: string }> {
    let kid: string | undefined;
    try {
      const h = decodeProtectedHeader(token);
      if (h.alg !== 'EdDSA') return { refused: `lease algorithm ${String(h.alg)} is not EdDSA` };
      kid = h.kid;
    } catch {
      return { refused: 'lease is not a JWS' };
    }
    if (!this.set || (kid !== undefined && !this.kids.has(kid))) {
      try {
        await this.refresh(!this.set);
      } catch {
        /* keep what we have */
      }
    }
    if (!this.set) return { refused: 'no lease-verification keys yet' };
    try {
      const { payload } = await jwtVerify(token, this.set, { algorithms: ['EdDSA'], currentDate: new Date(nowMs) });
      const c = payload as unknown as LeaseClaims;
      const check = checkLeaseClaims(c, { issuer: this.issuer, nodeId: this.nodeId, podId: expect.podId, specDigest: expect.specDigest, minEpoch: expect.minEpoch, nowSeconds: nowMs / 1000 });
      if (!check.ok) return { refused: check.reason };
      return { podId: c.pod, epoch: c.epoch, exp: c.exp, iat: c.iat, policy: c.policy };
    } catch (e) {
      const err = e as { code?: string; payload?: Partial<LeaseClaims> };
      // The signature verified (jose checks it before the claims); only the expiry failed. A `keep`
      // lease stays valid for running the pod while disconnected; it is never renewed by this.
      if (err.code === 'ERR_JWT_EXPIRED' && err.payload?.policy === 'keep' && typeof err.payload.exp === 'number') {
        const c = err.payload;
        const check = checkLeaseClaims(c, {
          issuer: this.issuer,
          nodeId: this.nodeId,
          podId: expect.podId,
          specDigest: expect.specDigest,
          minEpoch: expect.minEpoch,
          nowSeconds: (c.exp as number) - 1,
        });
        if (!check.ok) return { refused: check.reason };
        return { podId: c.pod as string, epoch: c.epoch as number, exp: c.exp as number, iat: (c.iat as number) ?? 0, policy: 'keep', lapsed: true };
      }
      return { refused: `lease signature or claims rejected: ${err.code ?? (e as Error).message}` };
    }
  }
}
