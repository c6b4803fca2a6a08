import type { ContainerSpec, PodSpec } from '../shared/manifest.js';
import type { ContainerStatusReport, DesiredPod, PodStatusReport } from '../shared/protocol.js';
import type { RegistryAuth } from './registryauth.js';
import type { MountPlan } from './volumes.js';

// The agent's pure core. Actual state is rebuilt from container labels on every pass; the planner
// returns only the next layer of steps; the loop executes them, re-reads, and stops when none is left.

/** A container of ours, as read back from the engine. */
export interface ActualContainer {
  id: string;
  podId: string;
  podName: string;
  namespace: string;
  /** The workload the pod belongs to (a stop may wait for its new image to be pulled). */
  workload: string;
  container: string;
  digest: string;
  epoch: number;
  image: string;
  state: 'created' | 'running' | 'exited' | 'other';
  exitCode?: number;
  restarts: number;
  /** Consecutive quick restarts: the exponent of the back-off (reset after a long good run). */
  backoff: number;
  /** Seconds between SIGTERM and SIGKILL when it is stopped (the pod's terminationGracePeriodSeconds), if the pod set it. */
  graceSec?: number;
  /** The container whose network namespace this one joined (for all but the pod's first). */
  netnsOwner?: string;
  startedAt?: string;
  startedAtMs?: number;
  finishedAt?: number;
  oomKilled?: boolean;
  hostPorts: ContainerStatusReport['hostPorts'];
}

/** Steps the executors know; an action without an executor does not compile (see runtime.ts). */
export interface StepArgs {
  pull: { image: string; podId: string; auth?: RegistryAuth };
  /** `env` and `mounts` are filled in by the agent (Secrets, ConfigMaps, volumes) just before it runs. */
  create: { pod: DesiredPod; podId: string; index: number; restarts: number; backoff: number; netnsOwner?: string; env?: string[]; mounts?: MountPlan; network?: string; hostsFile?: string };
  start: { containerId: string; podId: string; container: string };
  /** `timeoutSec` overrides the configured grace (a lapsing lease must end the container in time). */
  stop: { containerId: string; podId: string; reason: string; timeoutSec?: number };
  /** `restartOf` is set when an exited container is removed to be replaced (counts a restart). */
  remove: { containerId: string; podId: string; restartOf?: { container: string; restarts: number; backoff: number; last: LastTermination } };
}
/** One step of the plan. */
export type Step = { [A in keyof StepArgs]: { action: A } & StepArgs[A] }[keyof StepArgs];

/** How a container last ended (Kubernetes' lastState.terminated). */
export interface LastTermination {
  exitCode: number;
  reason: string;
  startedAt?: string;
  finishedAt?: string;
}

/** Why a container ended, as Kubernetes names it. */
export function terminationReason(a: Pick<ActualContainer, 'exitCode' | 'oomKilled'>): string {
  return a.oomKilled ? 'OOMKilled' : a.exitCode === 0 ? 'Completed' : 'Error';
}

/** Whether an exited container is to be restarted under the pod's restartPolicy. */
export function shouldRestart(policy: PodSpec['restartPolicy'] | undefined, a: Pick<ActualContainer, 'state' | 'exitCode'>): boolean {
  if (policy === 'Never') return false;
  if (policy === 'OnFailure') return a.state === 'other' || (a.exitCode ?? 1) !== 0;
  return true;
}

/** A container that ran this long before ending restarts without back-off (Kubernetes: 10 minutes). */
export const BACKOFF_RESET_MS = 10 * 60_000;

/** Inputs the planner needs beyond desired and actual state. */
export interface PlanContext {
  now: number;
  /** Images present in the engine. */
  images: ReadonlySet<string>;
  /** When a failed pull of an image may be tried again. */
  pullRetryAt: ReadonlyMap<string, number>;
  /** Restart count to give the next container created for `podId/container`. */
  restarts: ReadonlyMap<string, number>;
  /** Back-off exponent to give the next container created for `podId/container`. */
  backoffs?: ReadonlyMap<string, number>;
}

/** Restart back-off after the n-th restart: 10 s doubling, capped at 5 min (Kubernetes' curve). */
export function restartBackoffMs(restarts: number, baseMs = 10_000, capMs = 300_000): number {
  // As the kubelet: the first restart after a good run is immediate, then 10 s doubling to 5 min.
  if (restarts <= 1) return 0;
  return Math.min(capMs, baseMs * 2 ** (restarts - 2));
}

function needsPull(c: ContainerSpec, ctx: PlanContext): boolean {
  const policy = c.imagePullPolicy ?? (c.image.endsWith(':latest') || !/:[^/]+$/.test(c.image) ? 'Always' : 'IfNotPresent');
  if (policy === 'Never') return false;
  // 'Always' is honoured by pulling before the first create; an existing image is reused after that.
  return !ctx.images.has(normalizeImage(c.image));
}

/** Docker lists images as name:tag; an untagged reference means :latest. */
export function normalizeImage(image: string): string {
  if (image.includes('@')) return image;
  return /:[^/]+$/.test(image) ? image : `${image}:latest`;
}

/**
 * Plans the next layer of steps to move the engine from `actual` to `runnable`.
 * Pure: `now` and everything else come in as arguments.
 */
export function planSteps(actual: readonly ActualContainer[], runnable: readonly DesiredPod[], ctx: PlanContext, backoffBaseMs = 10_000, backoffResetMs = BACKOFF_RESET_MS): Step[] {
  const steps: Step[] = [];
  const wanted = new Map(runnable.map((p) => [p.id, p]));
  const byPod = new Map<string, ActualContainer[]>();
  const replacing = new Set<string>();
  for (const a of actual) {
    const pod = wanted.get(a.podId);
    if (pod && pod.specDigest !== a.digest) replacing.add(a.podId);
    if (!pod || pod.specDigest !== a.digest) {
      // Not ours to run any more (deleted, moved, lease lapsed, or a different spec): stop, then remove.
      steps.push(a.state === 'running' ? stop(a, pod ? 'spec changed' : 'no longer desired') : { action: 'remove', containerId: a.id, podId: a.podId });
      continue;
    }
    const list = byPod.get(a.podId) ?? [];
    list.push(a);
    byPod.set(a.podId, list);
  }
  const pulls = new Set<string>();
  for (const pod of runnable) {
    const spec: PodSpec = pod.spec;
    const have = byPod.get(pod.id) ?? [];
    const missingImages = [...new Set(spec.containers.filter((c) => needsPull(c, ctx)).map((c) => c.image))];
    for (const image of missingImages) {
      if (pulls.has(image) || (ctx.pullRetryAt.get(image) ?? 0) > ctx.now) continue;
      pulls.add(image);
      steps.push({ action: 'pull', image, podId: pod.id });
    }
    // Wait for images, and for containers of another spec of this pod to be gone (ports, names).
    if (missingImages.length > 0 || replacing.has(pod.id)) continue;
    const owner = spec.containers[0] as ContainerSpec;
    // Duplicates (e.g. two agents raced, or a crash between create and label read): keep the newest.
    for (const dup of dedupe(have)) steps.push(dup.state === 'running' ? stop(dup, 'duplicate') : { action: 'remove', containerId: dup.id, podId: pod.id });
    const current = (name: string) => have.filter((a) => a.container === name).sort((x, y) => y.restarts - x.restarts)[0];
    spec.containers.forEach((c, index) => {
      const a = current(c.name);
      const ownerNow = current(owner.name);
      if (index > 0) {
        if (ownerNow?.state !== 'running') return; // joins the owner's network: wait for it
        if (a && a.netnsOwner !== ownerNow.id) {
          steps.push(a.state === 'running' ? stop(a, 'pod network was recreated') : { action: 'remove', containerId: a.id, podId: pod.id });
          return;
        }
      }
      if (!a) {
        const key = `${pod.id}/${c.name}`;
        steps.push({
          action: 'create',
          pod,
          podId: pod.id,
          index,
          restarts: ctx.restarts.get(key) ?? 0,
          backoff: ctx.backoffs?.get(key) ?? 0,
          ...(index > 0 && ownerNow ? { netnsOwner: ownerNow.id } : {}),
        });
        return;
      }
      if (a.state === 'created') steps.push({ action: 'start', containerId: a.id, podId: pod.id, container: c.name });
      else if (a.state === 'exited' || a.state === 'other') {
        // Restarted under the pod's restartPolicy, as a fresh container from the image (the writable
        // layer does not survive), after a back-off that doubles with each quick restart and starts
        // over after a long good run.
        if (!shouldRestart(spec.restartPolicy, a)) return;
        const ranLong = a.startedAtMs !== undefined && a.finishedAt !== undefined && a.finishedAt - a.startedAtMs >= backoffResetMs;
        const backoff = ranLong ? 1 : a.backoff + 1;
        const due = (a.finishedAt ?? 0) + restartBackoffMs(backoff, backoffBaseMs);
        if (due <= ctx.now) {
          const last: LastTermination = {
            exitCode: a.exitCode ?? -1,
            reason: terminationReason(a),
            ...(a.startedAt ? { startedAt: a.startedAt } : {}),
            ...(a.finishedAt ? { finishedAt: new Date(a.finishedAt).toISOString() } : {}),
          };
          steps.push({ action: 'remove', containerId: a.id, podId: pod.id, restartOf: { container: c.name, restarts: a.restarts + 1, backoff, last } });
        }
      }
    });
  }
  return steps;
}

/** Stops a running container, with its pod's grace period when the pod set one. */
function stop(a: ActualContainer, reason: string): Step {
  return { action: 'stop', containerId: a.id, podId: a.podId, reason, ...(a.graceSec !== undefined ? { timeoutSec: a.graceSec } : {}) };
}

function dedupe(have: readonly ActualContainer[]): ActualContainer[] {
  const seen = new Map<string, ActualContainer>();
  const extra: ActualContainer[] = [];
  for (const a of [...have].sort((x, y) => y.restarts - x.restarts || (x.id < y.id ? -1 : 1))) {
    if (seen.has(a.container)) extra.push(a);
    else seen.set(a.container, a);
  }
  return extra;
}

/** Per-pod problems the loop ran into (pull or create failures), shown as the pod's reason. */
export interface PodProblem {
  reason: string;
  message: string;
}

/** What the status computation needs to know of probes (all true without probes). */
export interface ProbeView {
  ready(containerId: string): boolean;
  started(containerId: string): boolean;
}

const NO_PROBES: ProbeView = { ready: () => true, started: () => true };

/**
 * Computes the status the agent reports for a pod from its containers (Kubernetes semantics:
 * Pending until every container runs; Running with ready=false while one is crash-looping or not
 * ready by its probes; Succeeded or Failed once every container ended for good under the pod's
 * restartPolicy).
 */
export function computePodStatus(
  pod: DesiredPod,
  epoch: number,
  actual: readonly ActualContainer[],
  restartsCarried: ReadonlyMap<string, number>,
  problem?: PodProblem,
  probes: ProbeView = NO_PROBES,
  lastStates: ReadonlyMap<string, LastTermination> = new Map(),
): PodStatusReport {
  const policy = pod.spec.restartPolicy;
  let finished = 0;
  const containers: ContainerStatusReport[] = pod.spec.containers.map((c) => {
    const key = `${pod.id}/${c.name}`;
    const a = actual.filter((x) => x.podId === pod.id && x.container === c.name).sort((x, y) => y.restarts - x.restarts)[0];
    const restartCount = Math.max(a?.restarts ?? 0, restartsCarried.get(key) ?? 0);
    const last = lastStates.get(key);
    const lastState = last ? { lastState: last } : {};
    if (!a) return { name: c.name, image: c.image, state: 'waiting', reason: problem?.reason ?? 'ContainerCreating', restartCount, hostPorts: [], ready: false, ...lastState };
    if (a.state === 'running') {
      const started = probes.started(a.id);
      return {
        name: c.name,
        image: c.image,
        containerId: a.id,
        state: 'running',
        restartCount,
        hostPorts: a.hostPorts,
        ready: started && probes.ready(a.id),
        started,
        ...(a.startedAt ? { startedAt: a.startedAt } : {}),
        ...lastState,
      };
    }
    if (a.state === 'exited') {
      if (!shouldRestart(policy, a)) finished++;
      return {
        name: c.name,
        image: c.image,
        containerId: a.id,
        state: 'terminated',
        reason: terminationReason(a),
        exitCode: a.exitCode ?? -1,
        restartCount,
        hostPorts: [],
        ready: false,
        ...lastState,
      };
    }
    return { name: c.name, image: c.image, containerId: a.id, state: 'waiting', reason: 'ContainerCreating', restartCount, hostPorts: [], ready: false, ...lastState };
  });
  const running = containers.filter((c) => c.state === 'running').length;
  const everStarted = containers.some((c) => c.state !== 'waiting' || c.restartCount > 0);
  const crashing = containers.find((c) => c.state === 'terminated' || (c.state === 'waiting' && c.restartCount > 0));
  if (finished === containers.length) {
    const ok = containers.every((c) => c.exitCode === 0);
    return { podId: pod.id, epoch, phase: ok ? 'Succeeded' : 'Failed', ready: false, reason: ok ? 'Completed' : 'Error', containers };
  }
  const phase = running === containers.length ? 'Running' : everStarted ? 'Running' : 'Pending';
  const ready = running === containers.length && containers.every((c) => c.ready);
  const reason = ready ? undefined : running === containers.length ? 'ContainersNotReady' : crashing ? 'CrashLoopBackOff' : (problem?.reason ?? 'ContainerCreating');
  return {
    podId: pod.id,
    epoch,
    phase,
    ready,
    ...(reason ? { reason } : {}),
    ...(problem && !ready ? { message: problem.message.slice(0, 1024) } : {}),
    containers,
  };
}
