import { and, eq, gte, isNotNull } from 'drizzle-orm';
import type { CryptoKey } from 'jose';
import type { Db } from '../store/db.js';
import { nodeLeases, nodes } from '../store/schema.js';

/** What the agent hot path needs to know about a node. */
export interface AgentNode {
  id: string;
  name: string;
  publicKey: Record<string, string>;
  lastSeenAt: number;
  leaseExpiresAt: number;
  desiredVersion: number;
  /** The imported public key (identity never changes, so it is imported once). */
  key?: CryptoKey;
  /** Its synchronous signature check, where the runtime has one (Node); made once, like `key`. */
  verify?: (data: Uint8Array, signature: Uint8Array) => boolean;
}

/**
 * The agent hot path's view of enrolled nodes, per control-plane instance, so that a heartbeat
 * between renewals costs no SQL at all (the heartbeat economy).
 *
 * Invariants:
 * - Identity (id, name, public key) never changes after enrollment: cached without expiry (bounded).
 * - Revocation: this instance marks a node revoked at once; revocations made by other instances are
 *   picked up by a refresh of the revoked set at most `refreshMs` old. Whatever the cache says, a
 *   lease renewal is a conditional write (`revoked_at IS NULL`), so a revoked node's leases lapse.
 * - lastSeenAt/leaseExpiresAt are what this instance last wrote or read; a renewal conditional on
 *   the stored value being old enough tells us when another instance renewed first.
 * - desiredVersion is a hint here; the desired-state endpoint always reads it fresh.
 * - Verified agent JWTs are remembered by their exact text until their own `exp` (agents reuse one
 *   for about 30 s), so most requests skip the signature check; only a byte-identical token hits.
 */
export class NodeDirectory {
  private readonly known = new Map<string, AgentNode>();
  private readonly revoked = new Set<string>();
  private readonly tokens = new Map<string, { sub: string; exp: number }>();
  /** Size at which remembering a token first drops the expired ones (twice what survived the last sweep). */
  private sweepAt: number;
  private revokedSince = 0;
  private refreshedAt = -Infinity;
  private refreshing: Promise<void> | null = null;

  constructor(
    private readonly refreshMs = 1000,
    private readonly max = 200_000,
  ) {
    this.sweepAt = Math.min(1024, max);
  }

  /** The node, or null if unknown or revoked. */
  async lookup(db: Db, id: string, now: number): Promise<AgentNode | null> {
    await this.refreshRevocations(db, now);
    if (this.revoked.has(id)) return null;
    const hit = this.known.get(id);
    if (hit) return hit;
    const row = await db
      .select({
        id: nodes.id,
        name: nodes.name,
        publicKey: nodes.publicKey,
        lastSeenAt: nodeLeases.lastSeenAt,
        leaseExpiresAt: nodeLeases.leaseExpiresAt,
        desiredVersion: nodes.desiredVersion,
        revokedAt: nodes.revokedAt,
      })
      .from(nodes)
      .innerJoin(nodeLeases, eq(nodeLeases.nodeId, nodes.id))
      .where(eq(nodes.id, id))
      .get();
    if (!row) return null;
    if (row.revokedAt !== null) {
      this.revoked.add(id);
      return null;
    }
    const { revokedAt: _r, ...n } = row;
    if (this.known.size >= this.max) this.known.clear();
    this.known.set(id, n);
    return n;
  }

  /** The node id of an already verified, unexpired token, if this exact token was seen. */
  verifiedSubject(token: string, now: number): string | undefined {
    const hit = this.tokens.get(token);
    return hit && hit.exp * 1000 > now ? hit.sub : undefined;
  }

  /**
   * Remembers a token whose signature and claims verified, until its `exp`. Agents replace their
   * token about every 30 s, so expired ones are dropped as the map grows (amortized: a sweep when it
   * doubles): kept without a sweep, 10,000 agents filled the bound (200,000) in ten minutes, and
   * the map was then cleared whole, so every agent's token was verified again at once.
   */
  rememberToken(token: string, sub: string, exp: number, now: number): void {
    if (this.tokens.size >= this.sweepAt) {
      for (const [t, v] of this.tokens) if (v.exp * 1000 <= now) this.tokens.delete(t);
      if (this.tokens.size >= this.max) this.tokens.clear();
      this.sweepAt = Math.min(this.max, Math.max(1024, 2 * this.tokens.size));
    }
    this.tokens.set(token, { sub, exp });
  }

  /** Tokens remembered (expired ones included until the next sweep). */
  get rememberedTokens(): number {
    return this.tokens.size;
  }

  /** Records a revocation made by this instance: effective at the node's next request. */
  markRevoked(id: string): void {
    this.revoked.add(id);
    this.known.delete(id);
  }

  private refreshRevocations(db: Db, now: number): Promise<void> {
    if (now - this.refreshedAt < this.refreshMs) return Promise.resolve();
    if (!this.refreshing) {
      // Look back a minute past the newest revocation seen, for clock skew between instances.
      const since = Math.max(0, this.revokedSince - 60_000);
      this.refreshing = db
        .select({ id: nodes.id, revokedAt: nodes.revokedAt })
        .from(nodes)
        .where(and(isNotNull(nodes.revokedAt), gte(nodes.revokedAt, since)))
        .all()
        .then((rows) => {
          for (const r of rows) {
            this.revoked.add(r.id);
            this.known.delete(r.id);
            this.revokedSince = Math.max(this.revokedSince, r.revokedAt ?? 0);
          }
          this.refreshedAt = now;
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }
}
