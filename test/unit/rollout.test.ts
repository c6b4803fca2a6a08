import { describe, expect, it } from 'vitest';
import { planDaemonSet, planDeployment } from '../../control-plane/core/deployment.js';
import { assessRollout, CRASH_LOOP_RESTARTS, canaryLimit, type RolloutPolicy, type RolloutSubject } from '../../control-plane/core/rollout.js';
import type { PodView } from '../../control-plane/core/types.js';
import { rolloutPolicyOf } from '../../shared/manifest.js';
import { constraints, nodeView, podView } from '../lib/fixtures.js';

const ready = (id: string, revision: number, o: Partial<PodView> = {}) => podView(id, { revision, nodeId: 'n', ready: true, readySince: 0, ...o });
const policy: RolloutPolicy = { progressDeadlineMs: 60_000, onFailure: 'rollback' };
const subject = (o: Partial<RolloutSubject> = {}): RolloutSubject => ({ revision: 2, replicas: 2, paused: false, minReadyMs: 0, stableRevision: 1, promotedRevision: 0, record: null, ...o });

/** Runs the assessment the way the controller does: the record it returns is stored and read back next time. */
function run(s: RolloutSubject, steps: { at: number; pods: PodView[] }[], p = policy) {
  let record = s.record;
  const out = [];
  for (const step of steps) {
    const d = assessRollout({ ...s, record }, step.pods, step.at, p);
    record = d.record;
    out.push(d);
  }
  return out;
}

describe('assessRollout', () => {
  it('completes when every pod is updated and available and no old one is left; the revision becomes stable', () => {
    const [a, b] = run(subject(), [
      { at: 0, pods: [ready('o1', 1), ready('o2', 1), podView('n1', { revision: 2, nodeId: 'n' })] },
      { at: 5_000, pods: [ready('n1', 2), ready('n2', 2)] },
    ]);
    expect(a?.record.state).toBe('Progressing');
    expect(a?.complete).toBe(false);
    expect(b?.record).toMatchObject({ state: 'Complete', reason: 'NewReplicaSetAvailable', updated: 2, available: 2, outdated: 0 });
    expect(b?.complete).toBe(true);
    expect(b?.transition).toBe(true);
  });

  it('progress resets the deadline; no progress for the deadline rolls back to the stable revision', () => {
    const stuck = [ready('o1', 1), podView('n1', { revision: 2, nodeId: 'n' })];
    const [, mid, moved, late, failed] = run(subject(), [
      { at: 0, pods: [ready('o1', 1), ready('o2', 1)] },
      { at: 50_000, pods: stuck }, // one new pod created (progress), one old gone (progress)
      { at: 100_000, pods: stuck }, // 50 s without progress
      { at: 110_000, pods: stuck }, // exactly the deadline: not yet
      { at: 110_001, pods: stuck },
    ]);
    expect(mid?.record.progressAt).toBe(50_000);
    expect(moved?.failure).toBeUndefined();
    expect(late?.failure).toBeUndefined();
    expect(failed?.failure).toEqual({ reason: 'ProgressDeadlineExceeded', message: expect.stringContaining('no progress for 60s (1 of 2 updated, 0 available)'), rollbackTo: 1, pause: false });
    expect(failed?.record.state).toBe('Failed');
  });

  it('new pods that crash-loop or fail fail the rollout at once; old pods restarting do not', () => {
    const crash = run(subject(), [{ at: 1, pods: [ready('o1', 1, { restarts: 9 }), podView('n1', { revision: 2, nodeId: 'n', restarts: CRASH_LOOP_RESTARTS })] }]);
    expect(crash[0]?.failure).toMatchObject({ reason: 'CrashLoopBackOff', rollbackTo: 1 });
    const failed = run(subject(), [{ at: 1, pods: [ready('o1', 1), podView('n1', { revision: 2, nodeId: 'n', phase: 'Failed' })] }]);
    expect(failed[0]?.failure?.reason).toBe('PodFailed');
    const fine = run(subject(), [{ at: 1, pods: [ready('o1', 1, { restarts: 9 }), podView('n1', { revision: 2, nodeId: 'n', restarts: CRASH_LOOP_RESTARTS - 1 })] }]);
    expect(fine[0]?.failure).toBeUndefined();
  });

  it('with on-failure pause, or nothing stable to go back to, it does not roll back, and a failed revision stays failed', () => {
    const pods = [podView('n1', { revision: 2, nodeId: 'n', restarts: 5 })];
    expect(run(subject(), [{ at: 1, pods }], { ...policy, onFailure: 'pause' })[0]?.failure).toMatchObject({ rollbackTo: null, pause: true });
    const [first, again] = run(subject({ stableRevision: 0 }), [
      { at: 1, pods },
      { at: 2, pods: [ready('n1', 2), podView('n2', { revision: 2, nodeId: 'n', restarts: 5 })] },
    ]);
    expect(first?.failure).toMatchObject({ rollbackTo: null, pause: false });
    expect(again?.failure).toBeUndefined(); // no second failure, no retry
    expect(again?.record.state).toBe('Failed');
  });

  it('a paused rollout does not count against the deadline; resuming starts it afresh', () => {
    const pods = [ready('o1', 1), podView('n1', { revision: 2, nodeId: 'n' })];
    const start = assessRollout(subject(), pods, 0, policy);
    const paused = assessRollout(subject({ paused: true, record: start.record }), pods, 10_000, policy);
    const resumed = assessRollout(subject({ record: paused.record }), pods, 500_000, policy);
    const later = assessRollout(subject({ record: resumed.record }), pods, 550_000, policy);
    expect(paused.record.state).toBe('Paused');
    expect(resumed.record).toMatchObject({ state: 'Progressing', progressAt: 500_000 });
    expect(later.failure).toBeUndefined();
    expect(assessRollout(subject({ record: later.record }), pods, 560_001, policy).failure?.reason).toBe('ProgressDeadlineExceeded');
  });

  it('a canary holds once its pods are available, then continues after the hold or when promoted', () => {
    const p: RolloutPolicy = { ...policy, canary: { count: 1, holdMs: 30_000 } };
    const s = subject({ replicas: 4 });
    expect(canaryLimit(s, p)).toBe(1);
    const pods = [ready('o1', 1), ready('o2', 1), ready('o3', 1), ready('c1', 2)];
    const [held, still, promoted] = run(
      s,
      [
        { at: 1_000, pods },
        { at: 30_999, pods },
        { at: 31_000, pods },
      ],
      p,
    );
    expect(held?.record).toMatchObject({ state: 'CanaryHold', canaryAvailableAt: 1_000 });
    expect(still?.record.state).toBe('CanaryHold');
    expect(promoted?.record).toMatchObject({ state: 'Progressing', reason: 'CanaryPromoted', promoted: true, progressAt: 31_000 });
    expect(canaryLimit({ ...s, record: promoted?.record ?? null }, p)).toBeUndefined();
    // manual: held far past the progress deadline (a hold is not a stall) until an operator promotes
    const manual: RolloutPolicy = { ...policy, canary: { count: 1, holdMs: null } };
    const [m1, m2] = run(
      s,
      [
        { at: 1_000, pods },
        { at: 10_000_000, pods },
      ],
      manual,
    );
    expect(m1?.record.state).toBe('CanaryHold');
    expect(m2?.record.state).toBe('CanaryHold');
    expect(m2?.failure).toBeUndefined();
    expect(canaryLimit({ ...s, promotedRevision: 2 }, manual)).toBeUndefined();
    // a canary pod that crash-loops fails the rollout even while held
    expect(assessRollout({ ...s, record: m1?.record ?? null }, [...pods.slice(0, 3), ready('c1', 2, { restarts: 3 })], 20_000, manual).failure?.reason).toBe('CrashLoopBackOff');
    // the first revision of a workload has no canary
    expect(canaryLimit({ ...s, revision: 1, stableRevision: 0 }, manual)).toBeUndefined();
  });
});

describe('canary planning', () => {
  const d4 = { id: 'd1', namespace: 'default', name: 'web', replicas: 4, revision: 2, strategy: { type: 'RollingUpdate' as const, maxSurge: 1, maxUnavailable: 1 }, canaryLimit: 1 };
  it('creates at most the canary pods, and keeps the old ones making up the rest', () => {
    const old = ['o1', 'o2', 'o3', 'o4'].map((id, i) => ready(id, 1, { createdAt: i }));
    const first = planDeployment(d4, old, new Set(), 10_000);
    expect(first.create).toBe(1);
    expect(first.stop).toHaveLength(1);
    const held = [...old.slice(1), ready('c1', 2)];
    expect(planDeployment(d4, held, new Set(), 10_000)).toEqual({ create: 0, stop: [] });
    // promoted: the limit is gone and the rollout goes on
    expect(planDeployment({ ...d4, canaryLimit: undefined }, held, new Set(), 10_000).create).toBe(1);
  });

  it('reads the canary from annotations: a count or a percentage of replicas (rounded up), with an optional hold', () => {
    expect(rolloutPolicyOf('Deployment', { 'flotilla.dev/canary': '10%' }, 20).canary).toEqual({ count: 2, holdMs: null });
    expect(rolloutPolicyOf('Deployment', { 'flotilla.dev/canary': '1', 'flotilla.dev/canary-hold': '2m' }, 4).canary).toEqual({ count: 1, holdMs: 120_000 });
    expect(rolloutPolicyOf('Deployment', { 'flotilla.dev/canary': '4' }, 4).canary).toBeUndefined(); // all of them: no canary
    expect(rolloutPolicyOf('Deployment', { 'flotilla.dev/on-failure': 'pause' }, 4).onFailure).toBe('pause');
  });
});

describe('DaemonSet waves', () => {
  const ds = { id: 'ds', namespace: 'default', name: 'agent', replicas: 0, revision: 2, maxUnavailable: 1 };
  const nodes = ['a', 'b', 'c'].map((n) => nodeView(n));
  const on = (id: string, node: string, revision: number, o: Partial<PodView> = {}) => podView(id, { deploymentId: 'ds', pinnedNode: node, nodeId: node, revision, ready: true, readySince: 0, ...o });

  it('maxUnavailable 1: one node at a time, the next only once the new pod is available', () => {
    const old = [on('a1', 'a', 1), on('b1', 'b', 1), on('c1', 'c', 1)];
    const first = planDaemonSet(ds, constraints(), nodes, old, 1_000);
    expect(first).toEqual({ create: [], stop: [{ podId: 'a1', reason: 'outdated' }], want: 3 });
    // a's old pod is terminating: a gets its new pod once the old one is gone
    const terminating = [{ ...(old[0] as PodView), desired: 'stop' as const }, ...old.slice(1)];
    expect(planDaemonSet(ds, constraints(), nodes, terminating, 1_000)).toEqual({ create: [], stop: [], want: 3 });
    expect(planDaemonSet(ds, constraints(), nodes, old.slice(1), 1_000)).toEqual({ create: ['a'], stop: [], want: 3 });
    // a's new pod not yet available: b waits
    expect(planDaemonSet(ds, constraints(), nodes, [on('a2', 'a', 2, { ready: false, readySince: null }), ...old.slice(1)], 1_000).stop).toEqual([]);
    // available: b goes
    expect(planDaemonSet(ds, constraints(), nodes, [on('a2', 'a', 2), ...old.slice(1)], 1_000).stop).toEqual([{ podId: 'b1', reason: 'outdated' }]);
  });

  it('replaces unavailable old pods and pods on NotReady nodes at once; OnDelete (0) replaces none', () => {
    const down = nodes.map((n) => (n.id === 'c' ? { ...n, ready: false } : n));
    const pods = [on('a1', 'a', 1), on('b1', 'b', 1, { ready: false, readySince: null }), on('c1', 'c', 1, { ready: false, readySince: null })];
    const plan = planDaemonSet(ds, constraints(), down, pods, 1_000);
    expect(plan.stop.map((s) => s.podId).sort()).toEqual(['b1', 'c1']);
    expect(planDaemonSet({ ...ds, maxUnavailable: 0 }, constraints(), nodes, pods, 1_000).stop).toEqual([]);
  });
});
