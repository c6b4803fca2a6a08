import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeContainers, requireDocker } from '../lib/docker.js';
import { type Proc, runCli, startCli } from '../lib/proc.js';
import { Relay } from '../lib/relay.js';
import { waitFor } from '../lib/wait.js';
import { type Cluster, type NodeControlPlane, startNodeControlPlane } from './cluster.js';

// Scheduling, DaemonSets, probes, restarts and node loss, end to end: a Node control plane and CLI
// agents on the real Docker engine (FAST_ENV: lease TTL 10 s, clock skew 1 s).
const TTL_MS = 10_000;
const SKEW_MS = 1_000;

let docker: Docker;
let cp: NodeControlPlane;
let server: Proc;
let cluster: Cluster;
let serverPort: number;
let enroll: string;

beforeAll(async () => {
  docker = await requireDocker();
  cp = await startNodeControlPlane(docker, 'flotilla-sched-');
  ({ server, cluster } = cp);
  serverPort = Number(new URL(cluster.url).port);
  enroll = cluster.cli('token', 'create', '--uses', '10', '--ttl', '30m').trim();
}, 60_000);

afterAll(async () => {
  await cp?.close();
});

/** Start and die events of a pod's containers, from the engine, oldest first. */
async function containerEvents(podId: string, sinceMs: number): Promise<Array<{ action: string; node: string; at: number }>> {
  const stream = (await docker.getEvents({
    since: Math.floor(sinceMs / 1000),
    until: Math.ceil(Date.now() / 1000),
    filters: { type: ['container'], event: ['start', 'die'], label: [`dev.flotilla.pod=${podId}`] },
  })) as unknown as NodeJS.ReadableStream;
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { Action: string; timeNano: number; Actor: { Attributes: Record<string, string> } })
    .map((e) => ({ action: e.Action, node: e.Actor.Attributes['dev.flotilla.node'] as string, at: e.timeNano / 1e6 }))
    .sort((a, b) => a.at - b.at);
}

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(new URL(path, cluster.url), {
    method,
    headers: { authorization: `Bearer ${cluster.token}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const podsOf = (app: string) => cluster.pods().filter((p) => p.metadata.labels.app === app && p.status.phase !== 'Terminating');
const runningOf = (app: string) => podsOf(app).filter((p) => p.status.phase === 'Running' && p.status.containerStatuses.every((c: any) => c.state.running));
/** Exactly `n` running pods of an app, from one snapshot (two reads could disagree). */
const runningN = (app: string, n: number) => {
  const r = runningOf(app);
  return r.length === n && r;
};
const isReady = (p: any) => p.status.conditions.find((c: any) => c.type === 'Ready')?.status === 'True';
const eventsOf = (name: string) => (JSON.parse(cluster.cli('get', 'events', '-o', 'json')).items as any[]).filter((e) => e.involvedObject.name === name);

describe('scheduling by capacity', () => {
  it('places pods by CPU requests and packs them; a pod too big for every node stays Pending with a counted reason until a node with room joins', async () => {
    await Promise.all([cluster.startAgent('edge-a', enroll, { args: ['--label', 'site=a'] }), cluster.startAgent('edge-b', enroll, { args: ['--label', 'site=b'] })]);
    expect((await api('PATCH', '/v1/nodes/edge-a', { allocatable: { cpu: '1', memory: '1Gi' } })).status).toBe(200);
    const b = await api('PATCH', '/v1/nodes/edge-b', { allocatable: { cpu: '2', memory: '2Gi' } });
    expect(b.body.status.allocatable).toEqual({ cpu: '2', memory: '2Gi' });

    const packed = cluster.manifest('packed', 3, { container: { resources: { requests: { cpu: '600m', memory: '64Mi' }, limits: { cpu: '1', memory: '128Mi' } } } });
    cluster.cli('apply', '-f', packed);
    const pods = await waitFor('3 packed pods running', () => runningN('packed', 3), 60_000, 300);
    const perNode: Record<string, number> = {};
    for (const p of pods) perNode[p.spec.nodeName] = (perNode[p.spec.nodeName] ?? 0) + 1;
    // 600m each: edge-a (1 CPU) holds one, edge-b (2 CPUs) two; bin packing fills edge-a first.
    expect(perNode).toEqual({ 'edge-a': 1, 'edge-b': 2 });
    // The limits reached the engine.
    const c = (await nodeContainers(docker, cluster.nodeIdOf.get('edge-a') as string, false))[0];
    const info = await docker.getContainer(c?.Id as string).inspect();
    expect([info.HostConfig.NanoCpus, info.HostConfig.Memory]).toEqual([1e9, 128 * 1024 ** 2]);

    cluster.cli('apply', '-f', cluster.manifest('big', 1, { container: { resources: { requests: { cpu: '1500m' } } } }));
    const pending = await waitFor('big pod unschedulable', () => podsOf('big').find((p) => p.status.reason?.startsWith('0/')), 10_000, 200);
    expect(pending.status.reason).toBe('0/2 nodes available: 2 insufficient cpu');
    expect(cluster.cli('get', 'pods')).toMatch(/big-\S+\s+0\/1\s+Unschedulable/);
    expect(cluster.cli('get', 'pods', '-o', 'wide')).toContain('0/2 nodes available: 2 insufficient cpu');
    expect(eventsOf(pending.metadata.name).some((e) => e.reason === 'FailedScheduling' && e.message === '0/2 nodes available: 2 insufficient cpu')).toBe(true);

    await cluster.startAgent('edge-c', enroll, { args: ['--label', 'site=c'] });
    const placed = await waitFor('big pod running on the new node', () => runningOf('big')[0], 60_000, 300);
    expect(placed.spec.nodeName).toBe('edge-c');
  });

  it('refuses at apply a request larger than any node, with the field path, and changes nothing', () => {
    const r = runCli(['apply', '-f', cluster.manifest('huge', 1, { container: { resources: { requests: { memory: '1Ti' } } } })], cluster.env());
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('spec.template.spec.containers[0].resources.requests.memory');
    expect(runCli(['get', 'deployments', 'huge'], cluster.env()).code).not.toBe(0);
    cluster.cli('delete', 'deployment', 'packed');
    cluster.cli('delete', 'deployment', 'big');
  });
});

describe('DaemonSets', () => {
  it('runs one pod on every node with the label; a node that gains it gets one, a node that loses it loses it', async () => {
    cluster.cli('label', 'node', 'edge-a', 'role=camera');
    cluster.cli('label', 'node', 'edge-b', 'role=camera');
    const ds = cluster.manifest('cam', 0, { kind: 'DaemonSet', pod: { nodeSelector: { role: 'camera' } } });
    expect(cluster.cli('apply', '-f', ds).trim()).toBe('daemonset.apps/cam created');
    const two = await waitFor('2 daemon pods', () => runningN('cam', 2), 60_000, 300);
    expect(two.map((p: any) => p.spec.nodeName).sort()).toEqual(['edge-a', 'edge-b']);
    cluster.cli('label', 'node', 'edge-c', 'role=camera');
    const three = await waitFor('3 daemon pods', () => runningN('cam', 3), 60_000, 300);
    expect(three.map((p: any) => p.spec.nodeName).sort()).toEqual(['edge-a', 'edge-b', 'edge-c']);
    expect(cluster.cli('get', 'ds')).toMatch(/cam\s+3\s+3\s+3\s+3\s+3\s+role=camera/);
    cluster.cli('label', 'node', 'edge-a', 'role-');
    await waitFor('the daemon pod leaves edge-a', async () => (await nodeContainers(docker, cluster.nodeIdOf.get('edge-a') as string)).length === 0, 30_000, 300);
    expect(
      runningOf('cam')
        .map((p: any) => p.spec.nodeName)
        .sort(),
    ).toEqual(['edge-b', 'edge-c']);
  });
});

describe('self-healing on one node', () => {
  const pin = { nodeSelector: { 'kubernetes.io/hostname': 'edge-a' } };

  it('restarts a killed container with back-off; the restart count goes up', async () => {
    cluster.cli('apply', '-f', cluster.manifest('crashy', 1, pin));
    const [pod] = await waitFor('crashy running', () => runningN('crashy', 1), 60_000, 300);
    await docker.getContainer(pod.status.containerStatuses[0].containerID.replace('docker://', '')).kill();
    const again = await waitFor('crashy restarted', () => runningOf('crashy').find((p) => p.status.containerStatuses[0].restartCount >= 1), 30_000, 300);
    expect(again.status.containerStatuses[0].lastState.terminated).toMatchObject({ reason: 'Error', exitCode: 137 });
    expect(eventsOf(pod.metadata.name).some((e) => e.reason === 'BackOff')).toBe(true);
    cluster.cli('delete', 'deployment', 'crashy');
  });

  it('kills and restarts a container whose liveness page disappears, from a fresh copy of the image', async () => {
    const probe = { httpGet: { path: '/healthz', port: 80 }, periodSeconds: 1, failureThreshold: 2 };
    cluster.cli('apply', '-f', cluster.manifest('live', 1, { ...pin, container: { livenessProbe: probe } }));
    const [pod] = await waitFor('live running', () => runningN('live', 1), 60_000, 300);
    const id = pod.status.containerStatuses[0].containerID.replace('docker://', '');
    const exec = await docker.getContainer(id).exec({ Cmd: ['busybox', 'rm', '/www/healthz'] });
    await exec.start({ hijack: true, stdin: false }).then((s) => new Promise((r) => s.on('end', r)));
    const restarted = await waitFor('live restarted', () => runningOf('live').find((p) => p.status.containerStatuses[0].restartCount === 1 && isReady(p)), 30_000, 300);
    expect(restarted.status.containerStatuses[0].containerID).not.toContain(id);
    const reasons = eventsOf(pod.metadata.name).map((e) => e.reason);
    expect(reasons).toContain('Unhealthy');
    expect(reasons).toContain('Killing');
    // the new container is fresh from the image: its liveness page is back
    const hp = restarted.status.hostPorts[0];
    expect((await fetch(`http://127.0.0.1:${hp.hostPort}/healthz`)).status).toBe(200);
    cluster.cli('delete', 'deployment', 'live');
  });

  it('keeps a pod whose readiness probe fails out of Ready, and makes it Ready when the probe passes', async () => {
    const probe = { httpGet: { path: '/ready', port: 80 }, periodSeconds: 1, failureThreshold: 1 };
    cluster.cli('apply', '-f', cluster.manifest('gated', 1, { ...pin, container: { readinessProbe: probe } }));
    const [pod] = await waitFor('gated running', () => runningN('gated', 1), 60_000, 300);
    await new Promise((r) => setTimeout(r, 2500));
    const notReady = podsOf('gated')[0];
    expect(notReady.status.conditions.find((c: any) => c.type === 'Ready').status).toBe('False');
    expect(cluster.cli('get', 'pods')).toMatch(/gated-\S+\s+0\/1\s+ContainersNotReady/);
    const id = pod.status.containerStatuses[0].containerID.replace('docker://', '');
    const exec = await docker.getContainer(id).exec({ Cmd: ['busybox', 'touch', '/www/ready'] });
    await exec.start({ hijack: true, stdin: false }).then((s) => new Promise((r) => s.on('end', r)));
    await waitFor('gated ready', () => podsOf('gated')[0]?.status.conditions.find((c: any) => c.type === 'Ready').status === 'True', 15_000, 300);
    expect(cluster.cli('get', 'pods')).toMatch(/gated-\S+\s+1\/1\s+Running/);
    cluster.cli('delete', 'deployment', 'gated');
  });
});

describe('drain', () => {
  it('moves Deployment pods off a node without ever dropping below the ready replicas, and leaves DaemonSet pods', async () => {
    // Start both replicas on edge-b (edge-c cordoned), allowed on sites b and c.
    cluster.cli('cordon', 'edge-c');
    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'site', operator: 'In', values: ['b', 'c'] }] }] } } };
    cluster.cli('apply', '-f', cluster.manifest('mover', 2, { pod: { affinity } }));
    const before = await waitFor('mover ready on edge-b', () => runningOf('mover').filter(isReady).length === 2 && runningOf('mover'), 60_000, 300);
    expect(before.map((p: any) => p.spec.nodeName)).toEqual(['edge-b', 'edge-b']);
    cluster.cli('uncordon', 'edge-c');
    let minReady = Infinity;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        minReady = Math.min(minReady, podsOf('mover').filter(isReady).length);
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    const out = runCli(['drain', 'edge-b', '--timeout', '90s'], cluster.env());
    sampling = false;
    await sampler;
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain('node/edge-b drained');
    expect(runningOf('mover').map((p: any) => p.spec.nodeName)).toEqual(['edge-c', 'edge-c']);
    expect(minReady).toBeGreaterThanOrEqual(2);
    // the DaemonSet pod stays on the drained node
    expect(runningOf('cam').map((p: any) => p.spec.nodeName)).toContain('edge-b');
    expect(cluster.cli('get', 'nodes')).toMatch(/edge-b\s+Ready,SchedulingDisabled,Draining/);
    cluster.cli('uncordon', 'edge-b');
    cluster.cli('delete', 'deployment', 'mover');
  }, 120_000);
});

describe('node loss', () => {
  it('kill -9 an agent and remove its containers: its pods run on another node within lease TTL + margin + start', async () => {
    cluster.cli('label', 'node', 'edge-a', 'pool=move');
    cluster.cli('label', 'node', 'edge-b', 'pool=move');
    cluster.cli('apply', '-f', cluster.manifest('moving', 2, { spread: true, pod: { nodeSelector: { pool: 'move' } } }));
    const before = await waitFor('moving on a and b', () => runningN('moving', 2), 60_000, 300);
    expect(before.map((p: any) => p.spec.nodeName).sort()).toEqual(['edge-a', 'edge-b']);
    const agentA = cluster.agents[0] as Proc;
    const killedAt = Date.now();
    agentA.child.kill('SIGKILL');
    for (const c of await nodeContainers(docker, cluster.nodeIdOf.get('edge-a') as string)) await docker.getContainer(c.Id).remove({ force: true });
    const after = await waitFor('both moving pods on edge-b', () => runningOf('moving').filter((p) => p.spec.nodeName === 'edge-b').length === 2, TTL_MS + SKEW_MS + 30_000, 300);
    const elapsed = Date.now() - killedAt;
    expect(after).toBe(true);
    // Lease TTL, skew margin, one tick (2 s) and a container start.
    expect(elapsed).toBeLessThan(TTL_MS + SKEW_MS + 2_000 + 10_000);
    const moved = podsOf('moving').find((p) => eventsOf(p.metadata.name).some((e) => e.reason === 'NodeLost'));
    expect(moved?.metadata.annotations['flotilla.dev/epoch']).toBe('2');
    expect(JSON.parse(cluster.cli('get', 'nodes', 'edge-a', '-o', 'json')).status.conditions[0].status).toBe('Unknown');
    const nodeEvents = (await api('GET', '/v1/events?limit=1000')).body.items as any[];
    expect(nodeEvents.some((e) => e.kind === 'Node' && e.name === 'edge-a' && e.reason === 'NodeNotReady')).toBe(true);
    expect(cluster.cli('get', 'events', '-A')).toMatch(/Warning\s+NodeNotReady\s+node\/edge-a\s+node stopped renewing its leases/);
    cluster.cli('delete', 'deployment', 'moving');
  }, 120_000);

  it('an agent cut off by a relay stops its pod at lease expiry; the replacement starts elsewhere after it, never two live leases', async () => {
    const relay = await Relay.start(serverPort);
    runCli(['uncordon', 'edge-b'], cluster.env()); // whatever an earlier test left behind
    try {
      await cluster.startAgent('edge-r', enroll, { server: `http://127.0.0.1:${relay.port}` });
      cluster.cli('cordon', 'edge-b');
      cluster.cli('cordon', 'edge-c');
      cluster.cli('apply', '-f', cluster.manifest('fenced', 1));
      const [first] = await waitFor('fenced on edge-r', () => runningN('fenced', 1), 60_000, 300);
      expect(first.spec.nodeName).toBe('edge-r');
      cluster.cli('uncordon', 'edge-c');
      relay.cut();
      const cutAt = Date.now();
      const moved = await waitFor('fenced running on edge-c', () => runningOf('fenced').find((p) => p.spec.nodeName === 'edge-c'), TTL_MS + SKEW_MS + 30_000, 300);
      expect(Date.now() - cutAt).toBeLessThan(TTL_MS + SKEW_MS + 2_000 + 10_000);
      // The recorded timeline: the cut-off agent's last lease, its container's end; the new lease and container.
      const leaseOf = (node: string) => {
        const d = JSON.parse(readFileSync(join(cluster.dataDirs.get(node) as string, 'desired.json'), 'utf8')) as { pods: Array<{ id: string; lease: string }> };
        const p = d.pods.find((x) => x.id === first.metadata.uid);
        return p ? (decodeJwt(p.lease) as { iat: number; exp: number; epoch: number }) : undefined;
      };
      const old = leaseOf('edge-r');
      const now = await waitFor('edge-c has the new lease', () => leaseOf('edge-c'), 10_000, 200);
      expect(old && now).toBeTruthy();
      expect(now?.epoch).toBeGreaterThan(old?.epoch ?? Infinity);
      expect((now?.iat ?? 0) * 1000).toBeGreaterThanOrEqual((old?.exp ?? Infinity) * 1000 - 1000);
      // Container lifetimes from the engine's event log (the agent removes the stopped container).
      const events = await containerEvents(first.metadata.uid, cutAt - 120_000);
      const nodeR = cluster.nodeIdOf.get('edge-r') as string;
      const oldEnd = events.find((e) => e.node === nodeR && e.action === 'die')?.at ?? Infinity;
      const newStart = events.find((e) => e.node !== nodeR && e.action === 'start')?.at ?? -Infinity;
      // The agent starts stopping early enough for the container to be dead at its lease's expiry
      // (allow half the skew margin for the engine's latency under load); the new one started after.
      expect(oldEnd).toBeLessThanOrEqual((old?.exp ?? 0) * 1000 + SKEW_MS / 2);
      expect(newStart).toBeGreaterThan(oldEnd);
      expect(newStart).toBeGreaterThanOrEqual((old?.exp ?? 0) * 1000);
      expect(moved.metadata.annotations['flotilla.dev/epoch']).toBe(String(now?.epoch));
    } finally {
      await relay.close();
      runCli(['uncordon', 'edge-b'], cluster.env());
      runCli(['uncordon', 'edge-c'], cluster.env());
      runCli(['delete', 'deployment', 'fenced'], cluster.env());
    }
  }, 120_000);
});

describe('offline autonomy', () => {
  it('an agent restarted while the control plane is down brings back its keep pods (DaemonSet), not lapsed stop pods', async () => {
    runCli(['uncordon', 'edge-b'], cluster.env()); // whatever an earlier test left behind
    cluster.cli('apply', '-f', cluster.manifest('ephemeral', 1, { pod: { nodeSelector: { 'kubernetes.io/hostname': 'edge-b' } } }));
    await waitFor('ephemeral and cam on edge-b', () => runningOf('ephemeral').length === 1 && runningOf('cam').some((p) => p.spec.nodeName === 'edge-b'), 60_000, 300);
    const agentB = cluster.agents[1] as Proc;
    const nodeB = cluster.nodeIdOf.get('edge-b') as string;
    await agentB.stop();
    await server.stop();
    // a reboot: the containers are gone too; wait until every lease has expired
    for (const c of await nodeContainers(docker, nodeB)) await docker.getContainer(c.Id).remove({ force: true });
    await new Promise((r) => setTimeout(r, TTL_MS + 1000));
    const restarted = startCli(['agent', '--server', cluster.url, '--data-dir', cluster.dataDirs.get('edge-b') as string], { FLOTILLA_LOG_LEVEL: 'debug', FLOTILLA_FIRST_POLL_WAIT_MS: '1000' });
    cluster.agents.push(restarted);
    const running = await waitFor(
      'the DaemonSet pod back on edge-b',
      async () => {
        const list = await nodeContainers(docker, nodeB, false);
        return list.length > 0 && list;
      },
      30_000,
      300,
    );
    await new Promise((r) => setTimeout(r, 2000));
    const names = (await nodeContainers(docker, nodeB, false)).map((c) => c.Labels['dev.flotilla.workload']);
    expect(names).toEqual(['cam']);
    expect(running.length).toBe(1);
  }, 120_000);
});
