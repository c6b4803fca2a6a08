import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv, silentLogger } from '../../control-plane/config.js';
import type { Deps } from '../../control-plane/context.js';
import { hasWork, runTick, workReasons } from '../../control-plane/controllers/tick.js';
import { allocatableOf } from '../../control-plane/core/scheduler.js';
import { Keyring } from '../../control-plane/keys.js';
import { applyClaim, claimVolumeName, getClaim, requestClaimDeletion, volumeDeletesOf, volumesRemoved } from '../../control-plane/store/claims.js';
import { applyConfig, deleteConfig, sealedKids, valuesOf } from '../../control-plane/store/config.js';
import { listEvents } from '../../control-plane/store/events.js';
import { ensureCluster } from '../../control-plane/store/meta.js';
import { enrollNode, largestAllocatable, listNodes, patchNode } from '../../control-plane/store/nodes.js';
import { listPods, prefetchImagesOf } from '../../control-plane/store/pods.js';
import { applyService, deleteService, endpointsOf, servicesForNode } from '../../control-plane/store/services.js';
import { createEnrollmentToken } from '../../control-plane/store/tokens.js';
import { applyDeployment, applyWorkload, deleteDeployment, getDeployment } from '../../control-plane/store/workloads.js';
import { type ClaimManifest, parseDeployment, parseManifest, parseWorkload, type SecretManifest, type ServiceManifest } from '../../shared/manifest.js';
import { newMasterKey, parseMasterKey, SecretBox } from '../../shared/secretbox.js';
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
  /** What agents would report: every placed pod running and Ready (rollouts complete; a cluster can go idle). */
  const reportReady = async (at: number) => {
    await t.db.run(sql`UPDATE pods SET phase = 'Running', ready = 1, ready_since = COALESCE(ready_since, ${at}) WHERE desired = 'run' AND node_id IS NOT NULL`);
  };

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
    expect(await hasWork(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(true); // the rollout: pods not Ready yet
    expect(await workReasons(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toEqual(['rollouts']);
    await reportReady(now);
    // a rollout alone is assessed from its pods' counts, without reading every pod and node
    expect(await runTick(deps)).toMatchObject({ work: ['rollouts'], snapshot: false });
    expect((await getDeployment(t.db, 'default', 'web'))?.rollout?.state).toBe('Complete');
    expect(await hasWork(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(false);
    expect(await workReasons(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toEqual([]);
    await applyDeployment(t.db, parseDeployment(deploymentManifest('web', { replicas: 2 })), 'default', now, 'test');
    expect(await hasWork(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(true);
    expect(await workReasons(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toContain('deployments');
    expect((await runTick(deps)).work).toContain('deployments'); // what a slow tick's log line shows
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

  it('creates thousands of replicas in bursts of FLOTILLA_TICK_BURST a tick, every pod with its own name and a node', async () => {
    await applyDeployment(t.db, parseDeployment(deploymentManifest('many', { replicas: 2000 })), 'default', now, 'test');
    const bursty = { ...deps, config: { ...deps.config, tickBurst: 800 } };
    const created: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await runTick(bursty);
      if (r.created === 0) break;
      created.push(r.created);
      expect(r.deferred).toBe(2000 - created.reduce((a, b) => a + b, 0));
    }
    expect(created).toEqual([800, 800, 400]);
    const many = (await listPods(t.db, { namespace: 'default' })).filter((p) => p.workload === 'many');
    expect(new Set(many.map((p) => p.name)).size).toBe(2000);
    expect(many.every((p) => p.nodeId !== null && p.epoch === 1)).toBe(true);
    await deleteDeployment(t.db, (await getDeployment(t.db, 'default', 'many'))!, now, 'test');
    await runTick(deps);
  }, 180_000); // 2,000 pods through D1 in workerd: ~15 s alone, several times that on a loaded 2-core CI machine

  it("the largest allocatable (apply's could-it-ever-fit check) follows the scheduler's rule: override, else capacity less the reserve", async () => {
    const reserve = { cpu: deps.config.reservedCpu, memory: deps.config.reservedMemory };
    const byRule = (rows: Awaited<ReturnType<typeof listNodes>>) => {
      const a = rows.map((n) => allocatableOf({ ...(n.facts as { cpus: number; memoryBytes: number }), allocatable: n.allocatable }, reserve));
      return { cpu: Math.max(...a.map((x) => x.cpu)), memory: Math.max(...a.map((x) => x.memory)) };
    };
    const live = await listNodes(t.db);
    expect(live.length).toBeGreaterThan(1);
    expect(await largestAllocatable(t.db, reserve)).toEqual(byRule(live));
    expect(await largestAllocatable(t.db, { cpu: 0, memory: 0 })).toEqual({ cpu: FACTS.cpus * 1000, memory: FACTS.memoryBytes });
    const [n1] = live.sort((a, b) => (a.name < b.name ? -1 : 1));
    // A CPU-only override: memory still comes from the reported capacity.
    await patchNode(t.db, n1!, { allocatable: { cpu: 64_000 } }, now, 'test');
    expect(await largestAllocatable(t.db, reserve)).toEqual({ cpu: 64_000, memory: byRule(live).memory });
    await patchNode(t.db, n1!, { allocatable: { cpu: 100, memory: 2 ** 40 } }, now, 'test');
    expect(await largestAllocatable(t.db, reserve)).toEqual(byRule(await listNodes(t.db)));
    expect((await largestAllocatable(t.db, reserve))?.memory).toBe(2 ** 40);
    await patchNode(t.db, n1!, { allocatable: n1!.allocatable }, now, 'test');
    expect(await largestAllocatable(t.db, reserve)).toEqual(byRule(live));
  });

  it('a DaemonSet follows node labels: the idle check sees a label change, and the pods follow', async () => {
    const [n1, n2] = (await listNodes(t.db)).sort((a, b) => (a.name < b.name ? -1 : 1));
    await patchNode(t.db, n1!, { labels: { cam: 'yes' } }, now, 'test');
    await applyWorkload(t.db, parseWorkload({ ...deploymentManifest('cams', { kind: 'DaemonSet', pod: { nodeSelector: { cam: 'yes' } } }) }), 'default', now, 'test');
    await runTick(deps);
    const cams = async () => (await listPods(t.db)).filter((p) => p.workload === 'cams' && p.desired === 'run');
    expect((await cams()).map((p) => p.nodeId)).toEqual([n1!.id]);
    await reportReady(now);
    expect(await runTick(deps)).toMatchObject({ work: ['rollouts'], snapshot: false });
    expect((await getDeployment(t.db, 'default', 'cams', 'DaemonSet'))?.rollout).toMatchObject({ state: 'Complete', updated: 1, available: 1 });
    expect(await hasWork(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(false);
    await patchNode(t.db, n2!, { labels: { cam: 'yes' } }, now, 'test');
    expect(await hasWork(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(true);
    expect(await workReasons(t.db, now, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toEqual(['daemonSets']);
    await runTick(deps);
    expect((await cams()).map((p) => p.nodeId).sort()).toEqual([n1!.id, n2!.id].sort());
    expect((await cams()).every((p) => p.policy === 'keep')).toBe(true);
    await patchNode(t.db, n1!, { labels: {} }, now, 'test');
    await runTick(deps);
    expect((await cams()).map((p) => p.nodeId)).toEqual([n2!.id]);
    await deleteDeployment(t.db, (await getDeployment(t.db, 'default', 'cams', 'DaemonSet'))!, now, 'test');
    await runTick(deps);
  });

  it('records node conditions without the snapshot: NotReady past the grace period, once per node however many ticks race, Ready again once renewed', async () => {
    const live = await listNodes(t.db);
    expect(live.length).toBeGreaterThan(1);
    const late = now + deps.config.nodeGraceMs + 1; // leases (TTL) still valid: no pod moves
    await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${now}, lease_expires_at = ${now + deps.config.leaseTtlMs}`);
    await t.db.run(sql`UPDATE nodes SET ready = 1`);
    expect(await workReasons(t.db, late, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toEqual(['nodeConditions']);
    const atLate = { ...deps, clock: () => late };
    const raced = await Promise.all([runTick(atLate), runTick(atLate)]);
    expect(raced.map((r) => [r.work, r.snapshot])).toEqual([
      [['nodeConditions'], false],
      [['nodeConditions'], false],
    ]);
    expect(raced[0]!.nodeTransitions + raced[1]!.nodeTransitions).toBe(live.length);
    expect((await listNodes(t.db)).map((n) => n.ready)).toEqual(live.map(() => false));
    const notReady = (await listEvents(t.db, { kind: 'Node', limit: 1000 })).filter((e) => e.reason === 'NodeNotReady' && e.at === late);
    expect(notReady.map((e) => e.name).sort()).toEqual(live.map((n) => n.name).sort());
    expect(await hasWork(t.db, late, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(false);
    await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${late}`);
    expect((await runTick(atLate)).nodeTransitions).toBe(live.length);
    expect((await listNodes(t.db)).every((n) => n.ready)).toBe(true);
    expect((await listEvents(t.db, { kind: 'Node', limit: 1000 })).filter((e) => e.reason === 'NodeReady' && e.at === late)).toHaveLength(live.length);
    await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${now}`); // as the tests after this one expect
  });

  it('moves stop pods of a node whose lease lapsed past the skew to a live node at a higher epoch; keep pods stay', async () => {
    const [n1, n2] = (await listNodes(t.db)).sort((a, b) => (a.name < b.name ? -1 : 1));
    await applyDeployment(t.db, parseDeployment(deploymentManifest('mobile', { replicas: 1, nodeSelector: { 'kubernetes.io/hostname': n1!.name } })), 'default', now, 'test');
    await applyWorkload(t.db, parseWorkload(deploymentManifest('stay', { kind: 'DaemonSet', pod: { nodeSelector: { 'kubernetes.io/hostname': n1!.name } } })), 'default', now, 'test');
    await runTick(deps);
    // widen the selector (a new revision replaces the pod, still on n1 by bin packing order)
    await applyDeployment(t.db, parseDeployment(deploymentManifest('mobile', { replicas: 1 })), 'default', now, 'test');
    await runTick(deps);
    const before = (await listPods(t.db)).find((p) => p.workload === 'mobile' && p.desired === 'run');
    expect(before?.nodeId).toBe(n1!.id);
    // n2 keeps renewing; n1 falls silent.
    const later = now + deps.config.leaseTtlMs + deps.config.clockSkewMs + 1000;
    await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${later}, lease_expires_at = ${later + 30_000} WHERE node_id = ${n2!.id}`);
    const atSkewEdge = { ...deps, clock: () => n1!.leaseExpiresAt + deps.config.clockSkewMs - 1 };
    await runTick(atSkewEdge);
    expect((await listPods(t.db)).find((p) => p.id === before!.id)?.nodeId).toBe(n1!.id); // not before expiry + skew
    await runTick({ ...deps, clock: () => later });
    const after = (await listPods(t.db)).find((p) => p.id === before!.id);
    expect([after?.nodeId, after?.epoch]).toEqual([n2!.id, before!.epoch + 1]);
    expect((await listPods(t.db)).find((p) => p.workload === 'stay')?.nodeId).toBe(n1!.id);
    const n1Row = (await listNodes(t.db)).find((n) => n.id === n1!.id);
    expect(n1Row?.ready).toBe(false);
    await deleteDeployment(t.db, (await getDeployment(t.db, 'default', 'mobile'))!, later, 'test');
    await deleteDeployment(t.db, (await getDeployment(t.db, 'default', 'stay', 'DaemonSet'))!, later, 'test');
    await runTick({ ...deps, clock: () => later });
  });

  it('a NoExecute taint evicts untolerating pods (the replacement lands elsewhere); an untimed toleration keeps a pod, a timed one until it runs out', async () => {
    const [n1, n2] = (await listNodes(t.db)).sort((a, b) => (a.name < b.name ? -1 : 1));
    const at = now + 60 * 60_000; // both nodes renewed at this time
    for (const n of [n1!, n2!]) await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${at}, lease_expires_at = ${at + 30_000} WHERE node_id = ${n.id}`);
    const d = { ...deps, clock: () => at };
    const pin = { 'kubernetes.io/hostname': n1!.name };
    await applyDeployment(t.db, parseDeployment(deploymentManifest('bare', { nodeSelector: pin })), 'default', at, 'test');
    await applyDeployment(
      t.db,
      parseDeployment(deploymentManifest('timed', { nodeSelector: pin, pod: { tolerations: [{ key: 'maint', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 60 }] } })),
      'default',
      at,
      'test',
    );
    await applyDeployment(t.db, parseDeployment(deploymentManifest('forever', { nodeSelector: pin, pod: { tolerations: [{ operator: 'Exists' }] } })), 'default', at, 'test');
    await runTick(d);
    // let the bare pod go anywhere (a new revision, rolled out: the new pod is packed onto n1 too,
    // and the old one goes once the new one is Ready)
    await applyDeployment(t.db, parseDeployment(deploymentManifest('bare')), 'default', at, 'test');
    await runTick(d);
    await reportReady(at);
    await runTick(d);
    await reportReady(at);
    await runTick(d);
    const live = async (w: string) => (await listPods(t.db)).filter((p) => p.workload === w && p.desired === 'run');
    expect((await live('bare'))[0]?.nodeId).toBe(n1!.id);
    expect(await hasWork(t.db, at, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(false);
    const [n1now] = (await listNodes(t.db)).filter((n) => n.id === n1!.id);
    await patchNode(t.db, n1now!, { taints: [{ key: 'maint', effect: 'NoExecute' }] }, at, 'test');
    expect(await hasWork(t.db, at, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(true);
    await runTick(d);
    expect((await live('bare')).map((p) => p.nodeId)).toEqual([n2!.id]);
    const timed = (await live('timed'))[0];
    expect(timed?.nodeId).toBe(n1!.id);
    expect((await live('forever')).map((p) => p.nodeId)).toEqual([n1!.id]);
    for (const n of [n1!, n2!]) await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${at + 61_000}, lease_expires_at = ${at + 91_000} WHERE node_id = ${n.id}`);
    await runTick({ ...deps, clock: () => at + 61_000 });
    // the timed pod ran out of toleration: evicted and replaced (the replacement tolerates the taint
    // too, so it may land there again, with a fresh 60 s)
    expect((await live('timed')).map((p) => p.id)).not.toContain(timed?.id);
    expect(await live('timed')).toHaveLength(1);
    expect((await live('forever')).map((p) => p.nodeId)).toEqual([n1!.id]);
    for (const w of ['bare', 'timed', 'forever']) await deleteDeployment(t.db, (await getDeployment(t.db, 'default', w))!, at, 'test');
  });

  it('a revision whose new pods crash-loop is rolled back to the last available one, adopting its pods; the bad one is not retried until applied again', async () => {
    const at = now + 2 * 60 * 60_000;
    for (const n of await listNodes(t.db)) await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${at}, lease_expires_at = ${at + 30_000} WHERE node_id = ${n.id}`);
    const d = { ...deps, clock: () => at };
    const v = (image: string) => parseDeployment(deploymentManifest('shaky', { replicas: 2, image }));
    await applyDeployment(t.db, v('local/busybox:1'), 'default', at, 'test');
    await runTick(d);
    await reportReady(at);
    await runTick(d);
    const stable = await getDeployment(t.db, 'default', 'shaky');
    expect([stable?.rollout?.state, stable?.stableRevision]).toEqual(['Complete', 1]);
    const v1Pods = (await listPods(t.db)).filter((p) => p.workload === 'shaky' && p.desired === 'run').map((p) => p.id);
    const v1Nodes = new Set((await listPods(t.db)).filter((p) => v1Pods.includes(p.id)).map((p) => p.nodeId as string));
    for (const n of v1Nodes) expect(await prefetchImagesOf(t.db, n)).toEqual([]); // nothing to roll out
    await applyDeployment(t.db, v('local/busybox:2'), 'default', at, 'test');
    // nodes with pods of the old revision are told to pull the new image ahead
    for (const n of v1Nodes) expect(await prefetchImagesOf(t.db, n)).toEqual([{ namespace: 'default', workload: 'shaky', image: 'local/busybox:2' }]);
    await runTick(d);
    const fresh = (await listPods(t.db)).filter((p) => p.workload === 'shaky' && p.revision === 2);
    expect(fresh.length).toBeGreaterThan(0);
    // the agent reports the new pod restarting over and over
    await t.db.run(sql`UPDATE pods SET restarts = 3, phase = 'Running', ready = 0 WHERE workload = 'shaky' AND revision = 2`);
    await runTick(d);
    const back = await getDeployment(t.db, 'default', 'shaky');
    expect(back?.revision).toBe(3);
    expect((back!.spec as { template: { spec: { containers: { image: string }[] } } }).template.spec.containers[0]?.image).toBe('local/busybox:1');
    expect(back?.rollout?.rolledBack).toMatchObject({ from: 2, to: 1, reason: 'CrashLoopBackOff' });
    const events = await listEvents(t.db, { namespace: 'default', kind: 'Deployment', name: 'shaky', limit: 100 });
    expect(events.some((e) => e.reason === 'RolledBack' && e.type === 'Warning' && /revision 2 restarted 3 times/.test(e.message))).toBe(true);
    await runTick(d);
    await runTick(d);
    const live = (await listPods(t.db)).filter((p) => p.workload === 'shaky' && p.desired === 'run');
    // the pods of revision 1 were never stopped: they are revision 3 now; the crashing pods are gone
    expect(live.map((p) => p.id).sort()).toEqual([...v1Pods].sort());
    expect(live.every((p) => p.revision === 3)).toBe(true);
    const after = await getDeployment(t.db, 'default', 'shaky');
    expect(after?.rollout).toMatchObject({ revision: 3, state: 'Complete' });
    expect(after?.stableRevision).toBe(3);
    // applying the same (bad) manifest again is a new revision, and it is tried again
    expect((await applyDeployment(t.db, v('local/busybox:2'), 'default', at, 'test')).outcome).toBe('configured');
    expect((await getDeployment(t.db, 'default', 'shaky'))?.revision).toBe(4);
    await deleteDeployment(t.db, (await getDeployment(t.db, 'default', 'shaky'))!, at, 'test');
  });

  it('with flotilla.dev/on-failure: pause, a rollout past its deadline pauses instead; resuming retries', async () => {
    const at = now + 3 * 60 * 60_000;
    for (const n of await listNodes(t.db)) await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${at + 700_000}, lease_expires_at = ${at + 730_000} WHERE node_id = ${n.id}`);
    const m = (image: string) => parseDeployment({ ...deploymentManifest('careful', { replicas: 1, image, annotations: { 'flotilla.dev/on-failure': 'pause' } }) });
    await applyDeployment(t.db, m('local/busybox:1'), 'default', at, 'test');
    await runTick({ ...deps, clock: () => at });
    await reportReady(at);
    await runTick({ ...deps, clock: () => at });
    await applyDeployment(t.db, m('local/busybox:2'), 'default', at, 'test');
    await runTick({ ...deps, clock: () => at });
    await runTick({ ...deps, clock: () => at + 1_000 }); // sees the new pod: progress
    // 600 s default deadline: nothing becomes Ready
    await runTick({ ...deps, clock: () => at + 600_000 });
    expect((await getDeployment(t.db, 'default', 'careful'))?.rollout?.state).toBe('Progressing');
    await runTick({ ...deps, clock: () => at + 601_001 });
    const paused = await getDeployment(t.db, 'default', 'careful');
    expect((paused!.spec as { paused: boolean }).paused).toBe(true);
    expect(paused?.revision).toBe(2);
    expect(paused?.rollout).toMatchObject({ state: 'Failed', reason: 'ProgressDeadlineExceeded', pausedOnFailure: true });
    // paused: replicas pods of what there is; the unready new one goes, the old one keeps serving
    await runTick({ ...deps, clock: () => at + 602_000 });
    expect((await listPods(t.db)).filter((p) => p.workload === 'careful' && p.desired === 'run').map((p) => p.revision)).toEqual([1]);
    // a paused Deployment with an unfinished rollout is idle (no snapshot per tick)
    expect(await hasWork(t.db, at + 602_000, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(false);
    // resuming retries the revision with a fresh deadline
    await applyDeployment(t.db, parseDeployment({ ...m('local/busybox:2'), spec: { ...m('local/busybox:2').spec, paused: false } }), 'default', at + 603_000, 'test');
    await runTick({ ...deps, clock: () => at + 603_000 });
    expect((await getDeployment(t.db, 'default', 'careful'))?.rollout).toMatchObject({ state: 'Progressing', progressAt: at + 603_000 });
    await deleteDeployment(t.db, (await getDeployment(t.db, 'default', 'careful'))!, at, 'test');
  });

  it('a rollout assessed without the snapshot still rolls a crash-looping revision back', async () => {
    const at = now + 4 * 60 * 60_000;
    for (const n of await listNodes(t.db)) await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${at}, lease_expires_at = ${at + 30_000} WHERE node_id = ${n.id}`);
    const d = { ...deps, clock: () => at };
    const v = (image: string) => parseDeployment(deploymentManifest('solo', { replicas: 1, image }));
    await applyDeployment(t.db, v('local/busybox:1'), 'default', at, 'test');
    await runTick(d);
    await reportReady(at);
    await runTick(d);
    await applyDeployment(t.db, v('local/busybox:2'), 'default', at, 'test');
    await runTick(d); // the new pod
    await reportReady(at);
    await runTick(d); // the old one stops
    const solo = async () => (await listPods(t.db)).filter((p) => p.workload === 'solo' && p.desired === 'run');
    expect((await solo()).map((p) => p.revision)).toEqual([2]);
    await t.db.run(sql`UPDATE pods SET restarts = 3, ready = 0 WHERE workload = 'solo' AND revision = 2`);
    expect(await runTick(d)).toMatchObject({ work: ['rollouts'], snapshot: false });
    const back = await getDeployment(t.db, 'default', 'solo');
    expect([back?.revision, back?.rollout?.rolledBack?.reason]).toEqual([3, 'CrashLoopBackOff']);
    expect((back!.spec as { template: { spec: { containers: { image: string }[] } } }).template.spec.containers[0]?.image).toBe('local/busybox:1');
    expect((await runTick(d)).snapshot).toBe(true); // the rollback's new revision is planned as usual
    await deleteDeployment(t.db, (await getDeployment(t.db, 'default', 'solo'))!, at, 'test');
    await runTick(d);
  });

  it('seals Secrets at rest (the row holds no value, the ciphertext names its key and is bound to its object); ConfigMaps are plain', async () => {
    const box = await SecretBox.fromKey(parseMasterKey(newMasterKey()));
    const m = parseManifest({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tok' }, stringData: { token: 'very-secret-value' } }) as SecretManifest;
    const { row, outcome } = await applyConfig(t.db, m, 'default', box, now, 'test');
    expect(outcome).toBe('created');
    const raw = await t.db.get<{ data: string; kid: string }>(sql`SELECT data, kid FROM config_objects WHERE id = ${row.id}`);
    expect(raw?.data).not.toContain('very-secret-value');
    expect(raw?.data).not.toContain(btoa('very-secret-value'));
    expect(raw?.kid).toBe(box.kid);
    expect(await valuesOf(row, box)).toEqual({ token: btoa('very-secret-value') });
    expect((await applyConfig(t.db, m, 'default', box, now, 'test')).outcome).toBe('unchanged');
    const other = await SecretBox.fromKey(parseMasterKey(newMasterKey()));
    await expect(valuesOf(row, other)).rejects.toThrow(/sealed under key/);
    // a ciphertext moved to another object does not open
    await expect(valuesOf({ ...row, name: 'other' }, box)).rejects.toThrow();
    expect(await sealedKids(t.db)).toEqual([box.kid]);
    const next = await applyConfig(t.db, { ...m, stringData: { token: 'rotated' } }, 'default', box, now, 'test');
    expect([next.outcome, next.row.version]).toEqual(['configured', 2]);
    await deleteConfig(t.db, next.row, now, 'test');
  });

  it("a claim binds to its first pod's node; a service sees the pod once Ready and published (the trigger tells the nodes); a deleted claim is released and goes", async () => {
    const at = now + 900_000;
    const d = { ...deps, clock: () => at };
    await applyClaim(
      t.db,
      parseManifest({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'pv' }, spec: { resources: { requests: { storage: '1Gi' } } } }) as ClaimManifest,
      'claims',
      at,
      'test',
    );
    const doc = deploymentManifest('stateful', {
      namespace: 'claims',
      replicas: 1,
      container: { volumeMounts: [{ name: 'v', mountPath: '/data' }] },
      pod: { volumes: [{ name: 'v', persistentVolumeClaim: { claimName: 'pv' } }] },
    });
    await applyWorkload(t.db, parseWorkload(doc), 'claims', at, 'test');
    // Every node renews now, so the pod's node is live when endpoints are read.
    await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${at}, lease_expires_at = ${at + 30_000}`);
    await runTick(d);
    const [pod] = await listPods(t.db, { namespace: 'claims' });
    expect(pod?.nodeId).toBeTruthy();
    const bound = await getClaim(t.db, 'claims', 'pv');
    expect([bound?.phase, bound?.nodeId]).toEqual(['Bound', pod?.nodeId]);

    const { row: svc } = await applyService(
      t.db,
      parseManifest({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'db' }, spec: { selector: { app: 'stateful' }, ports: [{ port: 5432, targetPort: 80 }] } }) as ServiceManifest,
      'claims',
      at,
      'test',
    );
    expect(svc.clusterIp).toMatch(/^127\.77\./);
    const version = async () => (await t.db.get<{ v: number }>(sql`SELECT desired_version AS v FROM nodes WHERE id = ${pod?.nodeId}`))?.v ?? 0;
    const before = await version();
    await t.db.run(
      sql`UPDATE pods SET phase = 'Running', ready = 1, status = ${JSON.stringify({ containers: [{ hostPorts: [{ containerPort: 80, protocol: 'TCP', hostIP: '127.0.0.1', hostPort: 40123 }] }] })} WHERE id = ${pod?.id}`,
    );
    expect(await version()).toBeGreaterThan(before);
    const [eps] = await endpointsOf(t.db, [svc], at, deps.config.nodeGraceMs);
    expect(eps?.ports[0]?.addresses).toMatchObject([{ ip: '127.0.0.1', port: 40123, ready: true, pod: pod?.name }]);
    const [forNode] = await servicesForNode(t.db, pod?.nodeId as string, at, deps.config.nodeGraceMs);
    expect(forNode?.ports[0]?.endpoints).toEqual([{ ip: '127.0.0.1', port: 40123 }]);
    const mid = await version();
    await t.db.run(sql`UPDATE pods SET ready = 0 WHERE id = ${pod?.id}`);
    expect(await version()).toBeGreaterThan(mid);

    // Deletion waits for the pod; then the claim is released to its node and goes on the node's word.
    await requestClaimDeletion(t.db, (await getClaim(t.db, 'claims', 'pv'))!, at, 'test');
    await runTick(d);
    expect((await getClaim(t.db, 'claims', 'pv'))?.phase).toBe('Bound');
    await deleteDeployment(t.db, (await getDeployment(t.db, 'claims', 'stateful'))!, at, 'test');
    await t.db.run(sql`DELETE FROM pods WHERE namespace = 'claims'`); // the agent reported them gone
    expect(await hasWork(t.db, at, deps.config.clockSkewMs, deps.config.nodeGraceMs)).toBe(true);
    await runTick(d);
    expect((await getClaim(t.db, 'claims', 'pv'))?.phase).toBe('Releasing');
    expect(await volumeDeletesOf(t.db, pod?.nodeId as string)).toEqual([claimVolumeName(bound?.id as string)]);
    expect(await volumesRemoved(t.db, pod?.nodeId as string, 'n', [claimVolumeName(bound?.id as string)], at)).toBe(1);
    expect(await getClaim(t.db, 'claims', 'pv')).toBeUndefined();
    await deleteService(t.db, svc, at, 'test');
  });

  it('a change of endpoints tells the nodes that carry them: those running pods of the namespace, every node for a NodePort service', async () => {
    const at = now + 1_000_000;
    const d = { ...deps, clock: () => at };
    await applyWorkload(t.db, parseWorkload(deploymentManifest('web', { namespace: 'edge', replicas: 1 })), 'edge', at, 'test');
    await t.db.run(sql`UPDATE node_leases SET last_seen_at = ${at}, lease_expires_at = ${at + 30_000}`);
    await runTick(d);
    const [pod] = await listPods(t.db, { namespace: 'edge' });
    const home = pod?.nodeId as string;
    expect(home).toBeTruthy();
    const versions = async () => new Map((await t.db.all<{ id: string; v: number }>(sql`SELECT id, desired_version AS v FROM nodes`)).map((r) => [r.id, r.v]));
    const bumped = (before: Map<string, number>, after: Map<string, number>) => [...after].filter(([id, v]) => v !== before.get(id)).map(([id, v]) => [id, v - (before.get(id) ?? 0)]);
    const flipNode = () => t.db.run(sql`UPDATE nodes SET ready = 1 - ready WHERE id = ${home}`);
    const flipPod = () => t.db.run(sql`UPDATE pods SET ready = 1 - ready WHERE id = ${pod?.id}`);
    const service = (name: string, type: 'ClusterIP' | 'NodePort', port: number) =>
      applyService(
        t.db,
        parseManifest({ apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { type, selector: { app: 'web' }, ports: [{ port, targetPort: 80 }] } }) as ServiceManifest,
        'edge',
        at,
        'test',
      );
    expect((await versions()).size).toBeGreaterThan(1); // other nodes, running no pod of the namespace

    // No service in the namespace: nobody carries its endpoints.
    let before = await versions();
    await flipNode();
    await flipPod();
    expect(bumped(before, await versions())).toEqual([]);

    // A ClusterIP service: the node running the namespace's pod, once per change, no other node.
    const { row: cluster } = await service('web', 'ClusterIP', 80);
    before = await versions();
    await flipNode();
    expect(bumped(before, await versions())).toEqual([[home, 1]]);
    before = await versions();
    await flipPod();
    expect(bumped(before, await versions())).toEqual([[home, 1]]);

    // A NodePort service too: every node proxies it, so every node, once per change.
    const { row: nodePort } = await service('web-np', 'NodePort', 81);
    for (const flip of [flipNode, flipPod]) {
      before = await versions();
      await flip();
      const after = await versions();
      expect(bumped(before, after)).toHaveLength(after.size);
      expect(new Set(bumped(before, after).map(([, n]) => n))).toEqual(new Set([1]));
    }
    await deleteService(t.db, nodePort, at, 'test');
    await deleteService(t.db, cluster, at, 'test');
    await deleteDeployment(t.db, (await getDeployment(t.db, 'edge', 'web'))!, at, 'test');
    await t.db.run(sql`DELETE FROM pods WHERE namespace = 'edge'`);
  });
});
