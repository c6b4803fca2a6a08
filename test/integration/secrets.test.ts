import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { AgentClient, ApiFailure } from '../../agent/client.js';
import { signingKeyOf } from '../../agent/identity.js';
import { type Logger, silentLogger } from '../../control-plane/config.js';
import { type RunningServer, startServer } from '../../control-plane/entry/node.js';
import { createApiToken, createEnrollmentToken } from '../../control-plane/store/tokens.js';
import { newMasterKey } from '../../shared/secretbox.js';
import { nodeContainers, removeNodeContainers, requireDocker } from '../lib/docker.js';
import { deploymentManifest } from '../lib/fixtures.js';
import { waitFor } from '../lib/wait.js';

// Secrets and ConfigMaps end to end on one Node control plane and two real agents on the Docker
// engine: stored sealed, never shown by the API, delivered only to the node that runs the pod,
// consumed as env and as files.
const FAST = { reconcileMs: 300, restartBackoffMs: 500, retryBaseMs: 100, retryCapMs: 1000, stopTimeoutSec: 1 };
const PASSWORD = 'hunter2-correct-horse-battery';
const API_KEY = 'ak_live_0123456789abcdef';
let docker: Docker;
let server: RunningServer;
let admin: string;
let dataDir: string;
const dirs: string[] = [];
const agents: Agent[] = [];
const captured: string[] = [];

/** A logger that keeps every entry, at every level, as JSON text (to scan for leaked values). */
function capturingLogger(bindings: object = {}): Logger {
  const write = (level: string) => (obj: object, msg?: string) => {
    captured.push(JSON.stringify({ level, ...bindings, ...obj, msg }));
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error'), child: (b: object) => capturingLogger({ ...bindings, ...b }), isLevelEnabled: () => true };
}

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function api(method: string, path: string, body?: unknown, token = admin) {
  const res = await fetch(new URL(path, server.url), {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  captured.push(text);
  return { status: res.status, body: JSON.parse(text) as any };
}

async function startAgent(name: string): Promise<Agent> {
  const token = (await createEnrollmentToken(server.deps.db, { maxUses: 1, ttlMs: 60_000, labels: {}, now: Date.now() })).token;
  const a = await Agent.start({ server: server.url, dataDir: tmp('flotilla-agent-'), token, name, logger: capturingLogger(), ...FAST });
  agents.push(a);
  return a;
}

const secret = (password: string) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'db' },
  type: 'Opaque',
  data: { password: btoa(password) },
  stringData: { 'api-key': API_KEY },
});

beforeAll(async () => {
  docker = await requireDocker();
  dataDir = tmp('flotilla-cp-');
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    logger: capturingLogger(),
    env: { FLOTILLA_LEASE_TTL: '10s', FLOTILLA_POLL_WAIT: '5s', FLOTILLA_CLOCK_SKEW: '1s' },
  });
  admin = readFileSync(server.adminTokenPath, 'utf8').trim();
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  if (docker)
    await removeNodeContainers(
      docker,
      agents.map((a) => a.identity.nodeId),
    );
  await server?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('Secrets and ConfigMaps', () => {
  it('refuses bad input with the field path and without echoing values; changes nothing', async () => {
    const bad = await api('PUT', '/v1/namespaces/default/secrets/db', { ...secret(PASSWORD), data: { password: 'not base64!' } });
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].path).toBe('data.password');
    const badKey = await api('PUT', '/v1/namespaces/default/configmaps/cfg', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { 'bad/key': 'x' } });
    expect(badKey.status).toBe(422);
    expect(JSON.stringify(badKey.body.errors)).toMatch(/data/);
    const big = await api('PUT', '/v1/namespaces/default/secrets/db', { ...secret(PASSWORD), stringData: { blob: 'x'.repeat(1024 * 1024 + 1) } });
    expect(big.status).toBe(422);
    expect(big.body.errors[0].message).toMatch(/at most 1048576/);
    expect((await api('GET', '/v1/namespaces/default/secrets')).body.items).toEqual([]);
  });

  it('stores a Secret sealed: the database file holds no value; the API shows keys, sizes and version only, also to a read token', async () => {
    const created = await api('PUT', '/v1/namespaces/default/secrets/db', secret(PASSWORD));
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      kind: 'Secret',
      type: 'Opaque',
      version: 1,
      keys: [
        { name: 'api-key', size: API_KEY.length },
        { name: 'password', size: PASSWORD.length },
      ],
    });
    expect(created.body.data).toBeUndefined();
    expect((await api('PUT', '/v1/namespaces/default/secrets/db', secret(PASSWORD))).body.version).toBe(1); // unchanged
    const reader = (await createApiToken(server.deps.db, { name: 'viewer', scope: 'read', namespaces: null, ttlMs: null, now: Date.now() })).token;
    const listed = await api('GET', '/v1/namespaces/default/secrets', undefined, reader);
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((s: any) => s.metadata.name)).toEqual(['db']);
    expect((await api('PUT', '/v1/namespaces/default/secrets/db', secret('x'), reader)).status).toBe(403);
    const db = readFileSync(join(dataDir, 'flotilla.db'));
    for (const v of [PASSWORD, API_KEY, btoa(PASSWORD)]) expect(db.includes(v)).toBe(false);
  });

  it('a pod gets the Secret as env and as files (mode 0400), a ConfigMap as a file; a missing one holds the pod with a clear reason', async () => {
    const agent = await startAgent('sec-a');
    const m = deploymentManifest('app', {
      replicas: 1,
      nodeSelector: { 'kubernetes.io/hostname': 'sec-a' },
      pod: {
        volumes: [
          { name: 'creds', secret: { secretName: 'db' } },
          { name: 'conf', configMap: { name: 'app-config', items: [{ key: 'app.ini', path: 'app.ini' }] } },
        ],
      },
      container: {
        env: [
          { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
          { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'app-config', key: 'mode' } } },
        ],
        envFrom: [{ secretRef: { name: 'db' }, prefix: 'DB_' }],
        volumeMounts: [
          { name: 'creds', mountPath: '/etc/creds' },
          { name: 'conf', mountPath: '/etc/app' },
        ],
      },
    });
    expect((await api('PUT', '/v1/namespaces/default/deployments/app', m)).status).toBe(201);
    // the ConfigMap does not exist yet: Pending with the reason, no container
    const waiting = await waitFor('the pod to wait for its config map', async () => {
      const [p] = (await api('GET', '/v1/namespaces/default/pods')).body.items.filter((x: any) => x.metadata.labels.app === 'app');
      return p?.status.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError' && p;
    });
    expect(waiting.status.phase).toBe('Pending');
    expect(waiting.status.message).toBe('configmap "default/app-config" not found');
    expect(await nodeContainers(docker, agent.identity.nodeId)).toHaveLength(0);
    expect(
      (await api('PUT', '/v1/namespaces/default/configmaps/app-config', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-config' }, data: { mode: 'edge', 'app.ini': '[x]\ny=1\n' } }))
        .status,
    ).toBe(201);
    const [ctr] = await waitFor(
      'the container to run',
      async () => {
        const list = await nodeContainers(docker, agent.identity.nodeId, false);
        return list.length === 1 && list;
      },
      30_000,
    );
    const exec = async (cmd: string[]) => {
      const e = await docker.getContainer(ctr!.Id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
      const stream = await e.start({});
      let out = '';
      for await (const chunk of stream as unknown as AsyncIterable<Buffer>) out += chunk.subarray(8).toString();
      return out;
    };
    const env = await exec(['env']);
    expect(env).toContain(`DB_PASSWORD=${PASSWORD}`);
    expect(env).toContain(`DB_api-key=${API_KEY}`);
    expect(env).toContain('MODE=edge');
    expect(await exec(['cat', '/etc/creds/password'])).toBe(PASSWORD);
    expect(await exec(['cat', '/etc/app/app.ini'])).toBe('[x]\ny=1\n');
    expect((await exec(['ls', '-lL', '/etc/creds/password'])).slice(0, 10)).toBe('-r--------');
    const events = (await api('GET', '/v1/namespaces/default/events')).body.items as any[];
    expect(events.some((e) => e.reason === 'SecretDelivered' && e.message === 'secret db@1 delivered to node sec-a')).toBe(true);
    const shown = await api('GET', '/v1/namespaces/default/secrets/db');
    expect(shown.body.usedBy).toEqual(['deployment/app']);
  });

  it('an update reaches the pods without rebuilding: mounted files change in place, env consumers are rolled', async () => {
    const agent = agents[0] as Agent;
    const filer = deploymentManifest('filer', {
      replicas: 1,
      nodeSelector: { 'kubernetes.io/hostname': 'sec-a' },
      pod: { volumes: [{ name: 'creds', secret: { secretName: 'db', defaultMode: 0o440 } }] },
      container: { volumeMounts: [{ name: 'creds', mountPath: '/etc/creds' }] },
    });
    expect((await api('PUT', '/v1/namespaces/default/deployments/filer', filer)).status).toBe(201);
    const containerOf = async (app: string) => (await nodeContainers(docker, agent.identity.nodeId, false)).find((c) => c.Labels['dev.flotilla.workload'] === app);
    const exec = async (id: string, cmd: string[]) => {
      const e = await docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
      let out = '';
      for await (const chunk of (await e.start({})) as unknown as AsyncIterable<Buffer>) out += chunk.subarray(8).toString();
      return out;
    };
    const filerCtr = await waitFor('filer running', () => containerOf('filer'), 30_000);
    expect(await exec(filerCtr.Id, ['cat', '/etc/creds/password'])).toBe(PASSWORD);
    const appBefore = (await containerOf('app'))?.Id as string;
    const NEW = 'rotated-pass-42';
    const updated = await api('PUT', '/v1/namespaces/default/secrets/db', secret(NEW));
    expect(updated.body.version).toBe(2);
    // files: same container, new content
    await waitFor('the mounted file to change in place', async () => (await exec(filerCtr.Id, ['cat', '/etc/creds/password'])) === NEW, 30_000, 300);
    expect((await containerOf('filer'))?.Id).toBe(filerCtr.Id);
    expect((await exec(filerCtr.Id, ['ls', '-lL', '/etc/creds/password'])).slice(0, 10)).toBe('-r--r-----');
    // env: the workload got a new revision; its new pod has the new value
    const app = (await api('GET', '/v1/namespaces/default/deployments/app')).body;
    // revision 2 came when the missing ConfigMap it reads appeared, 3 with the new Secret
    expect(app.metadata.annotations['deployment.kubernetes.io/revision']).toBe('3');
    expect(app.spec.template.metadata.annotations['flotilla.dev/config-versions']).toBe('ConfigMap/app-config@1,Secret/db@2');
    const appAfter = await waitFor(
      'app replaced',
      async () => {
        const c = await containerOf('app');
        return c && c.Id !== appBefore && (await nodeContainers(docker, agent.identity.nodeId, false)).filter((x) => x.Labels['dev.flotilla.workload'] === 'app').length === 1 && c;
      },
      60_000,
      300,
    );
    expect(await exec(appAfter.Id, ['sh', '-c', 'echo $DB_PASSWORD'])).toBe(`${NEW}\n`);
    const events = (await api('GET', '/v1/namespaces/default/events')).body.items as any[];
    expect(events.some((e) => e.reason === 'ConfigUpdated' && /Secret\/db@2/.test(e.message))).toBe(true);
  });

  it('a node without a lease for the pod is refused its secrets (403)', async () => {
    const other = await startAgent('sec-b');
    const [pod] = (await api('GET', '/v1/namespaces/default/pods')).body.items.filter((x: any) => x.metadata.labels.app === 'app');
    // ask as the other node, over the real protocol, with its own key (what a compromised or curious agent could do)
    const client = new AgentClient(server.url, other.identity.nodeId, other.identity.audience, await signingKeyOf(other.identity));
    const err = await client.podConfig(pod.metadata.uid).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiFailure);
    expect((err as ApiFailure).status).toBe(403);
    const body = (err as Error).message;
    captured.push(body);
    expect(body).toMatch(/no live lease/);
  });

  it('no API response, log entry (control plane and agents, debug level), lease or desired state captured in this file carries a secret value', async () => {
    for (const a of agents) captured.push(readFileSync(join((a as unknown as { opts: { dataDir: string } }).opts.dataDir, 'desired.json'), 'utf8'));
    expect(captured.some((c) => c.includes('"lease"'))).toBe(true);
    expect(captured.some((c) => c.includes('"level":"debug"'))).toBe(true);
    const all = captured.join('\n');
    for (const v of [PASSWORD, API_KEY, btoa(PASSWORD), 'rotated-pass-42', btoa('rotated-pass-42')]) expect(all.includes(v)).toBe(false);
  });
});

describe('the master key', () => {
  it('a control plane started with another key refuses to start with one line, and changes nothing', async () => {
    const before = readFileSync(join(dataDir, 'flotilla.db'));
    const other = startServer({ host: '127.0.0.1', port: 0, dataDir, logger: silentLogger, env: { FLOTILLA_SECRET_KEY: newMasterKey() } });
    await expect(other).rejects.toThrow(/is not the key the stored secrets are sealed under .*refusing to start/);
    expect(readFileSync(join(dataDir, 'secret.key'), 'utf8').trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(before.length).toBeGreaterThan(0);
  });

  it('rotation: with the old key as previous, rotate-secrets re-seals everything; then the old key can go, and alone it no longer opens anything', async () => {
    const dir = tmp('flotilla-rotate-');
    const [keyA, keyB] = [newMasterKey(), newMasterKey()];
    const start = (env: Record<string, string>) => startServer({ host: '127.0.0.1', port: 0, dataDir: dir, logger: silentLogger, env });
    const call = async (s: RunningServer, method: string, path: string, body?: unknown) => {
      const token = readFileSync(s.adminTokenPath, 'utf8').trim();
      const res = await fetch(new URL(path, s.url), { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
      return { status: res.status, outcome: res.headers.get('flotilla-outcome'), body: (await res.json()) as any };
    };
    const s1 = await start({ FLOTILLA_SECRET_KEY: keyA });
    expect((await call(s1, 'PUT', '/v1/namespaces/default/secrets/db', secret(PASSWORD))).status).toBe(201);
    await s1.close();
    const s2 = await start({ FLOTILLA_SECRET_KEY: keyB, FLOTILLA_SECRET_KEY_PREVIOUS: keyA });
    // still readable under the previous key: an identical apply is recognised as unchanged
    expect((await call(s2, 'PUT', '/v1/namespaces/default/secrets/db', secret(PASSWORD))).outcome).toBe('unchanged');
    const rotated = await call(s2, 'POST', '/v1/keys/rotate-secrets');
    expect(rotated.body).toMatchObject({ resealed: 1, remaining: 0, kid: s2.deps.secrets?.kid });
    await s2.close();
    const s3 = await start({ FLOTILLA_SECRET_KEY: keyB });
    expect((await call(s3, 'PUT', '/v1/namespaces/default/secrets/db', secret(PASSWORD))).outcome).toBe('unchanged');
    expect((await call(s3, 'PUT', '/v1/namespaces/default/secrets/db', secret('changed'))).body.version).toBe(2);
    await s3.close();
    await expect(start({ FLOTILLA_SECRET_KEY: keyA })).rejects.toThrow(/refusing to start/);
  });
});
