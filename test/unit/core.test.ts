import { describe, expect, it } from 'vitest';
import { planDaemonSet, planDeployment, planEvictions, planFinalize, planOrphans, planTaintEvictions } from '../../control-plane/core/deployment.js';
import { constraints, nodeView, podView } from '../lib/fixtures.js';

const dep = { id: 'd1', namespace: 'default', name: 'web', replicas: 3, revision: 2 };

describe('planDeployment', () => {
  it('creates the missing replicas of the current revision and replaces outdated pods', () => {
    const plan = planDeployment(dep, [podView('a', { revision: 2 }), podView('b', { revision: 1 })]);
    expect(plan.create).toBe(2);
    expect(plan.stop).toEqual([{ podId: 'b', reason: 'outdated' }]);
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
