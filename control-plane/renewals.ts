import { and, inArray, lte } from 'drizzle-orm';
import type { Db } from './store/db.js';
import { leaseNotRevoked } from './store/nodes.js';
import { type LeaseSubject, leaseSubjectsOf } from './store/pods.js';
import { nodeLeases } from './store/schema.js';

/** Outcome of a renewal for one node: its new expiry and the pods to re-sign leases for. */
export interface RenewalResult {
  renewed: boolean;
  at: number;
  exp: number;
  pods: LeaseSubject[];
}

interface Waiting {
  nodeId: string;
  resolve: (r: RenewalResult) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit for lease renewals (Node): renewals that arrive while a renewal write is in flight
 * or waiting are merged into the next single statement (`UPDATE node_leases ... WHERE node_id IN (...)`), so a
 * burst of heartbeats costs a handful of transactions instead of one each. A group starts at least
 * `spacingMs` after the previous one (a commit delay that only applies under load: a renewal after a
 * quiet spell is written at once), so at most 1000 / spacingMs commits a second carry every renewal:
 * each commit is a WAL fsync on the event loop (by hand, pinned core: 380 us of wall and 215 us of
 * CPU per single-row commit; 123 / 72 us per renewal with 3 a commit, 43 / 31 us with 10).
 *
 * Invariants: each caller learns whether *its* node was renewed (the statement returns the ids it
 * updated); the write keeps the same conditions as a single renewal (not revoked, stored renewal
 * older than the renewal period); at most one group statement is in flight at a time; unless more
 * than `maxGroup` are queued, a renewal waits at most `spacingMs` plus the write before it.
 */
export class RenewalGroup {
  private queue: Waiting[] = [];
  private running = false;
  /** When the last group started (performance.now(): monotonic, unlike the injectable clock). */
  private lastStart = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly db: Db,
    private readonly clock: () => number,
    private readonly renewPeriodMs: number,
    private readonly leaseTtlMs: number,
    private readonly spacingMs = 0,
    private readonly maxGroup = 500,
  ) {}

  /** Renews one node's leases (with whatever else is queued). */
  renew(nodeId: string): Promise<RenewalResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ nodeId, resolve, reject });
      if (this.running) return;
      // The write waits for the rest of this turn of the event loop: heartbeats read in the same
      // I/O phase join it (drained at once, each renewal was a commit of its own: 2,500 single-row
      // commits in 20 s at 3,000 agents, 13 % of the control plane's time).
      this.running = true;
      setImmediate(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const wait = this.lastStart + this.spacingMs - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        this.lastStart = performance.now();
        const group = this.queue.splice(0, this.maxGroup);
        const at = this.clock();
        const exp = at + this.leaseTtlMs;
        try {
          const ids = [...new Set(group.map((g) => g.nodeId))];
          const done = await this.db
            .update(nodeLeases)
            .set({ lastSeenAt: at, leaseExpiresAt: exp })
            .where(and(inArray(nodeLeases.nodeId, ids), lte(nodeLeases.lastSeenAt, at - this.renewPeriodMs), leaseNotRevoked))
            .returning({ id: nodeLeases.nodeId });
          const ok = new Set(done.map((d) => d.id));
          const subjects = await leaseSubjectsOf(this.db, [...ok]);
          for (const g of group) g.resolve({ renewed: ok.has(g.nodeId), at, exp, pods: subjects.get(g.nodeId) ?? [] });
        } catch (e) {
          for (const g of group) g.reject(e);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
