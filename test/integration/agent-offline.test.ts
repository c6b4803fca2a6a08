import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { silentLogger } from '../../control-plane/config.js';
import { type RunningServer, startServer } from '../../control-plane/entry/node.js';
import { createEnrollmentToken } from '../../control-plane/store/tokens.js';
import { nodeContainers, removeNodeContainers, requireDocker } from '../lib/docker.js';
import { deploymentManifest } from '../lib/fixtures.js';
import { freePort } from '../lib/registry.js';
import { waitFor } from '../lib/wait.js';

// Offline autonomy: the agent restarts while the control plane is down, and the control plane comes back.
const TTL = '15s';
const FAST = { reconcileMs: 300, restartBackoffMs: 500, retryBaseMs: 100, retryCapMs: 500, stopTimeoutSec: 1, firstPollWaitMs: 1000 };
let docker: Docker;
let port: number;
let cpDir: string;
let agentDir: string;
let server: RunningServer | null = null;
let agent: Agent | null = null;

const start = () => startServer({ host: '127.0.0.1', port, dataDir: cpDir, logger: silentLogger, env: { FLOTILLA_LEASE_TTL: TTL, FLOTILLA_POLL_WAIT: '2s', FLOTILLA_CLOCK_SKEW: '1s' } });

async function api(method: string, path: string, body?: unknown) {
  const token = readFileSync(join(cpDir, 'admin.token'), 'utf8').trim();
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as any };
}

beforeAll(async () => {
  docker = await requireDocker();
  port = await freePort();
  cpDir = mkdtempSync(join(tmpdir(), 'flotilla-cp-'));
  agentDir = mkdtempSync(join(tmpdir(), 'flotilla-agent-'));
  server = await start();
});

afterAll(async () => {
  await agent?.stop();
  if (docker && agent) await removeNodeContainers(docker, [agent.identity.nodeId]);
  await server?.close();
  rmSync(cpDir, { recursive: true, force: true });
  rmSync(agentDir, { recursive: true, force: true });
});

describe('an agent restarted while the control plane is down', () => {
  it('keeps its containers under still-valid leases, then carries on when the control plane returns', async () => {
    const token = (await createEnrollmentToken(server!.deps.db, { maxUses: 1, ttlMs: 60_000, labels: {}, now: Date.now() })).token;
    agent = await Agent.start({ server: `http://127.0.0.1:${port}`, dataDir: agentDir, token, name: 'offline-1', logger: silentLogger, ...FAST });
    expect((await api('PUT', '/v1/namespaces/default/deployments/steady', deploymentManifest('steady', { replicas: 1 }))).status).toBe(201);
    await waitFor('the pod to run', async () => (await api('GET', '/v1/namespaces/default/pods')).body.items[0]?.status.phase === 'Running');
    const before = (await nodeContainers(docker, agent.identity.nodeId)).map((c) => c.Id);
    expect(before).toHaveLength(1);

    // The control plane goes away; the agent restarts without it (its leases are still valid).
    await server!.close();
    server = null;
    await agent.stop();
    agent = await Agent.start({ server: `http://127.0.0.1:${port}`, dataDir: agentDir, logger: silentLogger, ...FAST });
    await new Promise((r) => setTimeout(r, 2000)); // past the first-poll wait: it reconciles from its cache
    const offline = await nodeContainers(docker, agent.identity.nodeId, false);
    expect(offline.map((c) => c.Id)).toEqual(before);

    // The control plane returns on the same address and database: leases are renewed, nothing restarts.
    server = await start();
    await new Promise((r) => setTimeout(r, 15_000)); // longer than the lease TTL: only renewal keeps it running
    const after = await nodeContainers(docker, agent.identity.nodeId, false);
    expect(after.map((c) => c.Id)).toEqual(before);
    const pod = (await api('GET', '/v1/namespaces/default/pods')).body.items[0];
    expect(pod.status.phase).toBe('Running');
    expect(pod.status.containerStatuses[0].restartCount).toBe(0);
    expect((await api('DELETE', '/v1/namespaces/default/deployments/steady')).status).toBe(200);
    await waitFor('the container to go', async () => (await nodeContainers(docker, agent!.identity.nodeId)).length === 0, 30_000);
  }, 90_000);
});
