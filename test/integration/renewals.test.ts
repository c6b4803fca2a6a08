import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RenewalGroup } from '../../control-plane/renewals.js';
import { enrollNode } from '../../control-plane/store/nodes.js';
import { createEnrollmentToken } from '../../control-plane/store/tokens.js';
import { FACTS, nodeKeys } from '../lib/cp.js';
import { libsqlTestDb, type TestDb } from '../lib/db.js';

// The Node control plane's group commit of lease renewals, on the embedded libSQL file.
describe('renewal group commit', () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await libsqlTestDb();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('under load, a group starts at least the spacing after the previous one and carries every renewal that waited; after a quiet spell a renewal is written at once', async () => {
    const long = Date.now() - 60_000; // enrolled a minute ago: due for renewal
    const { token } = await createEnrollmentToken(t.db, { maxUses: 4, ttlMs: 60_000, labels: {}, now: long });
    const ids: string[] = [];
    for (const name of ['r1', 'r2', 'r3', 'r4']) ids.push((await enrollNode(t.db, { token, name, publicKey: (await nodeKeys()).publicKey, facts: FACTS }, long, 30_000)).id);
    const [n1, n2, n3, n4] = ids as [string, string, string, string];
    const spacing = 1000;
    const group = new RenewalGroup(t.db, Date.now, 10_000, 30_000, spacing);
    const first = group.renew(n1);
    await new Promise((r) => setImmediate(r)); // the first group has started
    const [a, b, c] = await Promise.all([first, group.renew(n2), group.renew(n3)]);
    expect([a.renewed, b.renewed, c.renewed]).toEqual([true, true, true]);
    expect(b.at).toBe(c.at); // one commit
    expect(b.at - a.at).toBeGreaterThanOrEqual(spacing - 10);
    expect(b.exp).toBe(b.at + 30_000);
    // A renewal of a node renewed moments ago is refused (the renewal period), in the same way.
    expect((await group.renew(n1)).renewed).toBe(false);
    await new Promise((r) => setTimeout(r, spacing + 100));
    const t0 = Date.now();
    const d = await group.renew(n4);
    expect(d.renewed).toBe(true);
    expect(Date.now() - t0).toBeLessThan(spacing / 2);
  });
});
