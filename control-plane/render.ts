import { rolloutBounds } from '../shared/manifest.js';
import { formatCpu, formatMemory } from '../shared/quantity.js';
import type { Config } from './config.js';
import { allocatableOf } from './core/scheduler.js';
import type { NodeRow } from './store/nodes.js';
import type { PodRow, WorkloadPod } from './store/pods.js';
import type { events } from './store/schema.js';
import type { DeploymentRow, DeploymentSpec } from './store/workloads.js';

// Objects go out in the Kubernetes shape: apiVersion, kind, metadata, spec, status.

type EventRow = typeof events.$inferSelect;

const iso = (ms: number) => new Date(ms).toISOString();

/** A Node object; Ready while its renewals are recent. */
export function renderNode(n: NodeRow, now: number, cfg: Config, podCount?: number) {
  const ready = n.revokedAt === null && now - n.lastSeenAt <= cfg.nodeGraceMs;
  const facts = n.facts as Record<string, unknown>;
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, uid: n.id, labels: n.labels, creationTimestamp: iso(n.enrolledAt) },
    spec: {
      unschedulable: n.cordoned,
      taints: n.taints.map((t) => ({ key: t.key, ...(t.value ? { value: t.value } : {}), effect: t.effect, ...(t.timeAdded ? { timeAdded: iso(t.timeAdded) } : {}) })),
    },
    status: {
      conditions: [
        {
          type: 'Ready',
          status: ready ? 'True' : n.revokedAt !== null ? 'False' : 'Unknown',
          reason: n.revokedAt !== null ? 'NodeRevoked' : ready ? 'AgentReady' : 'NodeStatusUnknown',
          lastHeartbeatTime: iso(n.lastSeenAt),
        },
      ],
      capacity: { cpu: String(facts.cpus ?? 0), memory: String(facts.memoryBytes ?? 0) },
      allocatable: (() => {
        const a = allocatableOf({ cpus: Number(facts.cpus ?? 0), memoryBytes: Number(facts.memoryBytes ?? 0), allocatable: n.allocatable }, { cpu: cfg.reservedCpu, memory: cfg.reservedMemory });
        return { cpu: formatCpu(a.cpu), memory: formatMemory(a.memory) };
      })(),
      ...(n.draining ? { draining: true } : {}),
      nodeInfo: {
        hostname: facts.hostname,
        operatingSystem: facts.os,
        architecture: facts.arch,
        containerRuntimeVersion: `docker://${String(facts.dockerVersion ?? '')}`,
        agentVersion: facts.agentVersion,
      },
      addresses: facts.advertiseAddress ? [{ type: 'InternalIP', address: facts.advertiseAddress }] : [],
      ...(podCount !== undefined ? { pods: podCount } : {}),
    },
  };
}

/** A Pod object; host ports the agent reported are in status.hostPorts. */
export function renderPod(p: PodRow, node: { name: string; leaseExpiresAt: number } | undefined) {
  const status = (p.status ?? {}) as { containers?: Array<Record<string, unknown>>; message?: string };
  const containers = status.containers ?? [];
  const hostPorts = containers.flatMap((c) => ((c.hostPorts as Array<Record<string, unknown>>) ?? []).map((h) => ({ container: c.name, ...h })));
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      namespace: p.namespace,
      uid: p.id,
      labels: p.labels,
      creationTimestamp: iso(p.createdAt),
      ...(p.deletionRequestedAt ? { deletionTimestamp: iso(p.deletionRequestedAt) } : {}),
      ownerReferences: [{ apiVersion: 'apps/v1', kind: p.pinnedNode ? 'DaemonSet' : 'Deployment', name: p.workload, uid: p.deploymentId }],
      annotations: { 'flotilla.dev/revision': String(p.revision), 'flotilla.dev/epoch': String(p.epoch) },
    },
    spec: { ...(p.spec as object), nodeName: node?.name ?? null },
    status: {
      phase: p.desired === 'stop' ? 'Terminating' : p.phase,
      conditions: [
        { type: 'Ready', status: p.ready ? 'True' : 'False' },
        { type: 'PodScheduled', status: p.nodeId ? 'True' : 'False', ...(p.nodeId ? {} : { reason: 'Unschedulable', message: p.reason ?? undefined }) },
      ],
      ...(p.reason ? { reason: p.reason } : {}),
      ...(p.message ? { message: p.message } : {}),
      containerStatuses: containers.map((c) => ({
        name: c.name,
        image: c.image,
        containerID: c.containerId ? `docker://${c.containerId}` : undefined,
        ready: p.ready && c.state === 'running',
        restartCount: c.restartCount ?? 0,
        ...(c.started !== undefined ? { started: c.started } : {}),
        state: { [String(c.state)]: { ...(c.reason ? { reason: c.reason } : {}), ...(c.exitCode !== undefined ? { exitCode: c.exitCode } : {}), ...(c.startedAt ? { startedAt: c.startedAt } : {}) } },
        ...(c.lastState ? { lastState: { terminated: c.lastState } } : {}),
      })),
      hostPorts,
      ...(node ? { leaseExpiresAt: iso(node.leaseExpiresAt) } : {}),
    },
  };
}

/** A workload object (Deployment or DaemonSet) with status computed from its pods. */
export function renderWorkload(d: DeploymentRow, pods: readonly WorkloadPod[], now = Date.now()) {
  return d.kind === 'DaemonSet' ? renderDaemonSet(d, pods, now) : renderDeployment(d, pods, now);
}

/** A DaemonSet object with Kubernetes' status counts, and the rollout. */
export function renderDaemonSet(d: DeploymentRow, pods: readonly WorkloadPod[], now = Date.now()) {
  const mine = pods.filter((p) => p.deploymentId === d.id && p.desired === 'run');
  const scheduled = mine.filter((p) => p.nodeId !== null);
  const ready = mine.filter((p) => p.ready);
  const minReadyMs = ((d.spec as { minReadySeconds?: number }).minReadySeconds ?? 0) * 1000;
  const available = ready.filter((p) => p.readySince !== null && now - p.readySince >= minReadyMs);
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: {
      name: d.name,
      namespace: d.namespace,
      uid: d.id,
      labels: d.labels,
      annotations: { ...d.annotations, 'deprecated.daemonset.template.generation': String(d.revision) },
      generation: d.generation,
      creationTimestamp: iso(d.createdAt),
    },
    spec: d.spec,
    status: {
      observedGeneration: d.generation,
      desiredNumberScheduled: d.want,
      currentNumberScheduled: scheduled.length,
      updatedNumberScheduled: scheduled.filter((p) => p.revision === d.revision).length,
      numberReady: ready.length,
      numberAvailable: available.length,
      numberUnavailable: Math.max(0, d.want - available.length),
      rollout: rolloutStatus(d),
    },
  };
}

/** The rollout controller's view of the current revision (a Flotilla extension of the status). */
function rolloutStatus(d: DeploymentRow) {
  const r = d.rollout?.revision === d.revision ? d.rollout : null;
  return {
    revision: d.revision,
    stableRevision: d.stableRevision || null,
    state: r?.state ?? 'Progressing',
    reason: r?.reason ?? 'NewRevision',
    message: r?.message ?? `rolling out revision ${d.revision}`,
    since: r ? iso(r.since) : null,
    ...(r?.rolledBack ? { rolledBack: { from: r.rolledBack.from, to: r.rolledBack.to, reason: r.rolledBack.reason, message: r.rolledBack.message, at: iso(r.rolledBack.at) } } : {}),
    ...(r?.canaryAvailableAt !== undefined ? { canary: { availableSince: iso(r.canaryAvailableAt), promoted: Boolean(r.promoted) || d.promotedRevision === d.revision } } : {}),
  };
}

/**
 * A Deployment object with Kubernetes' status: replica counts (available = Ready for
 * minReadySeconds) and the Available and Progressing conditions.
 */
export function renderDeployment(d: DeploymentRow, pods: readonly WorkloadPod[], now = Date.now()) {
  const spec = d.spec as DeploymentSpec;
  const mine = pods.filter((p) => p.deploymentId === d.id && p.desired === 'run');
  const updated = mine.filter((p) => p.revision === d.revision);
  const ready = mine.filter((p) => p.ready);
  const minReadyMs = (spec.minReadySeconds ?? 0) * 1000;
  const available = ready.filter((p) => p.readySince !== null && now - p.readySince >= minReadyMs);
  const strategy = spec.strategy ?? { type: 'RollingUpdate' as const };
  const { maxUnavailable } = strategy.type === 'RollingUpdate' ? rolloutBounds({ ...spec, strategy }) : { maxUnavailable: spec.replicas };
  const complete = updated.length === spec.replicas && mine.length === spec.replicas && available.length === spec.replicas;
  const minimumAvailable = available.length >= spec.replicas - maxUnavailable;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: d.name,
      namespace: d.namespace,
      uid: d.id,
      labels: d.labels,
      annotations: { ...d.annotations, 'deployment.kubernetes.io/revision': String(d.revision) },
      generation: d.generation,
      creationTimestamp: iso(d.createdAt),
    },
    spec,
    status: {
      observedGeneration: d.generation,
      replicas: mine.length,
      updatedReplicas: updated.length,
      readyReplicas: ready.length,
      availableReplicas: available.length,
      unavailableReplicas: Math.max(0, spec.replicas - available.length),
      conditions: [
        { type: 'Available', status: minimumAvailable ? 'True' : 'False', reason: minimumAvailable ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable' },
        progressing(d, spec, complete, `${updated.length} of ${spec.replicas} updated, ${available.length} available`),
      ],
      rollout: rolloutStatus(d),
    },
  };
}

/** Kubernetes' Progressing condition, from the rollout controller's record when it has one. */
function progressing(d: DeploymentRow, spec: DeploymentSpec, complete: boolean, counts: string) {
  const r = d.rollout?.revision === d.revision ? d.rollout : null;
  if (r?.state === 'Failed') return { type: 'Progressing', status: 'False', reason: r.reason, message: r.message };
  if (spec.paused || r?.state === 'Paused') return { type: 'Progressing', status: 'Unknown', reason: 'DeploymentPaused', message: `paused: ${counts}` };
  if (r?.state === 'Complete' || (!r && complete)) return { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `revision ${d.revision} is available` };
  if (r?.state === 'CanaryHold') return { type: 'Progressing', status: 'True', reason: 'CanaryHold', message: r.message };
  return { type: 'Progressing', status: 'True', reason: r?.reason === 'RolledBack' ? 'RolledBack' : 'ReplicaSetUpdated', message: r?.reason === 'RolledBack' ? `${r.message} (${counts})` : counts };
}

/** An Event object (the namespaced events list and event watches). */
export function renderEvent(e: EventRow) {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: String(e.id), namespace: e.namespace },
    involvedObject: { kind: e.kind, name: e.name, namespace: e.namespace },
    type: e.type,
    reason: e.reason,
    message: e.message,
    source: { component: e.source },
    lastTimestamp: iso(e.at),
  };
}
