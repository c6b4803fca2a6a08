import { readFileSync, writeFileSync } from 'node:fs';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '../../shared/protocol.js';
import { requireDocker } from '../lib/docker.js';
import { runCli, startCli } from '../lib/proc.js';
import { waitFor } from '../lib/wait.js';
import { type Cluster, type NodeControlPlane, startNodeControlPlane } from './cluster.js';

// Rolling updates on a Node control plane with two CLI agents and the real Docker engine.
let docker: Docker;
let cp: NodeControlPlane;
let cluster: Cluster;

beforeAll(async () => {
  docker = await requireDocker();
  cp = await startNodeControlPlane(docker, 'flotilla-rollout-');
  cluster = cp.cluster;
  const token = cluster.cli('token', 'create', '--uses', '3').trim();
  await Promise.all([cluster.startAgent('roll-a', token), cluster.startAgent('roll-b', token), cluster.startAgent('roll-c', token)]);
}, 90_000);

afterAll(async () => {
  await cp?.close();
});

// Three failures in a row before a Ready pod is unready: with one, a single slow probe on a loaded
// CI machine made a Ready pod flap, which the rolling update's availability check then saw.
const readiness = { httpGet: { path: '/', port: 80 }, periodSeconds: 1, failureThreshold: 3 };
const isReady = (p: any) => p.status.conditions.find((c: any) => c.type === 'Ready')?.status === 'True';
const live = (app: string) => cluster.pods().filter((p) => p.metadata.labels.app === app && p.status.phase !== 'Terminating');

/** Running containers of a workload, across both agents, as the engine lists them. */
async function running(app: string) {
  const all = await cluster.containers(true);
  return all.filter((c) => c.Labels[LABELS.workload] === app);
}

function manifestFile(name: string, replicas: number, image: string, strategy: Record<string, unknown>, edit?: (doc: any) => void): string {
  const f = cluster.manifest(name, replicas, { image, container: { readinessProbe: readiness } });
  const doc = JSON.parse(readFileSync(f, 'utf8'));
  doc.spec.strategy = strategy;
  edit?.(doc);
  writeFileSync(f, JSON.stringify(doc));
  return f;
}

/** Runs the CLI without blocking the event loop (samplers keep sampling). */
async function cliAsync(...args: string[]): Promise<{ code: number | null; out: string }> {
  const p = startCli(args, cluster.env());
  const code = await p.exited;
  return { code, out: p.out() };
}

const rolloutOf = (kind: string, name: string) => JSON.parse(cluster.cli('get', kind, name, '-o', 'json')).status.rollout;

/**
 * Samples the API and the engine every 150 ms until stopped. `minReady`: the fewest Ready pods seen.
 * `minKeptReady` counts what a rollout's maxUnavailable answers for: a live pod that was Ready and is
 * not any more (its readiness probe failed, say on a loaded machine) was not made unavailable by the
 * rollout, and counts as Ready there; `disrupted` says how often that was seen.
 */
function sampler(app: string) {
  let on = true;
  const seen = { minReady: Infinity, minKeptReady: Infinity, maxContainers: 0, images: [] as string[][], disrupted: 0 };
  const wasReady = new Set<string>();
  const loop = (async () => {
    while (on) {
      const [pods, ctrs] = [live(app), await running(app)];
      for (const p of pods.filter(isReady)) wasReady.add(p.metadata.uid);
      const disrupted = pods.filter((p) => !isReady(p) && wasReady.has(p.metadata.uid)).length;
      seen.disrupted += disrupted;
      seen.minReady = Math.min(seen.minReady, pods.filter(isReady).length);
      seen.minKeptReady = Math.min(seen.minKeptReady, pods.filter(isReady).length + disrupted);
      seen.maxContainers = Math.max(seen.maxContainers, ctrs.length);
      seen.images.push([...new Set(ctrs.map((c) => c.Image))].sort());
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  return {
    seen,
    async stop() {
      on = false;
      await loop;
    },
  };
}

async function allServe(app: string, body: string, n: number) {
  await waitFor(
    `${n} ${app} pods Ready serving ${body.trim()}`,
    async () => {
      const pods = live(app);
      if (pods.length !== n || !pods.every(isReady)) return false;
      for (const p of pods) {
        const hp = p.status.hostPorts[0];
        if (!hp || (await (await fetch(`http://127.0.0.1:${hp.hostPort}/`)).text()) !== body) return false;
      }
      return (await running(app)).length === n;
    },
    90_000,
    300,
  );
}

describe('rolling update', () => {
  it('4 replicas v1 -> v2 with maxSurge 1, maxUnavailable 1: never fewer than 3 Ready nor more than 5 containers; ends all v2', async () => {
    const strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 1 } };
    expect(cluster.cli('apply', '-f', manifestFile('roll', 4, 'local/busybox:1', strategy)).trim()).toBe('deployment.apps/roll created');
    await allServe('roll', 'v1\n', 4);
    const s = sampler('roll');
    const since = Date.now();
    expect(cluster.cli('apply', '-f', manifestFile('roll', 4, 'local/busybox:2', strategy)).trim()).toBe('deployment.apps/roll configured');
    await allServe('roll', 'v2\n', 4);
    await s.stop();
    // A pod whose own readiness probe failed during the rollout (the agent's "Unhealthy" event) may
    // have left Ready between two samples, or been stopped first as the unavailable old pod it was:
    // each such pod is one the rollout did not make unavailable. Their events arrive with the
    // agents' next heartbeats.
    const probeFailed = async () => {
      const events = JSON.parse(cluster.cli('get', 'events', '-o', 'json')).items as any[];
      const failed = events.filter((e) => e.involvedObject.name.startsWith('roll-') && e.reason === 'Unhealthy' && /^Readiness probe failed/.test(e.message) && Date.parse(e.lastTimestamp) >= since);
      return new Set(failed.map((e) => e.involvedObject.name));
    };
    let flapped = await probeFailed();
    if (s.seen.minKeptReady < 3) {
      await new Promise((r) => setTimeout(r, 5000));
      flapped = await probeFailed();
    }
    expect(
      s.seen.minKeptReady + flapped.size,
      `fewest Ready pods the rollout kept: ${s.seen.minKeptReady} (pods seen unready on their own: ${s.seen.disrupted}; pods whose readiness probe failed: ${[...flapped].join(', ') || 'none'})`,
    ).toBeGreaterThanOrEqual(3);
    expect(s.seen.maxContainers).toBeLessThanOrEqual(5);
    // it was a rolling update: at some observation v1 and v2 ran side by side
    expect(s.seen.images.some((i) => i.length === 2)).toBe(true);
    const dep = JSON.parse(cluster.cli('get', 'deployment', 'roll', '-o', 'json'));
    expect(dep.metadata.annotations['deployment.kubernetes.io/revision']).toBe('2');
    expect(dep.status).toMatchObject({ replicas: 4, updatedReplicas: 4, readyReplicas: 4, availableReplicas: 4 });
    expect(dep.status.conditions).toContainEqual(expect.objectContaining({ type: 'Progressing', reason: 'NewReplicaSetAvailable' }));
    const history = cluster.cli('rollout', 'history', 'deployment/roll');
    expect(history).toMatch(/REVISION\s+IMAGES[\s\S]*\n1\s+local\/busybox:1[\s\S]*\n2 \(current\)\s+local\/busybox:2/);
    // an identical re-apply creates no revision and restarts nothing
    const ids = live('roll')
      .map((p) => p.metadata.uid)
      .sort();
    expect(cluster.cli('apply', '-f', manifestFile('roll', 4, 'local/busybox:2', strategy)).trim()).toBe('deployment.apps/roll unchanged');
    expect(
      live('roll')
        .map((p) => p.metadata.uid)
        .sort(),
    ).toEqual(ids);
    cluster.cli('delete', 'deployment', 'roll');
  }, 180_000);

  it('Recreate: old and new never run at the same time', async () => {
    const strategy = { type: 'Recreate' };
    cluster.cli('apply', '-f', manifestFile('recr', 2, 'local/busybox:1', strategy));
    await allServe('recr', 'v1\n', 2);
    const s = sampler('recr');
    cluster.cli('apply', '-f', manifestFile('recr', 2, 'local/busybox:2', strategy));
    await allServe('recr', 'v2\n', 2);
    await s.stop();
    expect(s.seen.images.every((i) => i.length <= 1)).toBe(true);
    cluster.cli('delete', 'deployment', 'recr');
  }, 180_000);

  it('scale, pause and resume: a paused Deployment does not roll out a new template until resumed', async () => {
    const strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } };
    cluster.cli('apply', '-f', manifestFile('pz', 1, 'local/busybox:1', strategy));
    await allServe('pz', 'v1\n', 1);
    expect(cluster.cli('scale', 'deployment/pz', '--replicas', '2').trim()).toBe('deployment.apps/pz scaled');
    await allServe('pz', 'v1\n', 2);
    expect(cluster.cli('rollout', 'pause', 'deployment/pz').trim()).toBe('deployment.apps/pz paused');
    const paused = manifestFile('pz', 2, 'local/busybox:2', strategy);
    const doc = JSON.parse(readFileSync(paused, 'utf8'));
    doc.spec.paused = true;
    writeFileSync(paused, JSON.stringify(doc));
    cluster.cli('apply', '-f', paused);
    await new Promise((r) => setTimeout(r, 3000));
    expect((await running('pz')).map((c) => c.Image)).toEqual(['local/busybox:1', 'local/busybox:1']);
    expect(cluster.cli('rollout', 'resume', 'deployment/pz').trim()).toBe('deployment.apps/pz resumed');
    await allServe('pz', 'v2\n', 2);
    // bad input changes nothing: one readable line, non-zero exit
    const bad = await fetch(`${cluster.url}/v1/namespaces/default/deployments/pz/scale`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${cluster.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ spec: { replicas: -1 } }),
    });
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { errors: Array<{ path: string }> }).errors[0]?.path).toBe('spec.replicas');
    expect(runCli(['scale', 'deployment/pz'], cluster.env()).code).toBe(2);
    expect(live('pz')).toHaveLength(2);
    cluster.cli('delete', 'deployment', 'pz');
  }, 180_000);

  it('rollout undo --to-revision, restart and status', async () => {
    const strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } };
    cluster.cli('apply', '-f', manifestFile('undo', 2, 'local/busybox:1', strategy));
    await allServe('undo', 'v1\n', 2);
    cluster.cli('apply', '-f', manifestFile('undo', 2, 'local/busybox:2', strategy));
    const status = runCli(['rollout', 'status', 'deployment/undo', '--timeout', '90s'], cluster.env());
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout.trim().split('\n').at(-1)).toMatch(/^deployment "undo" successfully rolled out \(revision \d+\)$/);
    await allServe('undo', 'v2\n', 2);
    const missing = runCli(['rollout', 'undo', 'deployment/undo', '--to-revision', '99'], cluster.env());
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/revision 99 not found/);
    expect(cluster.cli('rollout', 'undo', 'deployment/undo', '--to-revision', '1').trim()).toBe('deployment.apps/undo rolled back to revision 1');
    await allServe('undo', 'v1\n', 2);
    expect(cluster.cli('rollout', 'history', 'deployment/undo')).toMatch(/\n3 \(current\)\s+local\/busybox:1/);
    const before = live('undo').map((p) => p.metadata.uid);
    expect(cluster.cli('rollout', 'restart', 'deployment/undo').trim()).toBe('deployment.apps/undo restarted');
    expect(runCli(['rollout', 'status', 'deployment/undo', '--timeout', '90s'], cluster.env()).code).toBe(0);
    await allServe('undo', 'v1\n', 2);
    expect(
      live('undo')
        .map((p) => p.metadata.uid)
        .filter((u) => before.includes(u)),
    ).toEqual([]);
    cluster.cli('delete', 'deployment', 'undo');
  }, 180_000);
});

describe('automatic rollback', () => {
  it('a revision that crash-loops, then one that never becomes Ready, are rolled back; apply --wait and rollout status say so; the good pods are never gone', async () => {
    const strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } };
    const good = () => manifestFile('rb', 2, 'local/busybox:1', strategy, (d) => (d.spec.progressDeadlineSeconds = 12));
    cluster.cli('apply', '-f', good());
    await allServe('rb', 'v1\n', 2);
    expect(runCli(['rollout', 'status', 'deployment/rb', '--timeout', '60s'], cluster.env()).code).toBe(0);
    const s = sampler('rb');
    // revision 2: the container exits 1 at once
    const crashing = manifestFile('rb', 2, 'local/busybox:2', strategy, (d) => {
      d.spec.progressDeadlineSeconds = 30; // the crash loop (3 restarts) must be what fails it, with room on a loaded machine
      d.spec.template.spec.containers[0].command = ['sh', '-c', 'exit 1'];
    });
    const wait = startCli(['apply', '-f', crashing, '--wait', '--timeout', '90s'], cluster.env());
    expect(await wait.exited).toBe(1);
    expect(wait.out()).toMatch(/deployment\.apps\/rb configured/);
    expect(wait.out()).toMatch(/error: deployment "rb" revision 2 failed \(CrashLoopBackOff: .*restarted \d+ times\); rolled back to the template of revision 1 \(now revision 3\)/);
    await allServe('rb', 'v1\n', 2);
    expect(rolloutOf('deployment', 'rb')).toMatchObject({ revision: 3, rolledBack: { from: 2, to: 1, reason: 'CrashLoopBackOff' } });
    // revision 4: runs, but its readiness page is missing: no progress within 12 s
    const unready = manifestFile('rb', 2, 'local/busybox:2', strategy, (d) => {
      d.spec.progressDeadlineSeconds = 12;
      d.spec.template.spec.containers[0].readinessProbe = { ...readiness, httpGet: { path: '/missing', port: 80 } };
    });
    cluster.cli('apply', '-f', unready);
    const status = await cliAsync('rollout', 'status', 'deployment/rb', '--timeout', '50s');
    expect(status.code).toBe(1);
    expect(status.out).toMatch(/revision 4 failed \(ProgressDeadlineExceeded: revision 4 made no progress for 12s/);
    await allServe('rb', 'v1\n', 2);
    await s.stop();
    // the available pods were never fewer than replicas (maxUnavailable 0), and the bad revision is not retried
    expect(s.seen.minReady).toBeGreaterThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 3000));
    expect((await running('rb')).map((c) => c.Image)).toEqual(['local/busybox:1', 'local/busybox:1']);
    const dep = JSON.parse(cluster.cli('get', 'deployment', 'rb', '-o', 'json'));
    expect(dep.status.rollout).toMatchObject({ revision: 5, state: 'Complete', stableRevision: 5 });
    const events = cluster.cli('get', 'events');
    expect(events).toMatch(/Warning\s+RolledBack\s+deployment\/rb\s+rolled back from revision 2 to the template of revision 1/);
    expect(events).toMatch(/Warning\s+RolledBack\s+deployment\/rb\s+rolled back from revision 4/);
    cluster.cli('delete', 'deployment', 'rb');
  }, 240_000);
});

describe('canary', () => {
  it('1 of 4 pods of the new revision first, held until promoted; then the rest', async () => {
    const strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } };
    const file = (image: string) => manifestFile('can', 4, image, strategy, (d) => (d.metadata.annotations = { 'flotilla.dev/canary': '1' }));
    cluster.cli('apply', '-f', file('local/busybox:1'));
    await allServe('can', 'v1\n', 4);
    // promote with no canary in progress: a clear refusal, nothing changes
    const early = runCli(['rollout', 'promote', 'deployment/can'], cluster.env());
    expect(early.code).not.toBe(0);
    expect(early.stderr).toMatch(/no canary in progress for deployment default\/can/);
    cluster.cli('apply', '-f', file('local/busybox:2'));
    await waitFor('the canary held', () => rolloutOf('deployment', 'can').state === 'CanaryHold', 60_000, 300);
    await new Promise((r) => setTimeout(r, 3000)); // held: nothing more moves
    const images = (await running('can')).map((c) => c.Image).sort();
    expect(images).toEqual(['local/busybox:1', 'local/busybox:1', 'local/busybox:1', 'local/busybox:2']);
    expect(cluster.cli('rollout', 'promote', 'deployment/can').trim()).toBe('deployment.apps/can promoted');
    await allServe('can', 'v2\n', 4);
    expect(runCli(['rollout', 'status', 'deployment/can', '--timeout', '60s'], cluster.env()).code).toBe(0);
    cluster.cli('delete', 'deployment', 'can');
  }, 180_000);
});

describe('DaemonSet waves', () => {
  it('3 nodes, maxUnavailable 1: never more than one node without a Ready pod; ends all v2', async () => {
    const file = (image: string) => {
      const f = cluster.manifest('wave', 0, { kind: 'DaemonSet', image, container: { readinessProbe: readiness } });
      const doc = JSON.parse(readFileSync(f, 'utf8'));
      doc.spec.updateStrategy = { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } };
      writeFileSync(f, JSON.stringify(doc));
      return f;
    };
    const nodes = 3;
    cluster.cli('apply', '-f', file('local/busybox:1'));
    await allServe('wave', 'v1\n', nodes);
    let on = true;
    let worst = 0;
    let mixed = false;
    const watch = (async () => {
      while (on) {
        const pods = live('wave');
        const readyNodes = new Set(pods.filter(isReady).map((p) => p.spec.nodeName));
        worst = Math.max(worst, nodes - readyNodes.size);
        mixed ||= new Set((await running('wave')).map((c) => c.Image)).size === 2;
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    cluster.cli('apply', '-f', file('local/busybox:2'));
    const status = await cliAsync('rollout', 'status', 'daemonset/wave', '--timeout', '50s');
    on = false;
    await watch;
    expect(status.code, status.out).toBe(0);
    await allServe('wave', 'v2\n', nodes);
    expect(worst).toBeLessThanOrEqual(1);
    expect(mixed).toBe(true); // waves: v1 and v2 side by side at some point
    expect(cluster.cli('rollout', 'history', 'daemonset/wave')).toMatch(/\n2 \(current\)\s+local\/busybox:2/);
    cluster.cli('delete', 'daemonset', 'wave');
  }, 180_000);
});
