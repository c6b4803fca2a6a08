import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeNodeContainers, requireDocker } from '../lib/docker.js';
import { type Proc, startCli } from '../lib/proc.js';
import { waitFor } from '../lib/wait.js';
import { Cluster } from './cluster.js';

// `flotilla server` (what `npm start` runs): the control plane plus a local agent enrolled to itself.
let docker: Docker;
let server: Proc;
let cluster: Cluster;
let dataDir: string;
let localNode = '';

beforeAll(async () => {
  docker = await requireDocker();
  dataDir = mkdtempSync(join(tmpdir(), 'flotilla-one-'));
  server = startCli(['server', '--port', '0', '--data-dir', dataDir]);
  const m = await server.waitForOutput(/control plane on (http:\/\/\S+); admin token in (\S+)/);
  cluster = new Cluster(m[1] as string, readFileSync(m[2] as string, 'utf8').trim(), docker);
  await server.waitForOutput(/local agent "[^"]+" running/);
});

afterAll(async () => {
  await cluster?.close();
  await server?.stop();
  if (docker && localNode) await removeNodeContainers(docker, [localNode]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('one command, a one-node cluster', () => {
  it('enrolls a local agent and runs a deployment on it', async () => {
    const nodes = JSON.parse(cluster.cli('get', 'nodes', '-o', 'json')).items as any[];
    expect(nodes).toHaveLength(1);
    expect(nodes[0].metadata.labels['flotilla.dev/local']).toBe('true');
    localNode = nodes[0].metadata.uid;
    cluster.nodeIds.push(localNode);
    cluster.cli('apply', '-f', cluster.manifest('solo', 1));
    const [pod] = await cluster.waitRunning(1);
    expect(pod.spec.nodeName).toBe(nodes[0].metadata.name);
    cluster.cli('delete', 'deployment', 'solo');
    await waitFor('the container to go', async () => (await cluster.containers()).length === 0, 30_000);
  });
});
