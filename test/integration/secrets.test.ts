import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
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
import { execIn, nodeContainers, removeNodeContainers, requireDocker } from '../lib/docker.js';
import { deploymentManifest } from '../lib/fixtures.js';
import { startRegistry } from '../lib/registry.js';
import { waitFor } from '../lib/wait.js';

// Secrets and ConfigMaps end to end on one Node control plane and two real agents on the Docker
// engine: stored sealed, never shown by the API, delivered only to the node that runs the pod,
// consumed as env and as files.
const FAST = { reconcileMs: 300, restartBackoffMs: 500, retryBaseMs: 100, retryCapMs: 1000, stopTimeoutSec: 1 };
const PASSWORD = 'hunter2-correct-horse-battery';
const API_KEY = 'ak_live_0123456789abcdef';
const REGISTRY_PASSWORD = 'registry-pass-5150';
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
    const exec = async (cmd: string[]) => (await execIn(docker, ctr!.Id, cmd)).out;
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
    const exec = async (id: string, cmd: string[]) => (await execIn(docker, id, cmd)).out;
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

  it("pulls a private image with the credentials of a dockerconfigjson Secret; without usable ones the pull fails with the registry's reason", async () => {
    const agent = agents[0] as Agent;
    const registry = await startRegistry({ user: 'puller', password: REGISTRY_PASSWORD });
    const config = tmp('flotilla-docker-config-');
    const cli = (...args: string[]) => execFileSync('docker', ['--config', config, ...args], { stdio: 'pipe', input: REGISTRY_PASSWORD });
    const [withCreds, without] = [`${registry.host}/private/busybox:with`, `${registry.host}/private/busybox:without`];
    try {
      cli('login', registry.host, '--username', 'puller', '--password-stdin');
      for (const ref of [withCreds, without]) {
        cli('tag', 'local/busybox:1', ref);
        cli('push', ref);
        cli('rmi', ref); // the engine must pull it
      }
      rmSync(config, { recursive: true, force: true }); // the engine never uses the CLI's login
      const dockerConfig = JSON.stringify({ auths: { [registry.host]: { username: 'puller', password: REGISTRY_PASSWORD } } });
      const cred = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'regcred' }, type: 'kubernetes.io/dockerconfigjson', stringData: { '.dockerconfigjson': dockerConfig } };
      expect((await api('PUT', '/v1/namespaces/default/secrets/regcred', cred)).status).toBe(201);
      const on = { nodeSelector: { 'kubernetes.io/hostname': 'sec-a' } };
      // A pull secret that does not exist: a warning, and the pull goes without credentials (refused).
      const bad = deploymentManifest('nocred', { replicas: 1, image: without, ...on, pod: { imagePullSecrets: [{ name: 'missing' }] } });
      expect((await api('PUT', '/v1/namespaces/default/deployments/nocred', bad)).status).toBe(201);
      const failed = await waitFor('the pull without credentials to fail', async () => {
        const [p] = (await api('GET', '/v1/namespaces/default/pods')).body.items.filter((x: any) => x.metadata.labels.app === 'nocred');
        return p?.status.reason === 'ErrImagePull' && p;
      });
      expect(failed.status.message).toMatch(/unauthorized|authentication required|no basic auth credentials/i);
      const events = (await api('GET', '/v1/namespaces/default/events')).body.items as any[];
      expect(events.find((e) => e.reason === 'FailedToRetrieveImagePullSecret')?.message).toMatch(/secret "default\/missing" not found; attempting to pull the image without them/);
      const good = deploymentManifest('withcred', { replicas: 1, image: withCreds, ...on, pod: { imagePullSecrets: [{ name: 'regcred' }] } });
      expect((await api('PUT', '/v1/namespaces/default/deployments/withcred', good)).status).toBe(201);
      const running = await waitFor(
        'the private image to run',
        async () => (await nodeContainers(docker, agent.identity.nodeId, false)).find((c) => c.Labels['dev.flotilla.workload'] === 'withcred'),
        60_000,
        300,
      );
      expect(running.Image).toBe(withCreds);
      for (const name of ['nocred', 'withcred']) await api('DELETE', `/v1/namespaces/default/deployments/${name}`);
      await waitFor(
        'their containers gone',
        async () => (await nodeContainers(docker, agent.identity.nodeId)).every((c) => !['nocred', 'withcred'].includes(c.Labels['dev.flotilla.workload'] ?? '')),
        30_000,
        300,
      );
    } finally {
      for (const ref of [withCreds, without])
        await docker
          .getImage(ref)
          .remove()
          .catch(() => undefined);
      registry.stop();
    }
  });

  it('offline: a pod is recreated with its secrets from the copy sealed on the device while the control plane is down; the copy holds no value in clear', async () => {
    const old = agents[0] as Agent;
    const agentDir = (old as unknown as { opts: { dataDir: string } }).opts.dataDir;
    const keeper = deploymentManifest('keeper', {
      kind: 'DaemonSet',
      nodeSelector: { 'kubernetes.io/hostname': 'sec-a' },
      pod: { volumes: [{ name: 'creds', secret: { secretName: 'db' } }] },
      container: { env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }], volumeMounts: [{ name: 'creds', mountPath: '/etc/creds' }] },
    });
    expect((await api('PUT', '/v1/namespaces/default/daemonsets/keeper', keeper)).status).toBe(201);
    const keeperCtr = async () => (await nodeContainers(docker, old.identity.nodeId, false)).find((c) => c.Labels['dev.flotilla.workload'] === 'keeper');
    await waitFor('keeper running', keeperCtr, 30_000, 300);
    const [pod] = (await api('GET', '/v1/namespaces/default/pods')).body.items.filter((x: any) => x.metadata.labels.app === 'keeper');
    const sealed = join(agentDir, 'podconfig', `${pod.metadata.uid}.sealed`);
    await waitFor('the sealed copy', () => existsSync(sealed), 10_000);
    expect(statSync(sealed).mode & 0o777).toBe(0o600);
    expect(statSync(join(agentDir, 'device.key')).mode & 0o777).toBe(0o600);
    captured.push(readFileSync(sealed, 'utf8')); // scanned for values by the next test
    // The control plane goes away; the device reboots (containers and tmpfs gone); the agent starts again.
    await old.stop();
    const port = Number(new URL(server.url).port);
    await server.close();
    await removeNodeContainers(docker, [old.identity.nodeId]);
    rmSync(`/dev/shm/flotilla-${old.identity.nodeId}`, { recursive: true, force: true });
    const again = await Agent.start({ server: server.url, dataDir: agentDir, logger: capturingLogger(), firstPollWaitMs: 500, ...FAST });
    agents[0] = again;
    const back = await waitFor('keeper back without the control plane', keeperCtr, 30_000, 300);
    const exec = async (cmd: string[]) => (await execIn(docker, back.Id, cmd)).out;
    expect(await exec(['sh', '-c', 'echo $DB_PASSWORD'])).toBe('rotated-pass-42\n');
    expect(await exec(['cat', '/etc/creds/password'])).toBe('rotated-pass-42');
    expect(captured.some((c) => c.includes('using the sealed copy of the pod config kept on this device'))).toBe(true);
    // The control plane returns on the same address: the agent carries on, and the copy goes with the pod.
    server = await startServer({ host: '127.0.0.1', port, dataDir, logger: capturingLogger(), env: { FLOTILLA_LEASE_TTL: '10s', FLOTILLA_POLL_WAIT: '5s', FLOTILLA_CLOCK_SKEW: '1s' } });
    await waitFor(
      'keeper reported Running again',
      async () => (await api('GET', '/v1/namespaces/default/pods')).body.items.some((x: any) => x.metadata.labels.app === 'keeper' && x.status.phase === 'Running'),
      30_000,
      300,
    );
    await api('DELETE', '/v1/namespaces/default/daemonsets/keeper');
    await waitFor('the sealed copy removed with the pod', () => !existsSync(sealed), 30_000, 300);
  });

  it('no API response, log entry (control plane and agents, debug level), lease or desired state captured in this file carries a secret value', async () => {
    for (const a of agents) captured.push(readFileSync(join((a as unknown as { opts: { dataDir: string } }).opts.dataDir, 'desired.json'), 'utf8'));
    expect(captured.some((c) => c.includes('"lease"'))).toBe(true);
    expect(captured.some((c) => c.includes('"level":"debug"'))).toBe(true);
    const all = captured.join('\n');
    for (const v of [PASSWORD, API_KEY, btoa(PASSWORD), 'rotated-pass-42', btoa('rotated-pass-42'), REGISTRY_PASSWORD, btoa(REGISTRY_PASSWORD)]) expect(all.includes(v)).toBe(false);
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
