import { describe, expect, it } from 'vitest';
import { computePodStatus, type PlanContext, planSteps, restartBackoffMs } from '../../agent/reconcile.js';
import { actual, desiredPod } from '../lib/fixtures.js';

const ctx = (o: Partial<PlanContext> = {}): PlanContext => ({ now: 1_000_000, images: new Set(['local/busybox:1']), pullRetryAt: new Map(), restarts: new Map(), ...o });

describe('planSteps', () => {
  it('creates the containers of a new pod, owner first', () => {
    const pod = desiredPod('a', {
      containers: [
        { name: 'web', image: 'local/busybox:1' },
        { name: 'side', image: 'local/busybox:1' },
      ] as never,
    });
    expect(planSteps([], [pod], ctx())).toEqual([{ action: 'create', pod, podId: 'a', index: 0, restarts: 0, backoff: 0 }]);
    const withOwner = [actual('c1', 'a')];
    expect(planSteps(withOwner, [pod], ctx())).toEqual([{ action: 'create', pod, podId: 'a', index: 1, restarts: 0, backoff: 0, netnsOwner: 'c1' }]);
  });

  it('does nothing when every container runs (adoption after an agent restart)', () => {
    expect(planSteps([actual('c1', 'a')], [desiredPod('a')], ctx())).toEqual([]);
  });

  it('pulls a missing image before creating, once per image', () => {
    const p1 = desiredPod('a', { containers: [{ name: 'web', image: 'reg/x:1' }] as never });
    const p2 = desiredPod('b', { containers: [{ name: 'web', image: 'reg/x:1' }] as never });
    expect(planSteps([], [p1, p2], ctx())).toEqual([{ action: 'pull', image: 'reg/x:1', podId: 'a' }]);
  });

  it('waits for the retry time of a failed pull', () => {
    const p = desiredPod('a', { containers: [{ name: 'web', image: 'reg/x:1' }] as never });
    expect(planSteps([], [p], ctx({ pullRetryAt: new Map([['reg/x:1', 2_000_000]]) }))).toEqual([]);
  });

  it('stops running containers of pods no longer desired and removes stopped ones', () => {
    const steps = planSteps([actual('c1', 'gone'), actual('c2', 'gone2', { state: 'exited' })], [], ctx());
    expect(steps).toEqual([
      { action: 'stop', containerId: 'c1', podId: 'gone', reason: 'no longer desired' },
      { action: 'remove', containerId: 'c2', podId: 'gone2' },
    ]);
  });

  it("stops with the pod's grace period when it set one (also once the pod is gone from the desired state)", () => {
    const steps = planSteps(
      [actual('c1', 'gone', { graceSec: 45 }), actual('c2', 'a', { digest: 'old', graceSec: 0 }), actual('c3', 'b', { digest: 'old' })],
      [desiredPod('a'), desiredPod('b')],
      ctx(),
    );
    expect(steps).toEqual([
      { action: 'stop', containerId: 'c1', podId: 'gone', reason: 'no longer desired', timeoutSec: 45 },
      { action: 'stop', containerId: 'c2', podId: 'a', reason: 'spec changed', timeoutSec: 0 },
      { action: 'stop', containerId: 'c3', podId: 'b', reason: 'spec changed' },
    ]);
  });

  it('replaces a container whose spec digest differs', () => {
    const steps = planSteps([actual('c1', 'a', { digest: 'old' })], [desiredPod('a')], ctx());
    expect(steps).toEqual([{ action: 'stop', containerId: 'c1', podId: 'a', reason: 'spec changed' }]);
  });

  it('restarts a first failure at once and a quick second one only after its back-off, counting the restarts', () => {
    const exited = actual('c1', 'a', { state: 'exited', finishedAt: 1_000_000 - 5_000, restarts: 0 });
    expect(planSteps([exited], [desiredPod('a')], ctx())).toEqual([
      {
        action: 'remove',
        containerId: 'c1',
        podId: 'a',
        restartOf: { container: 'web', restarts: 1, backoff: 1, last: { exitCode: -1, reason: 'Error', finishedAt: new Date(1_000_000 - 5_000).toISOString() } },
      },
    ]);
    // it failed again right after: 10 s of back-off
    const again = actual('c1', 'a', { state: 'exited', finishedAt: 1_000_000 - 5_000, restarts: 1, backoff: 1, startedAtMs: 1_000_000 - 6_000 });
    expect(planSteps([again], [desiredPod('a')], ctx())).toEqual([]);
    expect(planSteps([again], [desiredPod('a')], ctx({ now: 1_000_000 + 6_000 }))[0]).toMatchObject({ action: 'remove', restartOf: { restarts: 2, backoff: 2 } });
  });

  it('doubles the back-off with quick restarts, and starts over after a long good run', () => {
    const now = 1_000_000_000;
    // third quick crash: back-off 10 s * 2 = 20 s
    const quick = actual('c1', 'a', { state: 'exited', exitCode: 1, restarts: 2, backoff: 2, startedAtMs: now - 20_000, finishedAt: now - 15_000 });
    expect(planSteps([quick], [desiredPod('a')], ctx({ now }))).toEqual([]);
    expect(planSteps([quick], [desiredPod('a')], ctx({ now: now + 11_000 }))[0]).toMatchObject({ action: 'remove', restartOf: { restarts: 3, backoff: 3 } });
    // ran 11 minutes before failing: restarted at once, count still grows
    const long = { ...quick, startedAtMs: now - 11 * 60_000 - 30_000 };
    expect(planSteps([long], [desiredPod('a')], ctx({ now }))[0]).toMatchObject({ action: 'remove', restartOf: { restarts: 3, backoff: 1 } });
  });

  it('honours restartPolicy: Never leaves an exited container, OnFailure restarts only failures', () => {
    const now = 1_000_000_000;
    const ok = actual('c1', 'a', { state: 'exited', exitCode: 0, finishedAt: now - 60_000 });
    const failed = actual('c1', 'a', { state: 'exited', exitCode: 2, finishedAt: now - 60_000 });
    expect(planSteps([failed], [desiredPod('a', { restartPolicy: 'Never' })], ctx({ now }))).toEqual([]);
    expect(planSteps([ok], [desiredPod('a', { restartPolicy: 'OnFailure' })], ctx({ now }))).toEqual([]);
    expect(planSteps([failed], [desiredPod('a', { restartPolicy: 'OnFailure' })], ctx({ now }))[0]).toMatchObject({ action: 'remove' });
    expect(planSteps([ok], [desiredPod('a', { restartPolicy: 'Always' })], ctx({ now }))[0]).toMatchObject({ action: 'remove' });
  });

  it('removes a duplicate container of the same pod', () => {
    const steps = planSteps([actual('c1', 'a'), actual('c2', 'a')], [desiredPod('a')], ctx());
    expect(steps).toEqual([{ action: 'stop', containerId: 'c2', podId: 'a', reason: 'duplicate' }]);
  });

  it('recreates sidecars whose network owner was replaced', () => {
    const pod = desiredPod('a', {
      containers: [
        { name: 'web', image: 'local/busybox:1' },
        { name: 'side', image: 'local/busybox:1' },
      ] as never,
    });
    const steps = planSteps([actual('new-owner', 'a'), actual('s1', 'a', { container: 'side', netnsOwner: 'old-owner' })], [pod], ctx());
    expect(steps).toEqual([{ action: 'stop', containerId: 's1', podId: 'a', reason: 'pod network was recreated' }]);
  });
});

describe('restartBackoffMs', () => {
  it('is immediate the first time, then doubles from 10 s and caps at 5 min', () => {
    expect([1, 2, 3, 6, 20].map((n) => restartBackoffMs(n))).toEqual([0, 10_000, 20_000, 160_000, 300_000]);
  });
});

describe('computePodStatus', () => {
  it('is Running and ready when every container runs, with host ports', () => {
    const hp = [{ containerPort: 80, protocol: 'TCP' as const, hostIP: '127.0.0.1', hostPort: 32000 }];
    const s = computePodStatus(desiredPod('a'), 1, [actual('c1', 'a', { hostPorts: hp })], new Map());
    expect(s.phase).toBe('Running');
    expect(s.ready).toBe(true);
    expect(s.containers[0]?.hostPorts).toEqual(hp);
  });

  it('is Pending with the problem as reason before the container exists', () => {
    const s = computePodStatus(desiredPod('a'), 1, [], new Map(), { reason: 'ErrImagePull', message: 'pull failed' });
    expect(s).toMatchObject({ phase: 'Pending', ready: false, reason: 'ErrImagePull', message: 'pull failed' });
  });

  it('reports a crash loop with the exit code and restart count', () => {
    const s = computePodStatus(desiredPod('a'), 1, [actual('c1', 'a', { state: 'exited', exitCode: 3, restarts: 2 })], new Map());
    expect(s).toMatchObject({ phase: 'Running', ready: false, reason: 'CrashLoopBackOff' });
    expect(s.containers[0]).toMatchObject({ state: 'terminated', exitCode: 3, restartCount: 2 });
  });
});

describe('computePodStatus with probes and restart policies', () => {
  it('is not ready while a readiness probe fails, and not started before its startup probe passes', () => {
    const probes = { ready: (id: string) => id !== 'c1', started: () => true };
    expect(computePodStatus(desiredPod('a'), 1, [actual('c1', 'a')], new Map(), undefined, probes)).toMatchObject({ phase: 'Running', ready: false, reason: 'ContainersNotReady' });
    const notStarted = { ready: () => true, started: () => false };
    const s = computePodStatus(desiredPod('a'), 1, [actual('c1', 'a')], new Map(), undefined, notStarted);
    expect(s.ready).toBe(false);
    expect(s.containers[0]).toMatchObject({ started: false, ready: false });
  });

  it('ends Succeeded or Failed when containers ended for good, and reports the last termination', () => {
    const done = actual('c1', 'a', { state: 'exited', exitCode: 0 });
    expect(computePodStatus(desiredPod('a', { restartPolicy: 'Never' }), 1, [done], new Map()).phase).toBe('Succeeded');
    const failed = actual('c1', 'a', { state: 'exited', exitCode: 1 });
    expect(computePodStatus(desiredPod('a', { restartPolicy: 'Never' }), 1, [failed], new Map()).phase).toBe('Failed');
    expect(computePodStatus(desiredPod('a', { restartPolicy: 'OnFailure' }), 1, [failed], new Map()).phase).toBe('Running');
    const last = new Map([['a/web', { exitCode: 137, reason: 'Error' }]]);
    expect(computePodStatus(desiredPod('a'), 1, [actual('c2', 'a', { restarts: 1 })], new Map(), undefined, undefined, last).containers[0]).toMatchObject({
      restartCount: 1,
      lastState: { exitCode: 137, reason: 'Error' },
    });
  });
});
