import { describe, expect, it } from 'vitest';
import { Outbox } from '../../agent/outbox.js';
import type { PodStatusReport } from '../../shared/protocol.js';

const status = (podId: string, phase: PodStatusReport['phase'] = 'Running', o: Partial<PodStatusReport> = {}): PodStatusReport => ({
  podId,
  epoch: 1,
  phase,
  ready: phase === 'Running',
  containers: [],
  ...o,
});
const facts = { hostname: 'h', os: 'linux', arch: 'x64', cpus: 2, memoryBytes: 1, dockerVersion: '20', agentVersion: '0.1.0' };

describe('Outbox', () => {
  it('sends a status once, and again only when it changes', () => {
    const o = new Outbox();
    expect(o.status(status('a'))).toBe(true);
    const first = o.next();
    expect(first.body.pods).toEqual([status('a')]);
    first.ack();
    expect(o.status(status('a'))).toBe(false);
    expect(o.next().body).toEqual({});
    expect(o.status(status('a', 'Pending'))).toBe(true);
  });

  it('keeps what was not acknowledged, and a newer status replaces a queued one', () => {
    const o = new Outbox();
    o.status(status('a', 'Pending'));
    const lost = o.next(); // the heartbeat failed: never acked
    expect(lost.body.pods).toHaveLength(1);
    o.status(status('a', 'Running'));
    const retry = o.next();
    expect(retry.body.pods).toEqual([status('a', 'Running')]);
    lost.ack(); // a late ack of the older body must not drop the newer status
    expect(o.next().body.pods).toEqual([status('a', 'Running')]);
  });

  it('reports facts until acknowledged, and forgets a gone pod once acknowledged', () => {
    const o = new Outbox();
    o.setFacts(facts);
    o.status(status('a', 'Succeeded', { gone: true }));
    const hb = o.next();
    expect(hb.body.facts).toEqual(facts);
    expect(hb.ack().map((s) => s.podId)).toEqual(['a']);
    expect(o.next().body).toEqual({});
    expect(o.status(status('a', 'Succeeded', { gone: true }))).toBe(true); // forgotten: a new report goes out
  });

  it('bounds events while the control plane is away, keeping the newest', () => {
    const o = new Outbox(3);
    for (let i = 0; i < 5; i++) o.event({ podId: 'a', type: 'Normal', reason: 'R', message: String(i) });
    expect(o.next().body.events?.map((e) => e.message)).toEqual(['2', '3', '4']);
  });
});
