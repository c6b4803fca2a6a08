import { describe, expect, it } from 'vitest';
import { planDeployment, planFinalize, planOrphans } from '../../control-plane/core/deployment.js';
import { planPlacement } from '../../control-plane/core/placement.js';
import { nodeView, podView } from '../lib/fixtures.js';

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

describe('planPlacement', () => {
  it('spreads pods of a deployment over ready nodes', () => {
    const plan = planPlacement([podView('a'), podView('b'), podView('c')], [nodeView('n1'), nodeView('n2')], []);
    expect(plan.assign.map((a) => a.nodeId)).toEqual(['n1', 'n2', 'n1']);
  });

  it('honours nodeSelector and skips not-ready and cordoned nodes, explaining why nothing fits', () => {
    const nodes = [nodeView('n1', { ready: false }), nodeView('n2', { cordoned: true }), nodeView('n3', { labels: { site: 'a' } }), nodeView('n4', { labels: { site: 'b' } })];
    const plan = planPlacement([podView('a', { nodeSelector: { site: 'b' } }), podView('b', { nodeSelector: { site: 'c' } })], nodes, []);
    expect(plan.assign).toEqual([{ podId: 'a', nodeId: 'n4' }]);
    expect(plan.unschedulable).toEqual([{ podId: 'b', reason: '0/4 nodes available: 1 not ready, 1 cordoned, 2 node selector mismatch' }]);
  });

  it('prefers the node with fewer pods of the same deployment, then fewer pods overall', () => {
    const placed = [podView('x', { nodeId: 'n1' }), podView('y', { nodeId: 'n2', deploymentId: 'other' }), podView('z', { nodeId: 'n2', deploymentId: 'other' })];
    const plan = planPlacement([podView('a')], [nodeView('n1'), nodeView('n2'), nodeView('n3')], placed);
    expect(plan.assign).toEqual([{ podId: 'a', nodeId: 'n3' }]);
  });
});
