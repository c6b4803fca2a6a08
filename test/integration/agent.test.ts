import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { decodeJwt, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../../agent/agent.js';
import { networkName } from '../../agent/runtime.js';
import { silentLogger } from '../../control-plane/config.js';
import { type RunningServer, startServer } from '../../control-plane/entry/node.js';
import { createEnrollmentToken } from '../../control-plane/store/tokens.js';
import { LABELS } from '../../shared/protocol.js';
import { nodeContainers, removeNodeContainers, requireDocker } from '../lib/docker.js';
import { deploymentManifest } from '../lib/fixtures.js';
import { freePort, startRegistry } from '../lib/registry.js';
import { waitFor } from '../lib/wait.js';

const FAST = { reconcileMs: 300, restartBackoffMs: 500, retryBaseMs: 100, retryCapMs: 1000, stopTimeoutSec: 1 };
let docker: Docker;
let registry: Awaited<ReturnType<typeof startRegistry>>;
let server: RunningServer;
let admin: string;
const dirs: string[] = [];
const agents: Agent[] = [];
const nodeIds: string[] = [];

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** An operator request to the suite's control plane, or to `cp` (a test's own). */
async function api(method: string, path: string, body?: unknown, cp: RunningServer = server) {
  const token = cp === server ? admin : readFileSync(cp.adminTokenPath, 'utf8').trim();
  const res = await fetch(new URL(path, cp.url), {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function startAgent(name: string, dataDir: string, serverUrl = server.url, withToken = true, more: Partial<AgentOptions> = {}): Promise<Agent> {
  const token = withToken ? await enrollmentToken(server) : undefined;
  const a = await Agent.start({ server: serverUrl, dataDir, token, name, logger: silentLogger, ...FAST, ...more });
  agents.push(a);
  nodeIds.push(a.identity.nodeId);
  return a;
}

/** A one-use enrollment token of `cp`. */
async function enrollmentToken(cp: RunningServer): Promise<string> {
  return (await createEnrollmentToken(cp.deps.db, { maxUses: 1, ttlMs: 60_000, labels: {}, now: Date.now() })).token;
}

/** An agent enrolled with a test's own control plane `cp`, talking to it at `serverUrl` (a relay in front, say); the test stops it. */
async function enrolledAgent(cp: RunningServer, name: string, serverUrl = cp.url, more: Partial<AgentOptions> = {}): Promise<Agent> {
  return Agent.start({ server: serverUrl, dataDir: tmp('flotilla-agent-'), token: await enrollmentToken(cp), name, logger: silentLogger, ...FAST, ...more });
}

/** A relay's request sent on to the control plane at `upstream`; `out`: the headers to answer with. */
async function forward(req: IncomingMessage, upstream: string): Promise<{ up: Response; out: Record<string, string> }> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'content-length', 'connection'].includes(k))) as Record<string, string>;
  const up = await fetch(new URL(req.url ?? '/', upstream), { method: req.method, headers, ...(chunks.length ? { body: Buffer.concat(chunks) } : {}) });
  const etag = up.headers.get('etag');
  return { up, out: { 'content-type': up.headers.get('content-type') ?? 'application/json', ...(etag ? { etag } : {}) } };
}

async function podsOf(deployment: string) {
  return ((await api('GET', '/v1/namespaces/default/pods')).body.items as any[]).filter((p) => p.metadata.ownerReferences[0].name === deployment);
}

beforeAll(async () => {
  docker = await requireDocker();
  registry = await startRegistry();
  // Push the test image to the loopback registry, then drop the local copy so the agent must pull it.
  const ref = `${registry.host}/flotilla-test/busybox:1`;
  execFileSync('docker', ['tag', 'local/busybox:1', ref]);
  execFileSync('docker', ['push', '-q', ref], { stdio: 'ignore' });
  execFileSync('docker', ['rmi', ref], { stdio: 'ignore' });
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir: tmp('flotilla-cp-'),
    logger: silentLogger,
    env: { FLOTILLA_LEASE_TTL: '10s', FLOTILLA_POLL_WAIT: '5s', FLOTILLA_CLOCK_SKEW: '1s' },
  });
  admin = (await import('node:fs')).readFileSync(server.adminTokenPath, 'utf8').trim();
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  if (docker) await removeNodeContainers(docker, nodeIds);
  await server?.close();
  registry?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('agent on a real Docker engine', () => {
  let dataDir: string;
  let agent: Agent;
  let firstIds: string[] = [];

  it('pulls from a private registry on loopback, runs labelled containers and publishes their ports on 127.0.0.1', async () => {
    dataDir = tmp('flotilla-agent-');
    agent = await startAgent('rt-1', dataDir);
    const image = `${registry.host}/flotilla-test/busybox:1`;
    const m = deploymentManifest('pulled', { replicas: 2, image, nodeSelector: { 'kubernetes.io/hostname': 'rt-1' } });
    expect((await api('PUT', '/v1/namespaces/default/deployments/pulled', m)).status).toBe(201);
    const pods = await waitFor('two running pods', async () => {
      const p = await podsOf('pulled');
      return p.length === 2 && p.every((x) => x.status.phase === 'Running' && x.status.hostPorts.length === 1) && p;
    });
    for (const p of pods) {
      const hp = p.status.hostPorts[0];
      expect(hp.hostIP).toBe('127.0.0.1');
      expect(await waitFor('HTTP', async () => (await fetch(`http://127.0.0.1:${hp.hostPort}/`)).text(), 10_000, 100)).toBe('v1\n');
      expect(p.spec.nodeName).toBe('rt-1');
    }
    const containers = await nodeContainers(docker, agent.identity.nodeId);
    expect(containers).toHaveLength(2);
    for (const c of containers) {
      expect(c.Labels[LABELS.managed]).toBe('true');
      expect(pods.map((p) => p.metadata.uid)).toContain(c.Labels[LABELS.pod]);
      expect(c.Labels[LABELS.digest]).toMatch(/^[0-9a-f]{64}$/);
      expect(c.Labels[LABELS.epoch]).toBe('1');
    }
    const events = (await api('GET', '/v1/namespaces/default/events')).body.items as any[];
    expect(events.some((e) => e.reason === 'Pulled' && e.message.includes(image))).toBe(true);
    firstIds = containers.map((c) => c.Id).sort();
  });

  it('adopts its containers after its own restart: no duplicate, no restart', async () => {
    await agent.stop();
    agents.splice(agents.indexOf(agent), 1);
    agent = await Agent.start({ server: server.url, dataDir, logger: silentLogger, ...FAST });
    agents.push(agent);
    // let several reconcile passes and a poll happen
    await new Promise((r) => setTimeout(r, 2000));
    const now = await nodeContainers(docker, agent.identity.nodeId);
    expect(now.map((c) => c.Id).sort()).toEqual(firstIds);
    expect(now.every((c) => c.State === 'running')).toBe(true);
    const pods = await podsOf('pulled');
    expect(pods.every((p) => p.status.containerStatuses[0].restartCount === 0)).toBe(true);
  });

  it('after a key rotation, fetches the new key and runs pods under leases it signed', async () => {
    const rotated = await api('POST', '/v1/keys/rotate');
    expect(rotated.status).toBe(200);
    expect((await api('PUT', '/v1/namespaces/default/deployments/after-rotation', deploymentManifest('after-rotation', { nodeSelector: { 'kubernetes.io/hostname': 'rt-1' } }))).status).toBe(201);
    await waitFor('the pod to run under the new key', async () => (await podsOf('after-rotation'))[0]?.status.phase === 'Running');
    const jwks = JSON.parse((await import('node:fs')).readFileSync(join(dataDir, 'jwks.json'), 'utf8')) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).toContain(rotated.body.kid);
    // pods started under the old key keep running: the old key stays published
    expect((await podsOf('pulled')).every((p) => p.status.phase === 'Running')).toBe(true);
    expect((await api('DELETE', '/v1/namespaces/default/deployments/after-rotation')).status).toBe(200);
    await waitFor('its container to go', async () => (await nodeContainers(docker, agent.identity.nodeId)).length === 2, 30_000);
  });

  it('never touches containers it did not create', async () => {
    const foreign = await docker.createContainer({ Image: 'local/busybox:1', Cmd: ['sleep', '300'], Labels: { [LABELS.managed]: 'true', [LABELS.node]: 'some-other-node', [LABELS.pod]: 'x' } });
    const plain = await docker.createContainer({ Image: 'local/busybox:1', Cmd: ['sleep', '300'] });
    await foreign.start();
    await plain.start();
    try {
      await new Promise((r) => setTimeout(r, 1500));
      expect((await foreign.inspect()).State.Running).toBe(true);
      expect((await plain.inspect()).State.Running).toBe(true);
    } finally {
      await foreign.remove({ force: true });
      await plain.remove({ force: true });
    }
  });

  it('pulls the image of a new revision before it stops the old pod: with Recreate the gap is the container start, not the download', async () => {
    const ref2 = `${registry.host}/flotilla-test/busybox:2`;
    execFileSync('docker', ['tag', 'local/busybox:2', ref2]);
    execFileSync('docker', ['push', '-q', ref2], { stdio: 'ignore' });
    execFileSync('docker', ['rmi', ref2], { stdio: 'ignore' });
    const manifest = (image: string) => {
      const d = deploymentManifest('pre', { replicas: 1, image, nodeSelector: { 'kubernetes.io/hostname': 'rt-1' } }) as any;
      d.spec.strategy = { type: 'Recreate' };
      return d;
    };
    const serving = (body: string) =>
      waitFor(
        `the pre pod serving ${body.trim()}`,
        async () => {
          const [p] = (await podsOf('pre')).filter((x) => x.status.phase === 'Running' && x.status.hostPorts.length === 1);
          if (!p) return false;
          const r = await fetch(`http://127.0.0.1:${p.status.hostPorts[0].hostPort}/`).catch(() => null);
          return r !== null && (await r.text()) === body;
        },
        60_000,
        200,
      );
    expect((await api('PUT', '/v1/namespaces/default/deployments/pre', manifest('local/busybox:1'))).status).toBe(201);
    await serving('v1\n');
    const since = Date.now();
    expect((await api('PUT', '/v1/namespaces/default/deployments/pre', manifest(ref2))).status).toBe(200);
    await serving('v2\n');
    const stream = (await docker.getEvents({ since: Math.floor(since / 1000) - 1, until: Math.ceil(Date.now() / 1000) + 1 })) as unknown as NodeJS.ReadableStream;
    let text = '';
    for await (const chunk of stream) text += chunk.toString();
    const events = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { Type: string; Action: string; timeNano: number; Actor: { ID: string; Attributes: Record<string, string> } });
    const pulled = events.find((e) => e.Type === 'image' && e.Action === 'pull' && e.Actor.ID.includes('flotilla-test/busybox:2'));
    const died = events.find((e) => e.Type === 'container' && e.Action === 'die' && e.Actor.Attributes[LABELS.workload] === 'pre');
    expect(pulled, 'the new image was pulled').toBeDefined();
    expect(died, 'the old container stopped').toBeDefined();
    expect(pulled!.timeNano).toBeLessThan(died!.timeNano);
    expect((await api('DELETE', '/v1/namespaces/default/deployments/pre')).status).toBe(200);
    execFileSync('docker', ['rmi', '-f', ref2], { stdio: 'ignore' });
  });

  it('removes every container of a deleted deployment', async () => {
    expect((await api('DELETE', '/v1/namespaces/default/deployments/pulled')).status).toBe(200);
    await waitFor('containers to be removed', async () => (await nodeContainers(docker, agent.identity.nodeId)).length === 0, 30_000);
    await waitFor('pods to be forgotten', async () => (await podsOf('pulled')).length === 0, 15_000);
  });
});

describe('node revocation', () => {
  it('a revoked node loses its credentials at once and stops its containers when its leases lapse', async () => {
    const a = await startAgent('rev-1', tmp('flotilla-agent-'));
    expect((await api('PUT', '/v1/namespaces/default/deployments/revoked', deploymentManifest('revoked', { nodeSelector: { 'kubernetes.io/hostname': 'rev-1' } }))).status).toBe(201);
    await waitFor('the pod to run', async () => (await podsOf('revoked'))[0]?.status.phase === 'Running');
    const revokedAt = Date.now();
    expect((await api('POST', '/v1/nodes/rev-1/revoke')).status).toBe(200);
    // lease TTL is 10 s here: the agent, refused by the control plane, stops the container when the lease lapses
    await waitFor('the container to stop', async () => (await nodeContainers(docker, a.identity.nodeId, false)).length === 0, 20_000);
    expect(Date.now() - revokedAt).toBeLessThan(10_000 + 5000);
    const nodes = (await api('GET', '/v1/nodes')).body.items as any[];
    expect(nodes.map((n) => n.metadata.name)).not.toContain('rev-1');
    await api('DELETE', '/v1/namespaces/default/deployments/revoked');
  });
});

describe('lease verification on the agent', () => {
  let proxy: Server;

  afterAll(() => proxy?.close());

  it('refuses a lease that fails verification: logged as an event, container not started', async () => {
    // A man in the middle that re-signs every lease with its own key under the real key id.
    const attacker = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const port = await freePort();
    proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
      tamper(req, res).catch(() => {
        // The control plane went away (the suite's end) while a long-poll was relayed.
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
    });
    const tamper = async (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'content-length', 'connection'].includes(k))) as Record<string, string>;
      const up = await fetch(new URL(req.url ?? '/', server.url), { method: req.method, headers, ...(chunks.length ? { body: Buffer.concat(chunks) } : {}) });
      let body = Buffer.from(await up.arrayBuffer());
      if (req.url?.startsWith('/v1/agent/desired') && up.status === 200) {
        const state = JSON.parse(body.toString());
        for (const p of state.pods) {
          const claims = decodeJwt(p.lease);
          const kid = JSON.parse(Buffer.from(p.lease.split('.')[0], 'base64url').toString()).kid;
          p.lease = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid }).sign(attacker.privateKey);
        }
        body = Buffer.from(JSON.stringify(state));
      }
      res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json', ...(up.headers.get('etag') ? { etag: up.headers.get('etag') as string } : {}) });
      res.end(body);
    };
    await new Promise<void>((r) => proxy.listen(port, '127.0.0.1', () => r()));
    const victim = await startAgent('mitm', tmp('flotilla-agent-'), `http://127.0.0.1:${port}`);
    expect((await api('PUT', '/v1/namespaces/default/deployments/tampered', deploymentManifest('tampered', { nodeSelector: { 'kubernetes.io/hostname': 'mitm' } }))).status).toBe(201);
    const events = await waitFor('a LeaseRejected event', async () => {
      const evs = ((await api('GET', '/v1/namespaces/default/events')).body.items as any[]).filter((e) => e.reason === 'LeaseRejected');
      return evs.length > 0 && evs;
    });
    expect(events[0].message).toMatch(/signature/);
    const pod = (await podsOf('tampered'))[0];
    await waitFor('the pod to report the refusal', async () => (await podsOf('tampered'))[0]?.status.reason === 'LeaseRejected');
    expect(pod.status.phase).not.toBe('Running');
    expect(await nodeContainers(docker, victim.identity.nodeId)).toHaveLength(0);
    await api('DELETE', '/v1/namespaces/default/deployments/tampered');
  });
});

describe('leases racing between a poll and a heartbeat', () => {
  let relay: Server;

  afterAll(() => relay?.close());

  it('keeps the later lease when a poll answered before a renewal arrives after it: the pod is not stopped at the older expiry', async () => {
    // A relay that holds the first desired state listing the pod until a heartbeat has renewed the
    // pod's lease, then delivers that older answer; after that it strips renewals from heartbeats
    // (and keeps the old lease in any poll) until past the older expiry. An agent that took the
    // polled lease would stop the container before that expiry.
    const port = await freePort();
    let held: { res: ServerResponse; status: number; body: string; headers: Record<string, string> } | null = null;
    let podId: string | null = null;
    let stale: { token: string; exp: number } | null = null;
    let stripUntil = 0;
    relay = createServer((req: IncomingMessage, res: ServerResponse) => {
      relayed(req, res).catch(() => {
        // The control plane went away (the suite's end): the agent sees a failed request.
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
    });
    const relayed = async (req: IncomingMessage, res: ServerResponse) => {
      const { up, out } = await forward(req, server.url);
      let body = await up.text();
      if (req.url?.startsWith('/v1/agent/desired') && up.status === 200) {
        const state = JSON.parse(body) as { pods: Array<{ id: string; lease: string }> };
        const pod = state.pods[0];
        if (pod && !stale) {
          podId = pod.id;
          stale = { token: pod.lease, exp: decodeJwt(pod.lease).exp as number };
          held = { res, status: up.status, body, headers: out };
          return;
        }
        if (pod && stale && Date.now() < stripUntil) {
          pod.lease = stale.token;
          body = JSON.stringify(state);
        }
      }
      if (req.url?.startsWith('/v1/agent/heartbeat') && up.status === 200) {
        const hb = JSON.parse(body) as { leases: Record<string, string> };
        if (held && podId && hb.leases[podId]) {
          res.writeHead(up.status, out);
          res.end(body);
          const h = held;
          held = null;
          stripUntil = (stale as { exp: number }).exp * 1000 + 1500;
          h.res.writeHead(h.status, h.headers);
          h.res.end(h.body);
          return;
        }
        if (Date.now() < stripUntil) body = JSON.stringify({ ...hb, leases: {} });
      }
      res.writeHead(up.status, out);
      res.end(body);
    };
    await new Promise<void>((r) => relay.listen(port, '127.0.0.1', () => r()));
    const racer = await startAgent('racer', tmp('flotilla-agent-'), `http://127.0.0.1:${port}`);
    expect((await api('PUT', '/v1/namespaces/default/deployments/raced', deploymentManifest('raced', { nodeSelector: { 'kubernetes.io/hostname': 'racer' } }))).status).toBe(201);
    await waitFor('the stale poll to be delivered', () => stripUntil > 0, 30_000);
    const running = await waitFor('the pod running on the racing node', async () => {
      const cs = await nodeContainers(docker, racer.identity.nodeId, false);
      return cs.length === 1 && cs[0];
    });
    // Until past the older lease's expiry: the same container, running all along.
    while (Date.now() < stripUntil) {
      const cs = await nodeContainers(docker, racer.identity.nodeId, true);
      expect(cs.map((c) => `${c.Id.slice(0, 12)} ${c.State}`)).toEqual([`${running.Id.slice(0, 12)} running`]);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect((await podsOf('raced'))[0]?.status.containerStatuses?.[0]?.restartCount ?? 0).toBe(0);
    await api('DELETE', '/v1/namespaces/default/deployments/raced');
  }, 60_000);
});

describe('without long-poll (as on Workers)', () => {
  let quiet: RunningServer | undefined;
  let relay: Server | undefined;
  let agent: Agent | undefined;

  afterAll(async () => {
    await agent?.stop();
    if (agent) await removeNodeContainers(docker, [agent.identity.nodeId]);
    relay?.close();
    await quiet?.close();
  });

  it("polls only when a heartbeat's answer shows a new desired version: one request per heartbeat, and a pod still arrives", async () => {
    // A control plane that answers polls at once; a relay in front counts the agent's requests.
    quiet = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: tmp('flotilla-cp-'),
      logger: silentLogger,
      env: { FLOTILLA_LEASE_TTL: '6s', FLOTILLA_POLL_WAIT: '0s', FLOTILLA_CLOCK_SKEW: '1s' },
    });
    const cp = quiet;
    const seen = { polls: 0, heartbeats: 0 };
    const port = await freePort();
    relay = createServer((req, res) => {
      (async () => {
        if (req.method === 'GET' && req.url?.startsWith('/v1/agent/desired')) seen.polls++;
        if (req.url?.startsWith('/v1/agent/heartbeat')) seen.heartbeats++;
        const { up, out } = await forward(req, cp.url);
        res.writeHead(up.status, out);
        res.end(Buffer.from(await up.arrayBuffer()));
      })().catch(() => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
    });
    await new Promise<void>((r) => relay?.listen(port, '127.0.0.1', () => r()));
    const a = await enrolledAgent(cp, 'quiet', `http://127.0.0.1:${port}`);
    agent = a;
    // Heartbeats every TTL/6 (1 s here): over several of them, no poll (nothing changed).
    await waitFor('the first heartbeats', () => seen.heartbeats >= 2, 15_000, 50);
    const from = { ...seen };
    await waitFor('five more heartbeats', () => seen.heartbeats >= from.heartbeats + 5, 30_000, 50);
    expect(seen.polls - from.polls).toBe(0);
    // A pod for this node: the next heartbeat shows the new version, the agent polls and runs it.
    expect((await api('PUT', '/v1/namespaces/default/deployments/hushed', deploymentManifest('hushed', { nodeSelector: { 'kubernetes.io/hostname': 'quiet' } }), cp)).status).toBe(201);
    await waitFor('the pod running on the quiet node', async () => (await nodeContainers(docker, a.identity.nodeId, false)).length === 1, 30_000);
    expect(seen.polls - from.polls).toBeGreaterThanOrEqual(1);
  });
});

describe("a namespace's network on a node", () => {
  it('outlives the last pod of the namespace for networkIdleMs: a pod arriving meanwhile joins it; then it goes', async () => {
    const idleMs = 4000;
    const a = await startAgent('netkeep', tmp('flotilla-agent-'), server.url, true, { networkIdleMs: idleMs });
    const name = networkName(a.identity.nodeId, 'kept');
    const m = deploymentManifest('keeper', { namespace: 'kept', nodeSelector: { 'kubernetes.io/hostname': 'netkeep' } });
    const networkId = async () => (await docker.listNetworks({ filters: { name: [name] } })).find((n) => n.Name === name)?.Id;
    const runOnce = async () => {
      expect((await api('PUT', '/v1/namespaces/kept/deployments/keeper', m)).status).toBeLessThan(300);
      const c = await waitFor('the pod running', async () => (await nodeContainers(docker, a.identity.nodeId, false))[0], 30_000);
      expect(Object.keys(c.NetworkSettings.Networks)).toEqual([name]);
      expect((await api('DELETE', '/v1/namespaces/kept/deployments/keeper')).status).toBe(200);
      await waitFor('its container removed', async () => (await nodeContainers(docker, a.identity.nodeId)).length === 0, 30_000, 50);
      return c.NetworkSettings.Networks[name]?.NetworkID;
    };
    const first = await runOnce();
    expect(first).toBeTruthy();
    // No container left, and the network is still there (the agent forgets the pod after the removal).
    expect(await networkId()).toBe(first);
    // The namespace's next pod, within the idle time, joins the same network.
    expect(await runOnce()).toBe(first);
    const gone = Date.now();
    await new Promise((r) => setTimeout(r, idleMs / 2));
    expect(await networkId()).toBe(first);
    await waitFor('the network removed once unused for networkIdleMs', async () => (await networkId()) === undefined, 30_000, 100);
    expect(Date.now() - gone).toBeGreaterThanOrEqual(idleMs / 2);
  });
});

describe('stopping a pod', () => {
  it("takes the pod's terminationGracePeriodSeconds, and does not hold up a pod applied meanwhile on the same node", async () => {
    // The agent's own grace (30 s) is not what a pod that sets one gets.
    const a = await startAgent('graceful', tmp('flotilla-agent-'), server.url, true, { stopTimeoutSec: 30 });
    const on = { 'kubernetes.io/hostname': 'graceful' };
    // PID 1 ignores SIGTERM: only the SIGKILL at the end of the grace period ends it.
    const stubborn = { name: 'web', image: 'local/busybox:1', command: ['sh', '-c', 'trap "" TERM; while true; do sleep 0.2; done'] };
    const slow = deploymentManifest('slowstop', { nodeSelector: on, containers: [stubborn], pod: { terminationGracePeriodSeconds: 6 } });
    expect((await api('PUT', '/v1/namespaces/default/deployments/slowstop', slow)).status).toBe(201);
    const old = await waitFor('the stubborn pod running', async () => (await nodeContainers(docker, a.identity.nodeId, false)).find((c) => c.Labels[LABELS.workload] === 'slowstop'), 30_000);
    expect(old.Labels[LABELS.grace]).toBe('6');
    const t0 = Date.now();
    expect((await api('DELETE', '/v1/namespaces/default/deployments/slowstop')).status).toBe(200);
    expect((await api('PUT', '/v1/namespaces/default/deployments/quick', deploymentManifest('quick', { nodeSelector: on }))).status).toBe(201);
    const stillStopping = await waitFor(
      'the new pod running',
      async () => {
        const cs = await nodeContainers(docker, a.identity.nodeId);
        const quick = cs.find((c) => c.Labels[LABELS.workload] === 'quick' && c.State === 'running');
        return quick && { old: cs.find((c) => c.Id === old.Id)?.State ?? 'gone' };
      },
      30_000,
      100,
    );
    // It started while the other pod was still inside its grace period.
    expect(stillStopping.old).toBe('running');
    await waitFor('the stubborn container removed', async () => !(await nodeContainers(docker, a.identity.nodeId)).some((c) => c.Id === old.Id), 40_000, 100);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(5_500);
    expect(took).toBeLessThan(20_000);
    expect((await api('DELETE', '/v1/namespaces/default/deployments/quick')).status).toBe(200);
  });
});

describe("the engine's events", () => {
  it('a killed container is restarted at once, without waiting for the periodic reconcile pass', async () => {
    // A control plane whose leases are renewed only every 20-25 s, and an agent whose periodic pass
    // is a minute apart: only the engine's `die` event can bring the pass that restarts the container.
    const slow = await startServer({ host: '127.0.0.1', port: 0, dataDir: tmp('flotilla-cp-'), logger: silentLogger, env: { FLOTILLA_LEASE_TTL: '60s', FLOTILLA_POLL_WAIT: '5s' } });
    const a = await enrolledAgent(slow, 'evented', slow.url, { reconcileMs: 60_000 });
    nodeIds.push(a.identity.nodeId);
    try {
      expect((await api('PUT', '/v1/namespaces/default/deployments/evented', deploymentManifest('evented', { nodeSelector: { 'kubernetes.io/hostname': 'evented' } }), slow)).status).toBe(201);
      const first = await waitFor('the pod running', async () => (await nodeContainers(docker, a.identity.nodeId, false))[0], 30_000);
      // Past the agent's first passes (its first renewal, status reports): then kill it.
      await new Promise((r) => setTimeout(r, 1000));
      await docker.getContainer(first.Id).kill();
      const killedAt = Date.now();
      const next = await waitFor('a new container running', async () => (await nodeContainers(docker, a.identity.nodeId, false)).find((c) => c.Id !== first.Id), 15_000, 50);
      expect(next.Labels[LABELS.restarts]).toBe('1');
      // Well inside the minute of the periodic pass and the 20 s of the next renewal.
      expect(Date.now() - killedAt).toBeLessThan(10_000);
    } finally {
      await a.stop();
      await removeNodeContainers(docker, [a.identity.nodeId]);
      await slow.close();
    }
  });
});
