import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../control-plane/config.js';
import { KEEP_ALIVE_MARGIN_MS, type RunningServer, startServer } from '../../control-plane/entry/node.js';
import { FACTS, nodeKeys, testControlPlane } from '../lib/cp.js';
import { libsqlTestDb } from '../lib/db.js';
import { deploymentManifest } from '../lib/fixtures.js';

// The API contract: the OpenAPI document is valid OpenAPI 3.1, names every route the app registers
// (and no route it does not), and real responses over HTTP validate against the schemas it gives
// for their status.

type Doc = { openapi: string; paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>> };

let server: RunningServer;
let dir: string;
let admin: string;
let doc: Doc;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-contract-'));
  server = await startServer({ host: '127.0.0.1', port: 0, dataDir: dir, logger: silentLogger, env: {} });
  admin = readFileSync(server.adminTokenPath, 'utf8').trim();
  const res = await fetch(`${server.url}/v1/openapi.json`, { headers: { authorization: `Bearer ${admin}` } });
  expect(res.status).toBe(200);
  doc = (await res.json()) as Doc;
});
afterAll(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Hono's route paths as the document writes them: `:p` -> `{p}`, `:p{a|b}` -> one path per alternative. */
function documentPaths(honoPath: string): string[] {
  let paths = [''];
  for (const seg of honoPath.split('/').slice(1)) {
    const alt = /^:([A-Za-z]+)\{([^}]+)\}$/.exec(seg);
    const next = alt ? (alt[2] as string).split('|') : [seg.startsWith(':') ? `{${seg.slice(1)}}` : seg];
    paths = paths.flatMap((p) => next.map((n) => `${p}/${n}`));
  }
  return paths;
}

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1', async () => {
    expect(doc.openapi).toBe('3.1.0');
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  it('has every route the app registers, and only those', async () => {
    const t = await libsqlTestDb();
    try {
      const cp = await testControlPlane(t.db);
      const registered = new Set<string>();
      for (const r of cp.app.routes) {
        if (r.method === 'ALL') continue; // middleware
        for (const p of documentPaths(r.path)) registered.add(`${r.method.toLowerCase()} ${p}`);
      }
      const documented = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)));
      expect([...registered].filter((r) => !documented.has(r)).sort(), 'routes missing from the document').toEqual([]);
      expect([...documented].filter((d) => !registered.has(d)).sort(), 'documented routes the app does not have').toEqual([]);
      expect(registered.size).toBeGreaterThan(80);
    } finally {
      await t.close();
    }
  });

  it('gives every operation its auth scheme and error responses as problem documents', () => {
    for (const [path, ops] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(ops) as Array<[string, { security?: unknown[]; responses: Record<string, { content?: Record<string, unknown> }> }]>) {
        expect(op.security, `${method} ${path}`).toBeDefined();
        expect(op.responses.default?.content?.['application/problem+json'], `${method} ${path}`).toBeDefined();
        if ((op.security ?? []).length > 0) expect(op.responses['401'], `${method} ${path}`).toBeDefined();
      }
  });

  it('real responses validate against the document', async () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false, validateSchema: false });
    ajv.addSchema(doc as never, 'api');
    const templates = Object.keys(doc.paths).map((p) => ({ p, re: new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`) }));
    let checked = 0;
    const statuses = new Set<string>();
    const call = async (method: string, path: string, o: { body?: unknown; token?: string; type?: string; headers?: Record<string, string> } = {}) => {
      const res = await fetch(`${server.url}${path}`, {
        method,
        headers: {
          ...(o.token !== '' ? { authorization: `Bearer ${o.token ?? admin}` } : {}),
          ...(o.body !== undefined ? { 'content-type': o.type ?? 'application/json' } : {}),
          ...o.headers,
        },
        ...(o.body !== undefined ? { body: typeof o.body === 'string' ? o.body : JSON.stringify(o.body) } : {}),
      });
      expect(res.headers.get('x-request-id'), `${method} ${path}`).toBeTruthy();
      const pathOnly = path.split('?')[0] as string;
      // The most specific template: fewest parameters.
      const t = templates.filter((x) => x.re.test(pathOnly)).sort((a, b) => (a.p.match(/\{/g)?.length ?? 0) - (b.p.match(/\{/g)?.length ?? 0))[0];
      if (!t && res.status === 404) {
        // No such route: still a problem document.
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        expect(ajv.getSchema('api#/components/schemas/Problem')?.(await res.json())).toBe(true);
        return { status: 404, body: null };
      }
      expect(t, `no documented path for ${pathOnly}`).toBeDefined();
      const op = doc.paths[t?.p as string]?.[method.toLowerCase()];
      expect(op, `${method} ${t?.p} is not documented`).toBeDefined();
      const code = String(res.status);
      const r = op?.responses[code] ?? op?.responses.default;
      expect(op?.responses[code] ?? (res.status >= 500 ? op?.responses.default : undefined), `${method} ${t?.p}: status ${code} is not documented`).toBeDefined();
      const type = (res.headers.get('content-type') ?? '').split(';')[0] as string;
      const text = await res.text();
      if (res.status !== 304) expect(Object.keys(r?.content ?? {}), `${method} ${t?.p} ${code}: content type ${type}`).toContain(type);
      if (type.endsWith('json')) {
        const pointer = ['paths', t?.p as string, method.toLowerCase(), 'responses', op?.responses[code] ? code : 'default', 'content', type, 'schema']
          .map((s) => encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1')))
          .join('/');
        const validate = ajv.getSchema(`api#/${pointer}`);
        expect(validate, pointer).toBeDefined();
        const body = JSON.parse(text);
        const ok = validate?.(body);
        expect(ok, `${method} ${path} -> ${code}: ${JSON.stringify(validate?.errors)}\n${text.slice(0, 500)}`).toBe(true);
        checked++;
        statuses.add(code);
      }
      return { status: res.status, body: type.endsWith('json') ? JSON.parse(text) : text };
    };

    // General.
    await call('GET', '/healthz');
    await call('GET', '/.well-known/jwks.json');
    expect((await call('GET', '/docs', { token: '' })).body).toContain('Flotilla API reference');
    await call('GET', '/v1/nodes', { token: '' }); // 401
    await call('GET', '/v1/nowhere'); // 404, default
    // Tokens.
    const et = await call('POST', '/v1/enrollment-tokens', { body: { uses: 2, ttl: '1h', labels: { site: 'lab' } } });
    expect(et.status).toBe(201);
    await call('GET', '/v1/enrollment-tokens');
    const read = await call('POST', '/v1/api-tokens', { body: { name: 'reader', scope: 'read', namespaces: ['contract'] } });
    await call('GET', '/v1/api-tokens');
    await call('POST', '/v1/api-tokens', { body: { name: 'x', scope: 'root' } }); // 422
    await call('PUT', '/v1/namespaces/contract/deployments/web', { body: deploymentManifest('web', { replicas: 1 }), token: read.body.token }); // 403
    // Workloads, config, services, claims.
    await call('PUT', '/v1/namespaces/contract', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'contract' } } });
    const m = deploymentManifest('web', { replicas: 2 });
    expect((await call('PUT', '/v1/namespaces/contract/deployments/web', { body: m })).status).toBe(201);
    await call('PUT', '/v1/namespaces/contract/deployments/web', { body: m });
    await call('PUT', '/v1/namespaces/contract/deployments/web?dryRun=All', { body: { ...m, spec: { ...m.spec, replicas: 3 } } });
    await call('PUT', '/v1/namespaces/contract/deployments/web', { body: m, headers: { 'if-match': '1' } }); // 409
    await call('PUT', '/v1/namespaces/contract/deployments/web', { body: '{', type: 'application/json' }); // 400
    await call('PUT', '/v1/namespaces/contract/deployments/web', { body: 'x', type: 'text/plain' }); // 415
    await call('POST', '/v1/namespaces/contract/deployments', { body: deploymentManifest('api', { replicas: 1 }) });
    await call('POST', '/v1/namespaces/contract/deployments', { body: deploymentManifest('api', { replicas: 1 }) }); // 409
    await call('GET', '/v1/deployments');
    const list = await call('GET', '/v1/namespaces/contract/deployments?limit=1');
    await call('GET', `/v1/namespaces/contract/deployments?watch=1&resourceVersion=1&timeoutSeconds=0`);
    await call('GET', `/v1/namespaces/contract/pods?watch=1&resourceVersion=${list.body.metadata.resourceVersion}&timeoutSeconds=0`);
    await call('GET', '/v1/namespaces/contract/deployments?labelSelector=app%3D');
    await call('GET', '/v1/namespaces/contract/deployments/web');
    await call('GET', '/v1/namespaces/contract/deployments/nope'); // 404
    await call('PUT', '/v1/namespaces/contract/deployments/web/scale', { body: { spec: { replicas: 1 } } });
    await call('POST', '/v1/namespaces/contract/deployments/web/pause');
    await call('POST', '/v1/namespaces/contract/deployments/web/resume');
    await call('POST', '/v1/namespaces/contract/deployments/web/restart');
    await call('POST', '/v1/namespaces/contract/deployments/web/rollback');
    await call('POST', '/v1/namespaces/contract/deployments/web/promote'); // 409: no canary
    await call('GET', '/v1/namespaces/contract/deployments/web/revisions');
    await call('GET', '/v1/pods');
    const pods = await call('GET', '/v1/namespaces/contract/pods');
    await call('GET', `/v1/namespaces/contract/pods/${pods.body.items[0].metadata.name}`);
    await call('GET', `/v1/namespaces/contract/pods/${pods.body.items[0].metadata.name}/log`); // 409: not on a node
    await call('GET', '/v1/namespaces/contract/events');
    await call('GET', '/v1/events');
    await call('PUT', '/v1/namespaces/contract/configmaps/settings', { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' }, data: { a: 'b' } } });
    await call('PUT', '/v1/namespaces/contract/configmaps/settings', { body: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: c}\n', type: 'application/yaml' });
    await call('GET', '/v1/configmaps');
    await call('GET', '/v1/namespaces/contract/configmaps/settings');
    await call('PUT', '/v1/namespaces/contract/secrets/db', { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, stringData: { p: 'x' } } });
    await call('GET', '/v1/namespaces/contract/secrets/db');
    await call('GET', '/v1/namespaces/contract/secrets');
    await call('PUT', '/v1/namespaces/contract/services/web', { body: { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } } });
    await call('GET', '/v1/services');
    await call('GET', '/v1/namespaces/contract/services/web');
    await call('GET', '/v1/namespaces/contract/services/web/endpoints');
    await call('GET', '/v1/namespaces/contract/endpoints');
    await call('PUT', '/v1/namespaces/contract/persistentvolumeclaims/data', {
      body: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
    });
    await call('GET', '/v1/persistentvolumeclaims');
    await call('DELETE', '/v1/namespaces/contract/persistentvolumeclaims/data');
    await call('DELETE', '/v1/namespaces/contract/services/web?dryRun=All');
    await call('DELETE', '/v1/namespaces/contract/services/web');
    await call('DELETE', '/v1/namespaces/contract/configmaps/settings');
    await call('GET', '/v1/namespaces/contract/metrics/pods');
    await call('GET', '/v1/metrics/pods');
    // A node, over the agent protocol.
    const keys = await nodeKeys();
    const enrolled = await call('POST', '/v1/agent/enroll', { token: '', body: { token: et.body.token, name: 'contract-node', publicKey: keys.publicKey, facts: FACTS } });
    expect(enrolled.status).toBe(201);
    await call('POST', '/v1/agent/enroll', { token: '', body: { token: 'flo_wrong', name: 'x', publicKey: keys.publicKey, facts: FACTS } }); // 401
    const jwt = await keys.sign({ sub: enrolled.body.nodeId, aud: enrolled.body.audience });
    await call('GET', '/v1/agent/desired', { token: jwt });
    await call('POST', '/v1/agent/heartbeat', { token: jwt, body: {} });
    await call('POST', '/v1/agent/metrics', { token: jwt, body: { node: { cpu: 250, memory: 2 ** 30 }, window: 30, pods: [] } });
    await call('POST', '/v1/agent/metrics', { token: jwt, body: { node: { cpu: -1 } } }); // 422
    await call('POST', '/v1/agent/volumes/removed', { token: jwt, body: { volumes: ['flotilla-pvc-x'] } });
    await call('GET', '/v1/metrics/nodes');
    await call('GET', '/v1/nodes');
    await call('GET', '/v1/nodes/contract-node');
    await call('PATCH', '/v1/nodes/contract-node', { body: { labels: { zone: 'a' } } });
    await call('POST', '/v1/nodes/contract-node/cordon');
    await call('POST', '/v1/nodes/contract-node/uncordon');
    await call('POST', '/v1/keys/rotate');
    await call('POST', '/v1/nodes/contract-node/revoke');
    await call('DELETE', '/v1/namespaces/contract/deployments/api');
    await call('DELETE', `/v1/enrollment-tokens/${et.body.id}`);
    await call('DELETE', `/v1/api-tokens/${read.body.id}`);
    await call('GET', '/v1/namespaces');
    await call('GET', '/metrics', {});
    expect(checked).toBeGreaterThan(70);
    expect([...statuses].sort()).toEqual(expect.arrayContaining(['200', '201', '400', '401', '403', '404', '409', '415', '422']));
  });
});

describe('the Node server', () => {
  it('keeps connections between heartbeats, and tells clients to close idle ones 5 s before it does', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const get = () =>
        new Promise<{ headers: http.IncomingHttpHeaders; port: number | undefined }>((resolve, reject) => {
          const req = http.get(`${server.url}/healthz`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve({ headers: res.headers, port: req.socket?.localPort }));
          });
          req.on('error', reject);
        });
      const first = await get();
      // the server waits heartbeat + 15 s; clients (which close at the hint minus 1 s) are told heartbeat + 10 s
      expect(first.headers.connection).toBe('keep-alive');
      expect(first.headers['keep-alive']).toBe(`timeout=${Math.floor((server.deps.config.heartbeatMs + 15_000 - KEEP_ALIVE_MARGIN_MS) / 1000)}`);
      expect((await get()).port).toBe(first.port); // the same connection again
    } finally {
      agent.destroy();
    }
  });
});
