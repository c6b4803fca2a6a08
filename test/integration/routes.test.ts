import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FACTS, nodeKeys, testControlPlane } from '../lib/cp.js';
import { libsqlTestDb, type TestDb } from '../lib/db.js';
import { deploymentManifest } from '../lib/fixtures.js';

let t: TestDb;
let cp: Awaited<ReturnType<typeof testControlPlane>>;

beforeAll(async () => {
  t = await libsqlTestDb();
  cp = await testControlPlane(t.db, { maxBodyBytes: 64 * 1024 });
});
afterAll(async () => t?.close());

async function problem(res: Response) {
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  return (await res.json()) as { type: string; status: number; detail: string; errors?: Array<{ path: string; message: string }> };
}

async function countDeployments(): Promise<number> {
  const r = await cp.req('GET', '/v1/deployments');
  return ((await r.json()) as { items: unknown[] }).items.length;
}

async function enrollmentToken(uses = 1, ttl = '1h'): Promise<string> {
  const r = await cp.req('POST', '/v1/enrollment-tokens', { uses, ttl, labels: { site: 'lab' } });
  expect(r.status).toBe(201);
  return ((await r.json()) as { token: string }).token;
}

async function enroll(name: string, token: string) {
  const keys = await nodeKeys();
  const res = await cp.app.request('/v1/agent/enroll', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token, name, publicKey: keys.publicKey, facts: FACTS }),
  });
  return { res, keys };
}

async function enrolledNode(name: string) {
  const { res, keys } = await enroll(name, await enrollmentToken());
  expect(res.status).toBe(201);
  const body = (await res.json()) as { nodeId: string; audience: string; issuer: string };
  const jwt = (o: { iat?: number; exp?: number } = {}) => keys.sign({ sub: body.nodeId, aud: body.audience, ...o });
  const agent = async (method: string, path: string, token?: string, body2?: unknown) =>
    cp.app.request(path, {
      method,
      headers: { authorization: `Bearer ${token ?? (await jwt())}`, ...(body2 ? { 'content-type': 'application/json' } : {}) },
      ...(body2 ? { body: JSON.stringify(body2) } : {}),
    });
  return { ...body, keys, jwt, agent };
}

describe('operator authentication and authorisation', () => {
  it('serves /healthz and the JWKS without credentials, everything else needs a token', async () => {
    expect((await cp.app.request('/healthz')).status).toBe(200);
    expect((await cp.app.request('/.well-known/jwks.json')).status).toBe(200);
    const r = await cp.app.request('/v1/nodes');
    expect(r.status).toBe(401);
    expect((await problem(r)).type).toMatch(/unauthenticated$/);
    expect((await cp.req('GET', '/v1/nodes', undefined, { token: 'flo_wrong' })).status).toBe(401);
  });

  it('enforces scopes and namespace limits, and a revoked token stops working', async () => {
    const mk = async (body: unknown) => (await (await cp.req('POST', '/v1/api-tokens', body)).json()) as { token: string; id: string };
    const read = await mk({ name: 'viewer', scope: 'read' });
    const deployer = await mk({ name: 'team-a', scope: 'deploy', namespaces: ['team-a'] });
    expect((await cp.req('GET', '/v1/namespaces/default/pods', undefined, { token: read.token })).status).toBe(200);
    const denied = await cp.req('PUT', '/v1/namespaces/default/deployments/web', deploymentManifest('web'), { token: read.token });
    expect(denied.status).toBe(403);
    expect((await cp.req('POST', '/v1/enrollment-tokens', { uses: 1 }, { token: read.token })).status).toBe(403);
    expect((await cp.req('PUT', '/v1/namespaces/default/deployments/web', deploymentManifest('web'), { token: deployer.token })).status).toBe(403);
    expect((await cp.req('PUT', '/v1/namespaces/team-a/deployments/web', deploymentManifest('web'), { token: deployer.token })).status).toBe(201);
    expect((await cp.req('DELETE', `/v1/api-tokens/${deployer.id}`)).status).toBe(200);
    expect((await cp.req('GET', '/v1/namespaces/team-a/pods', undefined, { token: deployer.token })).status).toBe(401);
    expect((await cp.req('DELETE', '/v1/namespaces/team-a/deployments/web')).status).toBe(200);
  });

  it('never lists token values or hashes', async () => {
    const text = await (await cp.req('GET', '/v1/api-tokens')).text();
    expect(text).not.toMatch(/flo_|hash/);
    await enrollmentToken();
    const text2 = await (await cp.req('GET', '/v1/enrollment-tokens')).text();
    expect(text2).not.toMatch(/fle_|hash/);
  });
});

describe('bad input changes nothing', () => {
  it.each([
    ['malformed JSON', '{"apiVersion":', 'application/json', 400, /malformed JSON/],
    ['malformed YAML', 'kind: [Deployment', 'application/yaml', 400, /malformed YAML/],
    ['a wrong content type', 'hello', 'text/plain', 415, /unsupported content type/],
    ['an unknown kind', JSON.stringify({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'web' } }), 'application/json', 422, /unsupported kind/],
  ])('rejects %s', async (_what, body, type, status, detail) => {
    const before = await countDeployments();
    const r = await cp.req('PUT', '/v1/namespaces/default/deployments/web', body, { type });
    expect(r.status).toBe(status);
    expect((await problem(r)).detail).toMatch(detail);
    expect(await countDeployments()).toBe(before);
  });

  it('names the path of an unknown field and of an invalid name', async () => {
    const d = deploymentManifest('web') as Record<string, unknown> & { spec: { template: { spec: { containers: Array<Record<string, unknown>> } } } };
    (d.spec.template.spec.containers[0] as Record<string, unknown>).securityContext = { privileged: true };
    const r = await cp.req('PUT', '/v1/namespaces/default/deployments/web', d);
    expect(r.status).toBe(422);
    expect((await problem(r)).errors).toEqual([{ path: 'spec.template.spec.containers[0].securityContext', message: 'unknown or unsupported field' }]);
    const r2 = await cp.req('PUT', '/v1/namespaces/default/deployments/Bad_Name', deploymentManifest('Bad_Name'));
    expect((await problem(r2)).errors?.[0]?.path).toBe('metadata.name');
    const r3 = await cp.req('GET', '/v1/namespaces/Not_A_Namespace/pods');
    expect(r3.status).toBe(422);
    expect(await countDeployments()).toBe(0);
  });

  it('refuses bodies over the size limit with 413', async () => {
    const d = deploymentManifest('big') as { metadata: Record<string, unknown> };
    d.metadata.annotations = { big: 'x'.repeat(70 * 1024) };
    const r = await cp.req('PUT', '/v1/namespaces/default/deployments/big', d);
    expect(r.status).toBe(413);
    expect((await problem(r)).type).toMatch(/too-large$/);
    expect(await countDeployments()).toBe(0);
  });
});

describe('enrollment', () => {
  it('accepts a token up to its uses; the next enrollment is refused with 401 and creates no node', async () => {
    const token = await enrollmentToken(2);
    expect((await enroll('e1', token)).res.status).toBe(201);
    expect((await enroll('e2', token)).res.status).toBe(201);
    const third = await enroll('e3', token);
    expect(third.res.status).toBe(401);
    expect((await problem(third.res)).detail).toMatch(/used up/);
    const nodes = (await (await cp.req('GET', '/v1/nodes')).json()) as { items: Array<{ metadata: { name: string; labels: Record<string, string> } }> };
    expect(nodes.items.map((n) => n.metadata.name)).toEqual(expect.arrayContaining(['e1', 'e2']));
    expect(nodes.items.map((n) => n.metadata.name)).not.toContain('e3');
    expect(nodes.items.find((n) => n.metadata.name === 'e1')?.metadata.labels.site).toBe('lab');
  });

  it('refuses an expired token and a name already taken', async () => {
    const token = await enrollmentToken(1, '1s');
    cp.advance(2000);
    expect((await enroll('late', token)).res.status).toBe(401);
    const r = await enroll('e1', await enrollmentToken());
    expect(r.res.status).toBe(409);
  });
});

describe('agent authentication', () => {
  it('accepts a JWT signed by the node key', async () => {
    const n = await enrolledNode('good');
    expect((await n.agent('GET', '/v1/agent/desired')).status).toBe(200);
  });

  it('refuses forged, expired, alg:none, wrong-audience, over-long and other-node JWTs', async () => {
    const n = await enrolledNode('victim');
    const other = await enrolledNode('other');
    const nowS = Math.floor(cp.now() / 1000);
    const attacker = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA' })
      .setSubject(n.nodeId)
      .setAudience(n.audience)
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + 60)
      .sign(attacker.privateKey);
    const none = new UnsecuredJWT({})
      .setSubject(n.nodeId)
      .setAudience(n.audience)
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + 60)
      .encode();
    const expired = await n.jwt({ iat: nowS - 200, exp: nowS - 100 });
    const wrongAud = await n.keys.sign({ sub: n.nodeId, aud: 'flotilla:someone-else:agents' });
    const tooLong = await n.jwt({ iat: nowS, exp: nowS + 3600 });
    const otherNode = await other.keys.sign({ sub: n.nodeId, aud: n.audience }); // node B's key claiming to be node A
    for (const token of [forged, none, expired, wrongAud, tooLong, otherNode, 'not-a-jwt']) {
      const r = await n.agent('GET', '/v1/agent/desired', token);
      expect(r.status).toBe(401);
    }
    // an operator token is not an agent credential, and an agent JWT is not an operator token
    expect((await n.agent('GET', '/v1/agent/desired', (await import('../lib/cp.js')).ADMIN)).status).toBe(401);
    expect((await cp.req('GET', '/v1/nodes', undefined, { token: await n.jwt() })).status).toBe(401);
  });

  it('a node that stops renewing turns NotReady after the grace period, and Ready again when it returns', async () => {
    const n = await enrolledNode('quiet');
    const ready = async () => ((await (await cp.req('GET', '/v1/nodes/quiet')).json()) as { status: { conditions: Array<{ status: string }> } }).status.conditions[0]!.status;
    expect(await ready()).toBe('True');
    cp.advance(cp.deps.config.nodeGraceMs + 1000);
    expect(await ready()).toBe('Unknown');
    expect((await n.agent('POST', '/v1/agent/heartbeat', await n.jwt({ iat: Math.floor(cp.now() / 1000) }), {})).status).toBe(200);
    expect(await ready()).toBe('True');
  });

  it('a revoked node is refused at its next request', async () => {
    const n = await enrolledNode('doomed');
    expect((await n.agent('GET', '/v1/agent/desired')).status).toBe(200);
    expect((await cp.req('POST', '/v1/nodes/doomed/revoke')).status).toBe(200);
    const r = await n.agent('GET', '/v1/agent/desired');
    expect(r.status).toBe(401);
    expect((await problem(r)).detail).toMatch(/revoked/);
  });
});

describe('leases', () => {
  it('hands a node signed leases for its pods that verify against the JWKS, with the fencing claims', async () => {
    const n = await enrolledNode('runner');
    const r0 = await cp.req('PUT', '/v1/namespaces/default/deployments/leased', deploymentManifest('leased', { nodeSelector: { 'kubernetes.io/hostname': 'runner' } }));
    expect(r0.status).toBe(201);
    const res = await n.agent('GET', '/v1/agent/desired');
    const state = (await res.json()) as { pods: Array<{ id: string; specDigest: string; epoch: number; lease: string }> };
    expect(state.pods).toHaveLength(1);
    const pod = state.pods[0]!;
    const jwks = (await (await cp.app.request('/.well-known/jwks.json')).json()) as { keys: Array<{ kid: string }> };
    const header = decodeProtectedHeader(pod.lease);
    const key = jwks.keys.find((k) => k.kid === header.kid);
    expect(key).toBeDefined();
    const { payload } = await jwtVerify(pod.lease, await importJWK(key as never, 'EdDSA'), { currentDate: new Date(cp.now()) });
    expect(payload).toMatchObject({ node: n.nodeId, aud: n.nodeId, pod: pod.id, digest: pod.specDigest, epoch: 1, policy: 'stop', ns: 'default', workload: 'leased' });
    expect(payload.exp as number).toBeGreaterThan(cp.now() / 1000);
    expect(payload.exp as number).toBeLessThanOrEqual((cp.now() + cp.deps.config.leaseTtlMs) / 1000);
    // ETag: unchanged desired state is a 304
    const etag = res.headers.get('etag')!;
    const r304 = await cp.app.request('/v1/agent/desired', { headers: { authorization: `Bearer ${await n.jwt()}`, 'if-none-match': etag } });
    expect(r304.status).toBe(304);
    // A poll never renews (so a 304 never leaves renewed leases undelivered): past the renewal
    // period it is still a 304 and the database keeps the old expiry; the heartbeat renews and
    // carries the new leases.
    const renewedAt = cp.now();
    cp.advance(cp.deps.config.renewPeriodMs * 1.25);
    const iat = Math.floor(cp.now() / 1000);
    const unrenewed = await cp.app.request('/v1/agent/desired', { headers: { authorization: `Bearer ${await n.jwt({ iat })}`, 'if-none-match': etag } });
    expect(unrenewed.status).toBe(304);
    const stale = (await (await cp.app.request('/v1/agent/desired', { headers: { authorization: `Bearer ${await n.jwt({ iat })}` } })).json()) as { pods: Array<{ lease: string }> };
    expect(decodeJwt(stale.pods[0]!.lease).exp).toBe((renewedAt + cp.deps.config.leaseTtlMs) / 1000);
    const hb = (await (await n.agent('POST', '/v1/agent/heartbeat', undefined, {})).json()) as { leases: Record<string, string> };
    expect(decodeJwt(hb.leases[pod.id]!).exp).toBe((cp.now() + cp.deps.config.leaseTtlMs) / 1000);
  });

  it('without long-poll, heartbeats answer with the current desired version, so agents poll only on a change', async () => {
    // This control plane has no long-poll (as on Workers): each heartbeat carries the node's version
    // as stored, not as cached, and how long an agent may go without polling all the same.
    const n = await enrolledNode('pollster');
    const first = await n.agent('GET', '/v1/agent/desired');
    expect(first.status).toBe(200);
    const state = (await first.json()) as { version: string; pollWaitMs: number };
    expect(state.pollWaitMs).toBe(0);
    const beat = async () => (await (await n.agent('POST', '/v1/agent/heartbeat', undefined, {})).json()) as { desiredVersion: string; pollIntervalMs?: number };
    const hb = await beat();
    expect(hb.desiredVersion).toBe(state.version);
    expect(hb.pollIntervalMs).toBe(5 * 60_000); // FLOTILLA_POLL_INTERVAL's default
    // A pod for this node bumps its version in the database; the next heartbeat says so (the node
    // directory's cached copy still has the old one), and the poll it prompts returns the pod.
    await cp.req('PUT', '/v1/namespaces/default/deployments/polled', deploymentManifest('polled', { nodeSelector: { 'kubernetes.io/hostname': 'pollster' } }));
    await cp.settle();
    const changed = (await beat()).desiredVersion;
    expect(Number(changed)).toBeGreaterThan(Number(state.version));
    const next = await n.agent('GET', '/v1/agent/desired', undefined);
    const polled = (await next.json()) as { version: string; pods: Array<{ name: string }> };
    expect(polled.version).toBe(changed);
    expect(polled.pods.map((p) => p.name)).toEqual([expect.stringMatching(/^polled-/)]);
    expect((await beat()).desiredVersion).toBe(changed);
    expect((await cp.req('DELETE', '/v1/namespaces/default/deployments/polled')).status).toBe(200);
  });

  it('renews leases at most once per renewal period, and a heartbeat between renewals writes nothing', async () => {
    const n = await enrolledNode('beater');
    await cp.req('PUT', '/v1/namespaces/default/deployments/beat', deploymentManifest('beat', { nodeSelector: { 'kubernetes.io/hostname': 'beater' } }));
    const lastSeen = async () => ((await (await cp.req('GET', '/v1/nodes/beater')).json()) as { status: { conditions: Array<{ lastHeartbeatTime: string }> } }).status.conditions[0]!.lastHeartbeatTime;
    const before = await lastSeen();
    cp.advance(1000);
    const hb1 = (await (await n.agent('POST', '/v1/agent/heartbeat', undefined, {})).json()) as { leases: Record<string, string> };
    expect(hb1.leases).toEqual({});
    expect(await lastSeen()).toBe(before);
    cp.advance(cp.deps.config.renewPeriodMs * 1.25); // renewals are spread between TTL/3 and 5/12 TTL per node
    const hb2 = (await (await n.agent('POST', '/v1/agent/heartbeat', undefined, {})).json()) as { leases: Record<string, string> };
    const leases = Object.values(hb2.leases);
    expect(leases).toHaveLength(1);
    expect(decodeJwt(leases[0]!).exp).toBe((cp.now() + cp.deps.config.leaseTtlMs) / 1000);
    expect(await lastSeen()).not.toBe(before);
  });

  it('ignores status reports for a pod from a node that does not hold its current epoch', async () => {
    const a = await enrolledNode('holder');
    const b = await enrolledNode('intruder');
    await cp.req('PUT', '/v1/namespaces/default/deployments/fenced', deploymentManifest('fenced', { nodeSelector: { 'kubernetes.io/hostname': 'holder' } }));
    const state = (await (await a.agent('GET', '/v1/agent/desired')).json()) as { pods: Array<{ id: string; name: string }> };
    const pod = state.pods[0]!;
    const report = { pods: [{ podId: pod.id, epoch: 1, phase: 'Running', ready: true, containers: [] }] };
    expect((await b.agent('POST', '/v1/agent/heartbeat', undefined, report)).status).toBe(200);
    const seen = (await (await cp.req('GET', `/v1/namespaces/default/pods/${pod.name}`)).json()) as { status: { phase: string } };
    expect(seen.status.phase).toBe('Pending');
    await a.agent('POST', '/v1/agent/heartbeat', undefined, report);
    const seen2 = (await (await cp.req('GET', `/v1/namespaces/default/pods/${pod.name}`)).json()) as { status: { phase: string } };
    expect(seen2.status.phase).toBe('Running');
  });

  it('key rotation: the new key signs at once, the old key stays published until its leases have expired', async () => {
    const before = (await (await cp.app.request('/.well-known/jwks.json')).json()) as { keys: Array<{ kid: string }> };
    const rot = (await (await cp.req('POST', '/v1/keys/rotate')).json()) as { kid: string };
    const after = (await (await cp.app.request('/.well-known/jwks.json')).json()) as { keys: Array<{ kid: string }> };
    expect(after.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([...before.keys.map((k) => k.kid), rot.kid]));
    const n = await enrolledNode('rotated');
    await cp.req('PUT', '/v1/namespaces/default/deployments/rot', deploymentManifest('rot', { nodeSelector: { 'kubernetes.io/hostname': 'rotated' } }));
    const state = (await (await n.agent('GET', '/v1/agent/desired')).json()) as { pods: Array<{ lease: string }> };
    expect(decodeProtectedHeader(state.pods[0]!.lease).kid).toBe(rot.kid);
    cp.advance(cp.deps.config.leaseTtlMs + cp.deps.config.clockSkewMs + 1000);
    const later = (await (await cp.app.request('/.well-known/jwks.json')).json()) as { keys: Array<{ kid: string }> };
    expect(later.keys.map((k) => k.kid)).toEqual([rot.kid]);
    const pub = await exportJWK((await generateKeyPair('EdDSA', { crv: 'Ed25519' })).publicKey);
    expect(later.keys.some((k) => JSON.stringify(k) === JSON.stringify(pub))).toBe(false);
  });
});
