import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireDocker } from '../lib/docker.js';
import { type Proc, runCli } from '../lib/proc.js';
import { waitFor } from '../lib/wait.js';
import { type Cluster, type NodeControlPlane, startNodeControlPlane } from './cluster.js';

let cp: NodeControlPlane;
let server: Proc;
let cluster: Cluster;
let dataDir: string;

beforeAll(async () => {
  cp = await startNodeControlPlane(await requireDocker(), 'flotilla-server-');
  ({ server, cluster, dataDir } = cp);
});

afterAll(async () => {
  await cp?.close();
});

describe('Node control plane with two agents on real Docker', () => {
  let web: string;

  it('keeps the bootstrap admin token in a 0600 file and never logs it', () => {
    const file = `${dataDir}/admin.token`;
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(server.out()).not.toContain(cluster.token);
  });

  it('enrolls two agents with a 2-use token; a third enrollment fails with one clear line', async () => {
    const token = cluster.cli('token', 'create', '--uses', '2', '--ttl', '10m', '--label', 'site=lab').trim();
    expect(token).toMatch(/^fle_/);
    await Promise.all([cluster.startAgent('edge-a', token), cluster.startAgent('edge-b', token)]);
    const third = runCli(['agent', '--server', cluster.url, '--token', token, '--name', 'edge-c', '--data-dir', cluster.tmp('flotilla-edge-c-')]);
    expect(third.code).not.toBe(0);
    expect(third.stderr.trim().split('\n')).toHaveLength(1);
    expect(third.stderr).toMatch(/^error: enrollment refused: .*used up/);
    const nodes = JSON.parse(cluster.cli('get', 'nodes', '-o', 'json')).items as any[];
    expect(nodes.map((n) => n.metadata.name).sort()).toEqual(['edge-a', 'edge-b']);
    expect(nodes.every((n) => n.status.conditions[0].status === 'True' && n.metadata.labels.site === 'lab')).toBe(true);
    expect(cluster.cli('get', 'nodes')).toMatch(/NAME\s+STATUS[\s\S]*edge-a\s+Ready/);
  });

  it('runs a 3-replica deployment spread across both nodes, answering HTTP on 127.0.0.1', async () => {
    // The default scoring packs pods onto few nodes; a topology spread constraint spreads them.
    web = cluster.manifest('web', 3, { spread: true });
    expect(cluster.cli('apply', '-f', web).trim()).toBe('deployment.apps/web created');
    expect(cluster.cli('apply', '-f', web).trim()).toBe('deployment.apps/web unchanged');
    const pods = await cluster.waitRunning(3);
    expect(new Set(pods.map((p) => p.spec.nodeName))).toEqual(new Set(['edge-a', 'edge-b']));
    expect(cluster.cli('get', 'pods')).toMatch(/NAME\s+READY\s+STATUS\s+RESTARTS\s+NODE\s+PORTS\s+AGE\n(.*1\/1\s+Running\s+0\s+edge-[ab]\s+127\.0\.0\.1:\d+->80\/tcp.*\n?){3}/);
    const dep = JSON.parse(cluster.cli('get', 'deployments', 'web', '-o', 'json'));
    expect(dep).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'default' }, status: { readyReplicas: 3, replicas: 3 } });
    expect((await cluster.containers(true)).length).toBe(3);
  });

  it('scales to 1: two containers go', async () => {
    writeFileSync(web, readFileSync(web, 'utf8').replace('"replicas":3', '"replicas":1'));
    expect(cluster.cli('apply', '-f', web).trim()).toBe('deployment.apps/web configured');
    await waitFor('two containers to go', async () => (await cluster.containers()).length === 1, 30_000);
    await cluster.waitRunning(1);
  });

  it('delete -f removes everything, everywhere', async () => {
    expect(cluster.cli('delete', '-f', web).trim()).toBe('deployment.apps/web deleted');
    await waitFor('no containers left', async () => (await cluster.containers()).length === 0, 30_000);
    await waitFor('no pods left', () => cluster.pods().length === 0, 15_000);
  });

  it('bad input: the CLI exits non-zero with one readable line and nothing changes', () => {
    const bad = `${cluster.tmp('flotilla-bad-')}/bad.yaml`;
    writeFileSync(
      bad,
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: x, bogus: 1}]\n',
    );
    const r = runCli(['apply', '-f', bad], cluster.env());
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: .*spec\.template\.spec\.containers\[0\]\.bogus: unknown or unsupported field/);
    const junk = runCli(['apply', '-f', '-'], cluster.env(), 'kind: [');
    expect(junk.code).toBe(1);
    expect(junk.stderr.trim().split('\n')).toHaveLength(1);
    const noToken = runCli(['get', 'pods'], { FLOTILLA_SERVER: cluster.url, FLOTILLA_TOKEN: 'flo_nope' });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr.trim()).toBe('error: invalid API token');
    expect(cluster.pods()).toEqual([]);
    rmSync(bad);
  });
});
