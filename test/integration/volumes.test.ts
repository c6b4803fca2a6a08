import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { silentLogger } from '../../control-plane/config.js';
import { type RunningServer, startServer } from '../../control-plane/entry/node.js';
import { createEnrollmentToken } from '../../control-plane/store/tokens.js';
import { LABELS } from '../../shared/protocol.js';
import { execIn, nodeContainers, removeNodeContainers, requireDocker } from '../lib/docker.js';
import { deploymentManifest } from '../lib/fixtures.js';
import { startCli } from '../lib/proc.js';
import { waitFor } from '../lib/wait.js';

// Pod volumes on a real engine: emptyDir (disk and memory) shared by a pod's containers and kept
// across container restarts, removed with the pod; subPath and readOnly; hostPath only under the
// prefixes the agent allows.
const FAST = { reconcileMs: 300, restartBackoffMs: 500, retryBaseMs: 100, retryCapMs: 1000, stopTimeoutSec: 1 };
let docker: Docker;
let server: RunningServer;
let agent: Agent;
let admin: string;
let allowed: string;
const dirs: string[] = [];

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(new URL(path, server.url), {
    method,
    headers: { authorization: `Bearer ${admin}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const exec = (id: string, cmd: string[]) => execIn(docker, id, cmd);

const running = (app: string, container: string) => async () =>
  (await nodeContainers(docker, agent.identity.nodeId, false)).find((c) => c.Labels[LABELS.workload] === app && c.Labels[LABELS.container] === container);

const podVolumes = async (podId: string) => (await docker.listVolumes({ filters: { label: [`${LABELS.pod}=${podId}`] } })).Volumes ?? [];

beforeAll(async () => {
  docker = await requireDocker();
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir: tmp('flotilla-cp-'),
    logger: silentLogger,
    env: { FLOTILLA_LEASE_TTL: '10s', FLOTILLA_POLL_WAIT: '5s', FLOTILLA_CLOCK_SKEW: '1s' },
  });
  admin = readFileSync(server.adminTokenPath, 'utf8').trim();
  allowed = tmp('flotilla-hostpath-');
  const token = (await createEnrollmentToken(server.deps.db, { maxUses: 1, ttlMs: 60_000, labels: {}, now: Date.now() })).token;
  agent = await Agent.start({ server: server.url, dataDir: tmp('flotilla-agent-'), token, name: 'vol-a', logger: silentLogger, allowedHostPaths: [allowed], ...FAST });
});

afterAll(async () => {
  await agent?.stop();
  if (docker && agent) {
    await removeNodeContainers(docker, [agent.identity.nodeId]);
    for (const v of (await docker.listVolumes({ filters: { label: [`${LABELS.node}=${agent.identity.nodeId}`] } })).Volumes ?? []) await docker.getVolume(v.Name).remove({ force: true });
  }
  await server?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('pod volumes', () => {
  it('an emptyDir is shared by the containers of a pod, survives a container restart, mounts by subPath, and goes with the pod; a Memory one is tmpfs of its sizeLimit', async () => {
    const m = deploymentManifest('shared', {
      replicas: 1,
      pod: {
        volumes: [
          { name: 'data', emptyDir: {} },
          { name: 'fast', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
        ],
      },
      containers: [
        {
          name: 'writer',
          image: 'local/busybox:1',
          command: ['sh', '-c', 'mkdir -p /data/sub && echo hello > /data/msg && echo deep > /data/sub/inner && exec sleep 3600'],
          volumeMounts: [
            { name: 'data', mountPath: '/data' },
            { name: 'fast', mountPath: '/fast' },
          ],
        },
        {
          name: 'reader',
          image: 'local/busybox:1',
          command: ['sleep', '3600'],
          volumeMounts: [
            { name: 'data', mountPath: '/shared', readOnly: true },
            { name: 'data', mountPath: '/only-sub', subPath: 'sub' },
            { name: 'fast', mountPath: '/fast' },
          ],
        },
      ],
    });
    expect((await api('PUT', '/v1/namespaces/default/deployments/shared', m)).status).toBe(201);
    const reader = await waitFor('the reader running', running('shared', 'reader'), 30_000, 300);
    const writer = (await running('shared', 'writer')()) as Docker.ContainerInfo;
    await waitFor('the writer wrote', async () => (await exec(reader.Id, ['cat', '/shared/msg'])).out === 'hello\n', 10_000, 200);
    expect((await exec(reader.Id, ['cat', '/only-sub/inner'])).out).toBe('deep\n');
    // readOnly: the reader cannot write where it mounted read-only, and can where it did not
    expect((await exec(reader.Id, ['touch', '/shared/x'])).code).not.toBe(0);
    expect((await exec(reader.Id, ['sh', '-c', 'echo fast > /fast/f'])).code).toBe(0);
    expect((await exec(writer.Id, ['cat', '/fast/f'])).out).toBe('fast\n');
    const mounts = (await exec(writer.Id, ['cat', '/proc/mounts'])).out;
    expect(mounts).toMatch(/tmpfs \/fast tmpfs [^\n]*size=16384k/);
    const podId = writer.Labels[LABELS.pod] as string;
    expect((await podVolumes(podId)).map((v) => v.Labels?.['dev.flotilla.volume']).sort()).toEqual(['data', 'fast']);
    // A container restart (killed): a fresh container, the same volume and data.
    await docker.getContainer(writer.Id).kill();
    const again = await waitFor(
      'the writer restarted',
      async () => {
        const c = await running('shared', 'writer')();
        return c && c.Id !== writer.Id && c;
      },
      30_000,
      300,
    );
    expect((await exec(again.Id, ['cat', '/data/msg'])).out).toBe('hello\n');
    expect((await exec(again.Id, ['cat', '/fast/f'])).out).toBe('fast\n');
    // The pod goes: its volumes go.
    expect((await api('DELETE', '/v1/namespaces/default/deployments/shared')).status).toBe(200);
    await waitFor('the pod volumes removed', async () => (await podVolumes(podId)).length === 0, 30_000, 300);
  });

  it('a hostPath under an allowed prefix is bound (readOnly respected); anything else is refused with the reason in get pods', async () => {
    writeFileSync(join(allowed, 'from-host.txt'), 'host data\n');
    const ok = deploymentManifest('hostok', {
      replicas: 1,
      pod: { volumes: [{ name: 'h', hostPath: { path: allowed, type: 'Directory' } }] },
      container: { command: ['sleep', '3600'], volumeMounts: [{ name: 'h', mountPath: '/host', readOnly: true }] },
    });
    expect((await api('PUT', '/v1/namespaces/default/deployments/hostok', ok)).status).toBe(201);
    const c = await waitFor('hostok running', running('hostok', 'web'), 30_000, 300);
    expect((await exec(c.Id, ['cat', '/host/from-host.txt'])).out).toBe('host data\n');
    expect((await exec(c.Id, ['touch', '/host/x'])).code).not.toBe(0);
    const bad = deploymentManifest('hostbad', {
      replicas: 1,
      pod: { volumes: [{ name: 'etc', hostPath: { path: '/etc' } }] },
      container: { command: ['sleep', '3600'], volumeMounts: [{ name: 'etc', mountPath: '/host-etc' }] },
    });
    expect((await api('PUT', '/v1/namespaces/default/deployments/hostbad', bad)).status).toBe(201);
    const env = { FLOTILLA_SERVER: server.url, FLOTILLA_TOKEN: admin };
    // The CLI runs as its own process, asynchronously: this process serves the API it calls.
    const getPods = async () => {
      const p = startCli(['get', 'pods', '-o', 'wide'], env);
      await p.exited;
      return p.out();
    };
    const shown = await waitFor(
      'the refusal in get pods',
      async () => {
        const out = await getPods();
        return /hostbad-\S+\s+0\/1\s+FailedMount/.test(out) && out;
      },
      30_000,
      300,
    );
    expect(shown).toContain(`hostPath "/etc" (volume "etc") is not under a path this node allows (${allowed})`);
    expect((await nodeContainers(docker, agent.identity.nodeId)).some((x) => x.Labels[LABELS.workload] === 'hostbad')).toBe(false);
  });

  it('bad mounts are refused at apply with the field path, and nothing is stored', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ volumes: [{ name: 'x', hostPath: { path: 'relative/dir' } }] }, 'spec.template.spec.volumes[0].hostPath.path', /absolute path/],
      [{ volumes: [{ name: 'x', emptyDir: { sizeLimit: 'lots' } }] }, 'spec.template.spec.volumes[0].emptyDir.sizeLimit', /not a size/],
      [{ volumes: [{ name: 'x', emptyDir: {}, hostPath: { path: '/tmp' } }] }, 'spec.template.spec.volumes[0]', /exactly one of/],
    ];
    for (const [pod, path, message] of cases) {
      const r = await api('PUT', '/v1/namespaces/default/deployments/badvol', deploymentManifest('badvol', { replicas: 1, pod }));
      expect(r.status).toBe(422);
      expect(r.body.errors[0].path).toBe(path);
      expect(r.body.errors[0].message).toMatch(message);
    }
    const sub = await api(
      'PUT',
      '/v1/namespaces/default/deployments/badvol',
      deploymentManifest('badvol', { replicas: 1, pod: { volumes: [{ name: 'x', emptyDir: {} }] }, container: { volumeMounts: [{ name: 'x', mountPath: '/x', subPath: '../up' }] } }),
    );
    expect(sub.status).toBe(422);
    expect(sub.body.errors[0].path).toBe('spec.template.spec.containers[0].volumeMounts[0].subPath');
    const undeclared = await api('PUT', '/v1/namespaces/default/deployments/badvol', deploymentManifest('badvol', { replicas: 1, container: { volumeMounts: [{ name: 'nope', mountPath: '/x' }] } }));
    expect(undeclared.status).toBe(422);
    expect(undeclared.body.errors[0].message).toBe('no volume named "nope" in this pod');
    expect((await api('GET', '/v1/namespaces/default/deployments/badvol')).status).toBe(404);
  });
});
