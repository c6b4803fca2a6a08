import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '../../shared/protocol.js';
import { execIn, requireDocker } from '../lib/docker.js';
import { runCli } from '../lib/proc.js';
import { waitFor } from '../lib/wait.js';
import { type Cluster, type NodeControlPlane, startNodeControlPlane } from './cluster.js';

// PersistentVolumeClaims of the local class on a Node control plane with two CLI agents and the
// real Docker engine.
let docker: Docker;
let cp: NodeControlPlane;
let cluster: Cluster;
const volumes: string[] = [];

beforeAll(async () => {
  docker = await requireDocker();
  cp = await startNodeControlPlane(docker, 'flotilla-claims-');
  cluster = cp.cluster;
  const token = cluster.cli('token', 'create', '--uses', '2').trim();
  await Promise.all([cluster.startAgent('claim-a', token), cluster.startAgent('claim-b', token)]);
}, 90_000);

afterAll(async () => {
  await cp?.close();
  for (const v of volumes)
    await docker
      .getVolume(v)
      .remove()
      .catch(() => undefined);
});

function file(name: string, doc: unknown): string {
  const f = join(cluster.tmp('flotilla-pvc-'), `${name}.json`);
  writeFileSync(f, JSON.stringify(doc));
  return f;
}

const claim = (name: string, o: { annotations?: Record<string, string>; spec?: Record<string, unknown> } = {}) => ({
  apiVersion: 'v1',
  kind: 'PersistentVolumeClaim',
  metadata: { name, ...(o.annotations ? { annotations: o.annotations } : {}) },
  spec: o.spec ?? { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '16Mi' } } },
});

/** A Deployment whose pods sleep with the claim mounted at /data. */
function user(name: string, claimName: string, o: { replicas?: number; image?: string; nodeSelector?: Record<string, string> } = {}) {
  return cluster.manifestDoc(name, o.replicas ?? 1, {
    annotations: { 'flotilla.dev/scoring': 'LeastAllocated' },
    containers: [{ name: 'sh', image: o.image ?? 'local/busybox:1', command: ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
    pod: { volumes: [{ name: 'data', persistentVolumeClaim: { claimName } }] },
    ...(o.nodeSelector ? { nodeSelector: o.nodeSelector } : {}),
  });
}

const pvc = (name: string) => JSON.parse(cluster.cli('get', 'pvc', name, '-o', 'json'));
const running = (app: string, image?: string) => cluster.pods().filter((p) => p.metadata.labels.app === app && p.status.phase === 'Running' && (!image || p.spec.containers[0].image === image));

async function containerOf(pod: string) {
  const c = (await cluster.containers(true)).find((x) => x.Labels[LABELS.podName] === pod);
  if (!c) throw new Error(`no running container for ${pod}`);
  return c;
}

const volumeExists = (name: string) =>
  docker
    .getVolume(name)
    .inspect()
    .then(
      () => true,
      () => false,
    );

describe('persistent volume claims', () => {
  it("binds to its first pod's node; data survives restarts, replacement and a rollout; every pod stays on that node; Delete removes the volume", async () => {
    cluster.cli('apply', '-f', file('data', claim('data')));
    expect(pvc('data').status.phase).toBe('Pending');
    cluster.cli('apply', '-f', file('db', user('db', 'data')));
    const [first] = await waitFor('db running', () => running('db').length === 1 && running('db'), 60_000, 300);
    const node = first.spec.nodeName;
    const bound = pvc('data');
    expect(bound.status.phase).toBe('Bound');
    expect(bound.status.node).toBe(node);
    const volume = bound.spec.volumeName as string;
    volumes.push(volume);
    expect(await volumeExists(volume)).toBe(true);
    expect(cluster.cli('get', 'pvc')).toMatch(new RegExp(`data\\s+Bound\\s+${node}\\s+16Mi\\s+RWO\\s+local\\s+Delete`));
    expect((await execIn(docker, (await containerOf(first.metadata.name)).Id, ['sh', '-c', 'echo hello > /data/msg'])).code).toBe(0);
    const read = async (pod: string) => (await execIn(docker, (await containerOf(pod)).Id, ['cat', '/data/msg'])).out.trim();

    // A killed container comes back with the data.
    const old = await containerOf(first.metadata.name);
    await docker.getContainer(old.Id).kill();
    await waitFor('restarted container', async () => (await containerOf(first.metadata.name).catch(() => old)).Id !== old.Id, 30_000, 300);
    expect(await read(first.metadata.name)).toBe('hello');

    // A rollout to another image: the new pod is on the claim's node and sees the data.
    cluster.cli('apply', '-f', file('db2', user('db', 'data', { image: 'local/busybox:2' })));
    const [second] = await waitFor(
      'db v2 running',
      () => {
        const r = running('db', 'local/busybox:2');
        return r.length === 1 && running('db').length === 1 && r;
      },
      60_000,
      300,
    );
    expect(second.spec.nodeName).toBe(node);
    expect(await read(second.metadata.name)).toBe('hello');

    // Replacement by scaling to 0 and to 2: with LeastAllocated scoring the second pod would go to
    // the empty node; the claim keeps both on its node.
    cluster.cli('scale', 'deployment/db', '--replicas', '0');
    await waitFor('db gone', () => cluster.pods().filter((p) => p.metadata.labels.app === 'db').length === 0, 60_000, 300);
    cluster.cli('scale', 'deployment/db', '--replicas', '2');
    const two = await waitFor('2 db running', () => running('db').length === 2 && running('db'), 60_000, 300);
    for (const p of two) {
      expect(p.spec.nodeName).toBe(node);
      expect(await read(p.metadata.name)).toBe('hello');
    }

    // Deleting the claim while pods use it: Terminating, data kept; once they are gone, the volume is removed.
    cluster.cli('delete', 'pvc', 'data');
    expect(pvc('data').status.phase).toBe('Terminating');
    expect(await volumeExists(volume)).toBe(true);
    cluster.cli('delete', 'deployment', 'db');
    await waitFor('claim gone', () => runCli(['get', 'pvc', 'data'], cluster.env()).code !== 0, 60_000, 300);
    await waitFor('volume removed', async () => !(await volumeExists(volume)), 30_000, 300);
    const events = cluster.cli('get', 'events');
    expect(events).toMatch(/persistentvolumeclaim\/data\s+deleted; reclaim policy Delete: node claim-[ab] removed volume flotilla-pvc-/);
  }, 240_000);

  it('Retain keeps the data after the claim is deleted', async () => {
    cluster.cli('apply', '-f', file('keep', claim('keep', { annotations: { 'flotilla.dev/reclaim-policy': 'Retain' } })));
    cluster.cli('apply', '-f', file('k', user('k', 'keep')));
    const [p] = await waitFor('k running', () => running('k').length === 1 && running('k'), 60_000, 300);
    await execIn(docker, (await containerOf(p.metadata.name)).Id, ['sh', '-c', 'echo kept > /data/msg']);
    const volume = pvc('keep').spec.volumeName as string;
    volumes.push(volume);
    cluster.cli('delete', 'deployment', 'k');
    cluster.cli('delete', 'pvc', 'keep');
    await waitFor('claim gone', () => runCli(['get', 'pvc', 'keep'], cluster.env()).code !== 0, 60_000, 300);
    expect(await volumeExists(volume)).toBe(true);
    const mount = ((await docker.getVolume(volume).inspect()) as { Mountpoint: string }).Mountpoint;
    expect(mount).toBeTruthy();
  }, 120_000);

  it('a pod whose claim is bound to a node that is gone waits Pending with that reason; the data is not deleted', async () => {
    cluster.cli('apply', '-f', file('orphan', claim('orphan')));
    cluster.cli('apply', '-f', file('o', user('o', 'orphan', { nodeSelector: { 'kubernetes.io/hostname': 'claim-b' } })));
    await waitFor('o running', () => running('o').length === 1, 60_000, 300);
    expect(pvc('orphan').status.node).toBe('claim-b');
    const volume = pvc('orphan').spec.volumeName as string;
    volumes.push(volume);
    cluster.cli('delete', 'deployment', 'o');
    await waitFor('o gone', () => cluster.pods().filter((p) => p.metadata.labels.app === 'o').length === 0, 60_000, 300);
    cluster.cli('node', 'revoke', 'claim-b');
    cluster.cli('apply', '-f', file('o2', user('o2', 'orphan')));
    const p = await waitFor(
      'o2 pending with the reason',
      () => cluster.pods().find((x) => x.metadata.labels.app === 'o2' && /which is gone/.test(x.status.reason ?? x.status.message ?? '')),
      30_000,
      300,
    );
    expect(p.status.phase).toBe('Pending');
    expect(cluster.cli('get', 'events')).toContain('persistentvolumeclaim "orphan" is bound to node claim-b, which is gone');
    expect(await volumeExists(volume)).toBe(true);
    expect(pvc('orphan').status.phase).toBe('Bound');
  }, 120_000);

  it('refuses bad claims and volumes with the field path, changing nothing', () => {
    const bad = (name: string, doc: unknown) => runCli(['apply', '-f', file(name, doc)], cluster.env());
    let r = bad('c1', claim('c1', { spec: { storageClassName: 'fast', resources: { requests: { storage: '1Gi' } } } }));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('spec.storageClassName');
    r = bad('c2', claim('c2', { spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '1Gi' } } } }));
    expect(r.stderr).toContain('spec.accessModes[0]');
    r = bad('c3', claim('c3', { spec: { resources: { requests: { storage: 'lots' } } } }));
    expect(r.stderr).toContain('spec.resources.requests.storage');
    const twoSources = user('x', 'orphan') as any;
    twoSources.spec.template.spec.volumes[0].emptyDir = {};
    r = bad('x', twoSources);
    expect(r.stderr).toContain('spec.template.spec.volumes[0]');
    expect(runCli(['get', 'pvc', 'c1'], cluster.env()).code).not.toBe(0);
    // A claim's size cannot change.
    r = bad('orphan', claim('orphan', { spec: { resources: { requests: { storage: '32Mi' } } } }));
    expect(r.stderr).toContain('spec.resources.requests.storage: a claim');
  });
});
