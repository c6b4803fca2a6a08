import { Hono } from 'hono';
import { invalid, notFound } from '../../shared/errors.js';
import { canSeeNamespace, requireScope } from '../auth/operator.js';
import type { AppEnv, Deps } from '../context.js';
import { applyService, deleteService, endpointsOf, endpointsVersion, getService, listServices, type ServiceEndpoints, type ServiceRow, type ServiceSpec, serviceConsumers } from '../store/services.js';
import { ns, who, workloadBody } from './workloads.js';

/** Why a service has no ready endpoints, in words (undefined when it has some). */
function endpointsMessage(e: ServiceEndpoints): string | undefined {
  const spec = e.service.spec as ServiceSpec;
  const sel = Object.entries(spec.selector ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  if (!sel) return 'the service has no selector, so it has no endpoints';
  if (e.matched === 0) return `the selector ${sel} matches no running pod in namespace ${e.service.namespace}`;
  const ready = e.ports.some((p) => p.addresses.some((a) => a.ready));
  if (ready) return undefined;
  const any = e.ports.some((p) => p.addresses.length > 0);
  return any ? `${e.matched} pod(s) match ${sel} but none is ready` : `${e.matched} pod(s) match ${sel} but none serves the target port (${spec.ports.map((p) => p.targetPort ?? p.port).join(', ')})`;
}

export function renderService(e: ServiceEndpoints) {
  const r = e.service;
  const spec = r.spec as ServiceSpec;
  const ready = new Set(e.ports.flatMap((p) => p.addresses.filter((a) => a.ready).map((a) => a.pod)));
  const message = endpointsMessage(e);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: r.name,
      namespace: r.namespace,
      uid: r.id,
      labels: r.labels,
      annotations: r.annotations,
      resourceVersion: String(r.version),
      creationTimestamp: new Date(r.createdAt).toISOString(),
    },
    spec: { ...spec, clusterIP: r.clusterIp },
    status: { readyEndpoints: ready.size, matchedPods: e.matched, ...(message ? { message } : {}) },
  };
}

/**
 * Endpoints in Kubernetes' shape. Each pod serves on its own published host port, so each pod is its
 * own subset (its address with the service's ports as published for it); ready pods in `addresses`,
 * the others in `notReadyAddresses`. `metadata.resourceVersion` is a content hash: equal if and only
 * if the endpoints are, which is what a watch compares.
 */
export function renderEndpoints(e: ServiceEndpoints) {
  const byPod = new Map<string, { ip: string; nodeName: string; ready: boolean; ports: { name?: string; port: number; protocol: 'TCP' }[] }>();
  for (const p of e.ports)
    for (const a of p.addresses) {
      const s = byPod.get(a.pod) ?? { ip: a.ip, nodeName: a.nodeName, ready: a.ready, ports: [] };
      s.ports.push({ ...(p.name ? { name: p.name } : {}), port: a.port, protocol: 'TCP' });
      byPod.set(a.pod, s);
    }
  const message = endpointsMessage(e);
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: e.service.name, namespace: e.service.namespace, resourceVersion: endpointsVersion(e) },
    subsets: [...byPod.entries()].map(([pod, s]) => ({
      [s.ready ? 'addresses' : 'notReadyAddresses']: [{ ip: s.ip, nodeName: s.nodeName, targetRef: { kind: 'Pod', namespace: e.service.namespace, name: pod } }],
      ports: s.ports,
    })),
    ...(message ? { message } : {}),
  };
}

async function withEndpoints(deps: Deps, rows: readonly ServiceRow[]) {
  return endpointsOf(deps.db, rows, deps.clock(), deps.config.nodeGraceMs);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((res) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      res();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

export const serviceRoutes = new Hono<AppEnv>()
  .get('/services', async (c) => {
    requireScope(c.var.principal, 'read');
    const rows = (await listServices(c.var.deps.db)).filter((r) => canSeeNamespace(c.var.principal, r.namespace));
    return c.json({ apiVersion: 'v1', kind: 'ServiceList', items: (await withEndpoints(c.var.deps, rows)).map(renderService) });
  })
  .get('/namespaces/:ns/services', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const rows = await listServices(c.var.deps.db, namespace);
    return c.json({ apiVersion: 'v1', kind: 'ServiceList', items: (await withEndpoints(c.var.deps, rows)).map(renderService) });
  })
  .get('/namespaces/:ns/endpoints', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const rows = await listServices(c.var.deps.db, namespace);
    return c.json({ apiVersion: 'v1', kind: 'EndpointsList', items: (await withEndpoints(c.var.deps, rows)).map(renderEndpoints) });
  })
  .put('/namespaces/:ns/services/:name', async (c) => {
    const { namespace, m } = await workloadBody(c, 'Service');
    if (m.metadata.name !== c.req.param('name')) throw invalid(`metadata.name "${m.metadata.name}" does not match the URL`, [{ path: 'metadata.name', message: 'does not match the URL' }]);
    const deps = c.var.deps;
    const { row, outcome } = await applyService(deps.db, m, namespace, deps.clock(), who(c.var.principal));
    if (outcome !== 'unchanged' && deps.notifier) deps.notifier.notify(await serviceConsumers(deps.db, [namespace]));
    c.header('Flotilla-Outcome', outcome);
    const [e] = await withEndpoints(deps, [row]);
    return c.json(renderService(e as ServiceEndpoints), outcome === 'created' ? 201 : 200);
  })
  .get('/namespaces/:ns/services/:name', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const row = await getService(c.var.deps.db, namespace, c.req.param('name'));
    if (!row) throw notFound(`service ${namespace}/${c.req.param('name')} not found`);
    const [e] = await withEndpoints(c.var.deps, [row]);
    return c.json(renderService(e as ServiceEndpoints));
  })
  .get('/namespaces/:ns/services/:name/endpoints', async (c) => {
    // `?watch=1&resourceVersion=V` is a long-poll: it answers when the endpoints differ from version V
    // (content-addressed, so a change is never missed and an unchanged set is never sent twice), or
    // after `timeoutSeconds` (default 30, at most 300) with the same version.
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const deps = c.var.deps;
    const name = c.req.param('name');
    const watch = c.req.query('watch') === '1' || c.req.query('watch') === 'true';
    const since = c.req.query('resourceVersion');
    const timeoutRaw = c.req.query('timeoutSeconds');
    const timeoutS = timeoutRaw === undefined ? 30 : Number(timeoutRaw);
    if (!Number.isInteger(timeoutS) || timeoutS < 0 || timeoutS > 300) throw invalid('timeoutSeconds must be an integer from 0 to 300', [{ path: 'timeoutSeconds', message: 'must be 0-300' }]);
    const deadline = deps.clock() + timeoutS * 1000;
    for (;;) {
      const row = await getService(deps.db, namespace, name);
      if (!row) throw notFound(`service ${namespace}/${name} not found`);
      const [e] = await withEndpoints(deps, [row]);
      const body = renderEndpoints(e as ServiceEndpoints);
      if (!watch || since === undefined || body.metadata.resourceVersion !== since || deps.clock() >= deadline || c.req.raw.signal.aborted) return c.json(body);
      await sleep(Math.min(deps.config.endpointsPollMs, Math.max(0, deadline - deps.clock())), c.req.raw.signal);
    }
  })
  .delete('/namespaces/:ns/services/:name', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'deploy', namespace);
    const deps = c.var.deps;
    const row = await getService(deps.db, namespace, c.req.param('name'));
    const consumers = row && deps.notifier ? await serviceConsumers(deps.db, [namespace]) : [];
    if (!row || !(await deleteService(deps.db, row, deps.clock(), who(c.var.principal)))) throw notFound(`service ${namespace}/${c.req.param('name')} not found`);
    deps.notifier?.notify(consumers);
    return c.json({ apiVersion: 'v1', kind: 'Status', status: 'Success', details: { name: row.name, kind: 'services', uid: row.id } });
  });
