import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv, silentLogger } from '../../control-plane/config.js';
import type { Deps } from '../../control-plane/context.js';
import { hasWork, runTick } from '../../control-plane/controllers/tick.js';
import { Keyring } from '../../control-plane/keys.js';
import { ensureCluster } from '../../control-plane/store/meta.js';
import { enrollNode } from '../../control-plane/store/nodes.js';
import { listPods } from '../../control-plane/store/pods.js';
import { createEnrollmentToken } from '../../control-plane/store/tokens.js';
import { applyDeployment, deleteDeployment, getDeployment } from '../../control-plane/store/workloads.js';
import { parseDeployment } from '../../shared/manifest.js';
import { FACTS, nodeKeys } from '../lib/cp.js';
import { d1TestDb, libsqlTestDb, type TestDb } from '../lib/db.js';
import { deploymentManifest } from '../lib/fixtures.js';

// The same store behaviour on an embedded libSQL file and on a local D1 inside workerd.
describe.each([
  ['libSQL file', libsqlTestDb],
  ['D1 (workerd)', d1TestDb],
])('store on %s', (_name, open) => {
  let t: TestDb;
  let deps: Deps;
  const now = Date.now();

  beforeAll(async () => {
    t = await open();
    const config = configFromEnv({ FLOTILLA_SCHEDULER_SCORING: 'LeastAllocated' });
    const cluster = await ensureCluster(t.db, now);
    deps = { db: t.db, config, logger: silentLogger, clock: () => now, keys: new Keyring(t.db, 1000), cluster };
  });
  afterAll(async () => t?.close());

  it('creates the cluster id once, however often it is asked', async () => {
    const again = await ensureCluster(t.db, now);
    expect(again.clusterId).toBe(deps.cluster.clusterId);
  });

  it('lets exactly as many nodes enroll as the token allows, even concurrently', async () => {
    const { token } = await createEnrollmentToken(t.db, { maxUses: 2, ttlMs: 60_000, labels: { site: 'lab' }, now });
    const attempts = await Promise.allSettled(['n1', 'n2', 'n3'].map(async (name) => enrollNode(t.db, { token, name, publicKey: (await nodeKeys()).publicKey, facts: FACTS }, now, 30_000)));
    const ok = attempts.filter((a) => a.status === 'fulfilled');
    expect(ok).toHaveLength(2);
    const failed = attempts.find((a) => a.status === 'rejected') as PromiseRejectedResult;
    expect(String(failed.reason.message)).toMatch(/invalid, expired, revoked or used up/);
    const node = (ok[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof enrollNode>>>).value;
    expect(node.labels).toMatchObject({ site: 'lab' });
  });

  it('refuses an expired enrollment token and creates no node', async () => {
    const { token } = await createEnrollmentToken(t.db, { maxUses: 5, ttlMs: 1000, labels: {}, now: now - 5000 });
    await expect(enrollNode(t.db, { token, name: 'late', publicKey: (await nodeKeys()).publicKey, facts: FACTS }, now, 30_000)).rejects.toThrow(/expired/);
  });

  it('applies a deployment: created, unchanged, configured with a new revision only when the template changes', async () => {
    const d = parseDeployment(deploymentManifest('web', { replicas: 3 }));
    expect((await applyDeployment(t.db, d, 'default', now, 'test')).outcome).toBe('created');
    expect((await applyDeployment(t.db, d, 'default', now, 'test')).outcome).toBe('unchanged');
    const scaled = parseDeployment(deploymentManifest('web', { replicas: 4 }));
    const r1 = await applyDeployment(t.db, scaled, 'default', now, 'test');
    expect([r1.outcome, r1.row.revision, r1.row.generation]).toEqual(['configured', 1, 2]);
    const newImage = parseDeployment(deploymentManifest('web', { replicas: 4, image: 'local/busybox:2' }));
    const r2 = await applyDeployment(t.db, newImage, 'default', now, 'test');
    expect([r2.outcome, r2.row.revision]).toEqual(['configured', 2]);
    await applyDeployment(t.db, parseDeployment(deploymentManifest('web', { replicas: 3 })), 'default', now, 'test');
  });

  it('concurrent controller ticks never create more pods than replicas', async () => {
    await Promise.all([runTick(deps), runTick(deps), runTick(deps)]);
    const dep = await getDeployment(t.db, 'default', 'web');
    const pods = (await listPods(t.db, { namespace: 'default' })).filter((p) => p.deploymentId === dep?.id && p.desired === 'run');
    expect(pods).toHaveLength(3);
    // Spread over the two enrolled nodes, each with a fresh epoch and a lease.
    expect(new Set(pods.map((p) => p.nodeId)).size).toBe(2);
    expect(pods.every((p) => p.epoch === 1)).toBe(true);
  });

  it('an idle cluster has no controller work; a change to replicas has', async () => {
    expect(await hasWork(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(false);
    await applyDeployment(t.db, parseDeployment(deploymentManifest('web', { replicas: 2 })), 'default', now, 'test');
    expect(await hasWork(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(true);
    await runTick(deps);
    // the surplus pod is terminating on a live node: its agent reports it gone, no controller work meanwhile
    expect(await hasWork(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(false);
    await applyDeployment(t.db, parseDeployment(deploymentManifest('web', { replicas: 3 })), 'default', now, 'test');
  });

  it('deleting a deployment marks its pods terminating, then forgets them once their leases lapse', async () => {
    const dep = await getDeployment(t.db, 'default', 'web');
    expect(dep).toBeDefined();
    await deleteDeployment(t.db, dep!, now, 'test');
    await runTick(deps);
    const pods = (await listPods(t.db)).filter((p) => p.deploymentId === dep!.id);
    expect(pods.length).toBe(3);
    expect(pods.every((p) => p.desired === 'stop')).toBe(true);
    const later = { ...deps, clock: () => now + deps.config.leaseTtlMs + deps.config.clockSkewMs + 1000 };
    await runTick(later);
    expect((await listPods(t.db)).filter((p) => p.deploymentId === dep!.id)).toEqual([]);
  });
});
