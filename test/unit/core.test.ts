import { describe, expect, it } from 'vitest';
import { planDaemonSet, planDeployment, planEvictions, planFinalize, planOrphans, planTaintEvictions } from '../../control-plane/core/deployment.js';
import { constraints, nodeView, podView } from '../lib/fixtures.js';

const dep = { id: 'd1', namespace: 'default', name: 'web', replicas: 3, revision: 2 };

describe('planDeployment', () => {
  it('creates the missing replicas of the current revision within the surge; old pods wait for new ones to be available', () => {
    const plan = planDeployment(dep, [podView('a', { revision: 2 }), podView('b', { revision: 1 })]);
    // 3 replicas: surge 1 (25 % rounded up), unavailable 0: at most 4 pods, at least 3 available
    expect(plan).toEqual({ create: 2, stop: [] });
  });

  it('scales down unscheduled first, then not ready, then newest', () => {
    const pods = [
      podView('ready-old', { revision: 2, nodeId: 'n', ready: true, createdAt: 1 }),
      podView('ready-new', { revision: 2, nodeId: 'n', ready: true, createdAt: 5 }),
      podView('unready', { revision: 2, nodeId: 'n', ready: false, createdAt: 2 }),
      podView('pending', { revision: 2, createdAt: 3 }),
    ];
    const plan = planDeployment({ ...dep, replicas: 1 }, pods);
    expect(plan.create).toBe(0);
    expect(plan.stop.map((s) => s.podId)).toEqual(['pending', 'unready', 'ready-new']);
  });

  it('ignores terminating pods and pods of other deployments', () => {
    const plan = planDeployment(dep, [podView('x', { revision: 2, desired: 'stop' }), podView('y', { revision: 2, deploymentId: 'other' })]);
    expect(plan).toEqual({ create: 3, stop: [] });
  });
});

describe('planOrphans and planFinalize', () => {
  it('stops pods whose deployment is gone', () => {
    expect(planOrphans(new Set(['d1']), [podView('a'), podView('b', { deploymentId: 'gone' })])).toEqual(['b']);
  });

  it('forgets terminating pods never placed or whose lease lapsed past the skew', () => {
    const pods = [
      podView('never', { desired: 'stop' }),
      podView('live', { desired: 'stop', nodeId: 'n', leaseExpiresAt: 10_000 }),
      podView('lapsed', { desired: 'stop', nodeId: 'n', leaseExpiresAt: 1_000 }),
    ];
    expect(planFinalize(pods, 7_000, 5_000)).toEqual(['never', 'lapsed']);
  });
});

describe('drain', () => {
  it('creates replacements first and stops a Ready draining pod only while enough Ready pods remain', () => {
    const d = { ...dep, replicas: 2 };
    const onDrained = [podView('a', { revision: 2, nodeId: 'old', ready: true }), podView('b', { revision: 2, nodeId: 'old', ready: true })];
    const first = planDeployment(d, onDrained, new Set(['old']));
    expect(first).toEqual({ create: 2, stop: [] });
    const replacementsPending = [...onDrained, podView('c', { revision: 2, nodeId: 'new', ready: false }), podView('d', { revision: 2, nodeId: 'new', ready: true })];
    expect(planDeployment(d, replacementsPending, new Set(['old'])).stop).toHaveLength(1);
    const replacementsReady = [...onDrained, podView('c', { revision: 2, nodeId: 'new', ready: true }), podView('d', { revision: 2, nodeId: 'new', ready: true })];
    expect(planDeployment(d, replacementsReady, new Set(['old']))).toEqual({
      create: 0,
      stop: [
        { podId: 'a', reason: 'drained' },
        { podId: 'b', reason: 'drained' },
      ],
    });
  });
});

describe('planDaemonSet', () => {
  const ds = { id: 'ds', namespace: 'default', name: 'agent', replicas: 0, revision: 1 };
  it('wants one pod on every eligible node and stops pods on nodes that lost the label', () => {
    const nodes = [nodeView('a', { labels: { cam: 'yes' } }), nodeView('b', { labels: { cam: 'yes' } }), nodeView('c', { labels: {} })];
    const pods = [podView('p1', { deploymentId: 'ds', pinnedNode: 'a', nodeId: 'a' }), podView('p3', { deploymentId: 'ds', pinnedNode: 'c', nodeId: 'c' })];
    const plan = planDaemonSet(ds, constraints({ nodeSelector: { cam: 'yes' } }), nodes, pods);
    expect(plan).toEqual({ create: ['b'], stop: [{ podId: 'p3', reason: 'not eligible' }], want: 2 });
  });

  it('keeps off nodes with an untolerated NoSchedule taint, and goes there with a toleration', () => {
    const nodes = [nodeView('a', { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] }), nodeView('b')];
    expect(planDaemonSet(ds, constraints(), nodes, []).create).toEqual(['b']);
    expect(planDaemonSet(ds, constraints({ tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }] }), nodes, []).create).toEqual(['a', 'b']);
  });
});

describe('planEvictions', () => {
  it('moves stop-policy pods only after their lease expired plus the skew margin; keep-policy pods stay', () => {
    const pods = [
      podView('lapsed', { nodeId: 'n', leaseExpiresAt: 1_000 }),
      podView('within-skew', { nodeId: 'n', leaseExpiresAt: 5_000 }),
      podView('keep', { nodeId: 'n', leaseExpiresAt: 1_000, policy: 'keep' }),
    ];
    expect(planEvictions(pods, 7_000, 5_000).map((p) => p.id)).toEqual(['lapsed']);
  });
});

describe('planTaintEvictions', () => {
  const taint = { key: 'maintenance', effect: 'NoExecute' as const, timeAdded: 10_000 };
  const taints = new Map([['n', [taint, { key: 'other', effect: 'NoSchedule' as const }]]]);
  it('evicts at once without a toleration, after tolerationSeconds with a timed one, never with an untimed one', () => {
    const pods = [
      { id: 'bare', nodeId: 'n', tolerations: [] },
      { id: 'timed', nodeId: 'n', tolerations: [{ key: 'maintenance', operator: 'Exists' as const, effect: 'NoExecute' as const, tolerationSeconds: 60 }] },
      { id: 'forever', nodeId: 'n', tolerations: [{ operator: 'Exists' as const }] },
      { id: 'elsewhere', nodeId: 'm', tolerations: [] },
    ];
    expect(planTaintEvictions(pods, taints, 20_000).map((e) => e.podId)).toEqual(['bare']);
    expect(planTaintEvictions(pods, taints, 70_000).map((e) => e.podId)).toEqual(['bare', 'timed']);
  });
});

describe('rolling updates', () => {
  const ready = (id: string, revision: number, o = {}) => podView(id, { revision, nodeId: 'n', ready: true, readySince: 0, ...o });
  const d4 = { id: 'd1', namespace: 'default', name: 'web', replicas: 4, revision: 2, strategy: { type: 'RollingUpdate' as const, maxSurge: 1, maxUnavailable: 1 } };

  it('4 replicas, maxSurge 1, maxUnavailable 1: one new pod and one old stopped per step, never over 5 or under 3 available', () => {
    const old = ['o1', 'o2', 'o3', 'o4'].map((id, i) => ready(id, 1, { createdAt: i }));
    const first = planDeployment(d4, old, new Set(), 10_000);
    expect(first.create).toBe(1);
    expect(first.stop).toHaveLength(1);
    // one old stopped, one new pending: 3 old + 1 new (not ready): nothing more may go
    const stopped = first.stop[0]?.podId;
    const step2 = [...old.filter((p) => p.id !== stopped), podView('n1', { revision: 2, nodeId: 'n' })];
    expect(planDeployment(d4, step2, new Set(), 10_000)).toEqual({ create: 1, stop: [] });
    // the new pods become available: two more old can go, and no more than 5 pods in all
    const step3 = [...step2.filter((p) => p.id !== 'n1'), ready('n1', 2), podView('n2', { revision: 2, nodeId: 'n' })];
    const plan3 = planDeployment(d4, step3, new Set(), 10_000);
    expect(plan3.create).toBe(0);
    expect(plan3.stop).toHaveLength(1);
  });

  it('stops unavailable old pods before available ones', () => {
    const pods = [ready('o1', 1), podView('o2', { revision: 1, nodeId: 'n', ready: false }), ready('o3', 1), ready('o4', 1)];
    expect(planDeployment(d4, pods, new Set(), 10_000).stop[0]).toEqual({ podId: 'o2', reason: 'outdated' });
  });

  it('minReadySeconds: a Ready pod is not available until it has been Ready that long', () => {
    const d = { ...d4, minReadyMs: 5_000 };
    const pods = [ready('o1', 1), ready('o2', 1), ready('o3', 1), ready('n1', 2, { readySince: 8_000 }), podView('n2', { revision: 2, nodeId: 'n' })];
    expect(planDeployment(d, pods, new Set(), 10_000).stop).toEqual([]); // n1 Ready for 2 s only
    expect(planDeployment(d, pods, new Set(), 13_000).stop).toHaveLength(1);
  });

  it('Recreate: every old pod stops first; new pods only once none of the old still runs', () => {
    const d = { ...d4, strategy: { type: 'Recreate' as const, maxSurge: 0, maxUnavailable: 0 } };
    const old = ['o1', 'o2'].map((id) => ready(id, 1));
    expect(planDeployment(d, old, new Set(), 0)).toEqual({
      create: 0,
      stop: [
        { podId: 'o1', reason: 'outdated' },
        { podId: 'o2', reason: 'outdated' },
      ],
    });
    const terminating = old.map((p) => ({ ...p, desired: 'stop' as const }));
    expect(planDeployment(d, terminating, new Set(), 0)).toEqual({ create: 0, stop: [] });
    expect(planDeployment(d, [], new Set(), 0)).toEqual({ create: 4, stop: [] });
  });

  it('a paused Deployment does not roll out a new revision, but scales', () => {
    const d = { ...d4, paused: true };
    const old = ['o1', 'o2', 'o3', 'o4'].map((id) => ready(id, 1));
    expect(planDeployment(d, old, new Set(), 0)).toEqual({ create: 0, stop: [] });
    expect(planDeployment({ ...d, replicas: 5 }, old, new Set(), 0)).toEqual({ create: 1, stop: [] });
  });
});
