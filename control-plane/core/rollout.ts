import type { RolloutRecord } from '../store/schema.js';
import { isAvailable } from './deployment.js';
import type { PodView } from './types.js';

/** What a workload asks of its rollouts (from its spec and annotations). */
export interface RolloutPolicy {
  progressDeadlineMs: number;
  onFailure: 'rollback' | 'pause';
  /** Canary: pods of the new revision first, then a hold (ms; null: until promoted by an operator). */
  canary?: { count: number; holdMs: number | null };
}

/** The workload as the rollout controller sees it. */
export interface RolloutSubject {
  revision: number;
  /** Pods wanted: a Deployment's replicas, the eligible nodes of a DaemonSet. */
  replicas: number;
  paused: boolean;
  minReadyMs: number;
  stableRevision: number;
  promotedRevision: number;
  record: RolloutRecord | null;
}

/** What the controller should do about a rollout. */
export interface RolloutDecision {
  /** The record to store (the same object as the input's when nothing changed). */
  record: RolloutRecord;
  /** The current revision is fully rolled out: it becomes the stable one. */
  complete: boolean;
  /** The rollout failed: roll back to `rollbackTo`, or (null) pause or just record it. */
  failure?: { reason: string; message: string; rollbackTo: number | null; pause: boolean };
  /** The state moved (an event is due). */
  transition: boolean;
}

/** Restarts of a new pod that count as a crash loop (Kubernetes shows CrashLoopBackOff from the second). */
export const CRASH_LOOP_RESTARTS = 3;

/** Whether a canary of the current revision still holds the rollout back (and how many new pods it allows). */
export function canaryLimit(s: RolloutSubject, policy: RolloutPolicy): number | undefined {
  if (!policy.canary) return undefined;
  const r = s.record?.revision === s.revision ? s.record : null;
  // The first revision of a workload has nothing to be a canary against.
  if (s.stableRevision === 0 || r?.promoted || s.promotedRevision === s.revision) return undefined;
  return policy.canary.count;
}

/**
 * A workload's running pods as its rollout counts them: all, of the current revision, of those the
 * available ones (Ready for minReadySeconds), and the first of the current revision that crash-loops
 * or failed. The controller reads these as one SQL aggregate when it assesses a rollout alone.
 */
export interface RolloutPods {
  live: number;
  updated: number;
  available: number;
  crashing: { phase: string; restarts: number } | null;
}

/** Counts a workload's pods for its rollout (`RolloutPods`). */
export function countRolloutPods(s: Pick<RolloutSubject, 'revision' | 'minReadyMs'>, pods: readonly PodView[], now: number): RolloutPods {
  const live = pods.filter((p) => p.desired === 'run');
  const updated = live.filter((p) => p.revision === s.revision);
  const crashing = updated.find((p) => p.restarts >= CRASH_LOOP_RESTARTS || p.phase === 'Failed');
  return {
    live: live.length,
    updated: updated.length,
    available: updated.filter((p) => isAvailable(p, now, s.minReadyMs)).length,
    crashing: crashing ? { phase: crashing.phase, restarts: crashing.restarts } : null,
  };
}

/**
 * Assesses the rollout of a workload's current revision from its pods, or their counts (pure): progress (more
 * updated or available pods, fewer old ones) resets the progress deadline; a revision whose new pods
 * crash-loop, fail, or make no progress within the deadline has failed, and goes back to the last
 * revision that was fully available (or pauses, when the workload asks for that). Paused and
 * canary-held rollouts do not count against the deadline.
 */
export function assessRollout(s: RolloutSubject, pods: readonly PodView[] | RolloutPods, now: number, policy: RolloutPolicy): RolloutDecision {
  const c = Array.isArray(pods) ? countRolloutPods(s, pods, now) : (pods as RolloutPods);
  const updated = c.updated;
  const outdated = c.live - c.updated;
  const available = c.available;
  const prev = s.record?.revision === s.revision ? s.record : null;
  const rec: RolloutRecord = prev
    ? { ...prev }
    : { revision: s.revision, state: 'Progressing', reason: 'NewRevision', message: `rolling out revision ${s.revision}`, since: now, progressAt: now, updated: 0, available: 0, outdated };
  const set = (state: RolloutRecord['state'], reason: string, message: string) => {
    if (rec.state !== state || rec.reason !== reason) rec.since = now;
    rec.state = state;
    rec.reason = reason;
    rec.message = message;
  };
  const counts = `${updated} of ${s.replicas} updated, ${available} available`;
  const done = (extra: Partial<RolloutDecision> = {}): RolloutDecision => {
    const changed = !prev || JSON.stringify(prev) !== JSON.stringify(rec);
    return { record: changed ? rec : (prev as RolloutRecord), complete: false, transition: !prev || prev.state !== rec.state || prev.reason !== rec.reason, ...extra };
  };

  if (prev?.state === 'Complete') return done();
  // Progress: any increase of updated or available pods, or decrease of old ones.
  if (!prev || updated > rec.updated || available > rec.available || outdated < rec.outdated) rec.progressAt = now;
  rec.updated = updated;
  rec.available = available;
  rec.outdated = outdated;

  if (updated >= s.replicas && available >= s.replicas && outdated === 0) {
    set('Complete', 'NewReplicaSetAvailable', `revision ${s.revision} is available (${s.replicas} pods)`);
    rec.pausedOnFailure = undefined;
    return done({ complete: true });
  }
  // Failed stays failed (no retry of a bad revision) until it is applied again, or resumed after a pause.
  if (prev?.state === 'Failed' && (s.paused || !prev.pausedOnFailure)) return done();
  if (s.paused) {
    set('Paused', 'DeploymentPaused', `paused: ${counts}`);
    return done();
  }
  // Back from a pause, a failure or a canary hold: the deadline counts afresh.
  if (prev?.state === 'Paused' || prev?.state === 'Failed' || prev?.state === 'CanaryHold') rec.progressAt = now;
  rec.pausedOnFailure = undefined;

  const crashing = c.crashing;
  let failure: { reason: string; message: string } | undefined;
  if (crashing) {
    failure =
      crashing.phase === 'Failed'
        ? { reason: 'PodFailed', message: `a pod of revision ${s.revision} failed` }
        : { reason: 'CrashLoopBackOff', message: `a pod of revision ${s.revision} restarted ${crashing.restarts} times` };
  }

  const limit = canaryLimit(s, policy);
  if (!failure && limit !== undefined && available >= limit) {
    // The canary is up: hold (no deadline) until promoted, by time or by an operator.
    rec.canaryAvailableAt ??= now;
    const hold = policy.canary?.holdMs ?? null;
    if (hold !== null && now - rec.canaryAvailableAt >= hold) {
      rec.promoted = true;
      rec.progressAt = now;
      set('Progressing', 'CanaryPromoted', `canary held ${Math.round(hold / 1000)}s healthy: continuing (${counts})`);
      return done();
    }
    set('CanaryHold', 'CanaryHealthy', `canary of ${limit} pod(s) available; ${hold === null ? 'waiting for `flotilla rollout promote`' : `continuing after ${Math.round(hold / 1000)}s`}`);
    return done();
  }
  if (!failure && now - rec.progressAt > policy.progressDeadlineMs) {
    failure = { reason: 'ProgressDeadlineExceeded', message: `revision ${s.revision} made no progress for ${Math.round(policy.progressDeadlineMs / 1000)}s (${counts})` };
  }
  if (failure) {
    const rollbackTo = policy.onFailure === 'rollback' && s.stableRevision > 0 && s.stableRevision !== s.revision ? s.stableRevision : null;
    const pause = rollbackTo === null && policy.onFailure === 'pause';
    set('Failed', failure.reason, failure.message);
    if (pause) rec.pausedOnFailure = true;
    return done({ failure: { ...failure, rollbackTo, pause } });
  }
  if (rec.state !== 'Progressing') set('Progressing', prev?.promoted ? 'CanaryPromoted' : 'ReplicaSetUpdated', counts);
  else rec.message = counts;
  return done();
}
