import { canonicalJson } from '../shared/digest.js';
import type { AgentEvent, HeartbeatRequest, NodeFacts, PodStatusReport } from '../shared/protocol.js';

/**
 * What the agent has to tell the control plane, kept until acknowledged: changed pod statuses,
 * events (bounded while the control plane is away), and node facts when they change.
 *
 * Invariants: a status is queued only when it differs from the last acknowledged one; it leaves the
 * outbox only when a heartbeat carrying it was acknowledged (and was not replaced meanwhile); a pod
 * reported `gone` is forgotten once that report is acknowledged.
 */
export class Outbox {
  private readonly pending = new Map<string, PodStatusReport>();
  private readonly acked = new Map<string, string>();
  private events: AgentEvent[] = [];
  private facts = '';
  private factsAcked = '';

  constructor(private readonly maxEvents = 500) {}

  /** Queues a pod status if it changed; true if it did. */
  status(s: PodStatusReport): boolean {
    const key = canonicalJson(s);
    const queued = this.pending.get(s.podId);
    if (this.acked.get(s.podId) === key || (queued && canonicalJson(queued) === key)) return false;
    this.pending.set(s.podId, s);
    return true;
  }

  /** Queues an event; the oldest are dropped past the bound. */
  event(e: AgentEvent): void {
    this.events.push(e);
    if (this.events.length > this.maxEvents) this.events = this.events.slice(-this.maxEvents);
  }

  /** Sets the current node facts (sent when they differ from the acknowledged ones). */
  setFacts(f: NodeFacts): void {
    this.facts = canonicalJson(f);
  }

  /** The next heartbeat body, and a function to call once the control plane acknowledged it. */
  next(): { body: HeartbeatRequest; ack: () => PodStatusReport[] } {
    const statuses = [...this.pending.values()];
    const events = this.events.slice(0, 200);
    const facts = this.facts !== this.factsAcked ? this.facts : null;
    const body: HeartbeatRequest = {
      ...(facts ? { facts: JSON.parse(facts) as NodeFacts } : {}),
      ...(statuses.length ? { pods: statuses } : {}),
      ...(events.length ? { events } : {}),
    };
    const ack = () => {
      if (facts) this.factsAcked = facts;
      for (const s of statuses) {
        if (this.pending.get(s.podId) === s) this.pending.delete(s.podId);
        if (s.gone) this.acked.delete(s.podId);
        else this.acked.set(s.podId, canonicalJson(s));
      }
      this.events = this.events.slice(events.length);
      return statuses.filter((s) => s.gone);
    };
    return { body, ack };
  }
}
