import { type Context, Hono } from 'hono';
import { conflict, invalid, notFound } from '../../shared/errors.js';
import { type Deployment, parseManifest } from '../../shared/manifest.js';
import { DNS1123_LABEL } from '../../shared/names.js';
import { canSeeNamespace, requireScope } from '../auth/operator.js';
import { readDocument } from '../body.js';
import type { AppEnv, Deps, Principal } from '../context.js';
import { runTick } from '../controllers/tick.js';
import { renderDeployment, renderPod } from '../render.js';
import { listEvents } from '../store/events.js';
import { listNodes } from '../store/nodes.js';
import { getPod, listPods } from '../store/pods.js';
import { namespaces as namespacesTable } from '../store/schema.js';
import { applyDeployment, deleteDeployment, ensureNamespace, getDeployment, listDeployments } from '../store/workloads.js';

function ns(name: string): string {
  if (!DNS1123_LABEL.test(name) || name.length > 63) throw invalid(`invalid namespace "${name}"`, [{ path: 'metadata.namespace', message: 'must be a DNS-1123 label' }]);
  return name;
}

function who(p: Principal): string {
  return p.kind === 'operator' ? `token ${p.name}` : `node ${p.nodeName}`;
}

async function nodeNames(deps: Deps): Promise<Map<string, { name: string; leaseExpiresAt: number }>> {
  return new Map((await listNodes(deps.db, true)).map((n) => [n.id, { name: n.name, leaseExpiresAt: n.leaseExpiresAt }]));
}

/** Applies a validated Deployment and runs the controllers right away, so pods are placed within the request. */
async function apply(deps: Deps, p: Principal, d: Deployment, namespace: string) {
  const { row, outcome } = await applyDeployment(deps.db, d, namespace, deps.clock(), who(p));
  if (outcome !== 'unchanged') await runTick(deps);
  return { row, outcome };
}

/** Authorises a write to the URL's namespace and reads a Deployment body that belongs there. */
async function deploymentBody(c: Context<AppEnv>): Promise<{ namespace: string; m: Deployment }> {
  const namespace = ns(c.req.param('ns') ?? '');
  requireScope(c.var.principal, 'deploy', namespace);
  const m = parseManifest(await readDocument(c));
  if (m.kind !== 'Deployment') throw invalid(`expected kind Deployment, got ${m.kind}`, [{ path: 'kind', message: 'expected Deployment' }]);
  if (m.metadata.namespace !== undefined && m.metadata.namespace !== namespace)
    throw invalid(`metadata.namespace "${m.metadata.namespace}" does not match the namespace in the URL "${namespace}"`, [{ path: 'metadata.namespace', message: 'does not match the URL' }]);
  return { namespace, m };
}

/** Namespaced objects under /v1/namespaces/{ns}/..., plus cross-namespace lists. */
export const workloadRoutes = new Hono<AppEnv>()
  .get('/namespaces', async (c) => {
    requireScope(c.var.principal, 'read');
    const rows = await c.var.deps.db.select().from(namespacesTable).orderBy(namespacesTable.name).all();
    const p = c.var.principal;
    return c.json({
      apiVersion: 'v1',
      kind: 'NamespaceList',
      items: rows
        .filter((r) => canSeeNamespace(p, r.name))
        .map((r) => ({
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name: r.name, uid: r.uid, labels: r.labels, creationTimestamp: new Date(r.createdAt).toISOString() },
          status: { phase: 'Active' },
        })),
    });
  })
  .put('/namespaces/:ns', async (c) => {
    const name = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'deploy', name);
    const m = parseManifest(await readDocument(c));
    if (m.kind !== 'Namespace' || m.metadata.name !== name) throw invalid(`expected a Namespace named ${name}`, [{ path: 'metadata.name', message: 'must match the URL' }]);
    await ensureNamespace(c.var.deps.db, name, c.var.deps.clock());
    return c.json({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  })
  .get('/deployments', async (c) => {
    requireScope(c.var.principal, 'read');
    const p = c.var.principal;
    const [rows, pods] = await Promise.all([listDeployments(c.var.deps.db), listPods(c.var.deps.db)]);
    return c.json({ apiVersion: 'apps/v1', kind: 'DeploymentList', items: rows.filter((r) => canSeeNamespace(p, r.namespace)).map((r) => renderDeployment(r, pods)) });
  })
  .get('/pods', async (c) => {
    requireScope(c.var.principal, 'read');
    const p = c.var.principal;
    const [rows, names] = await Promise.all([listPods(c.var.deps.db), nodeNames(c.var.deps)]);
    return c.json({ apiVersion: 'v1', kind: 'PodList', items: rows.filter((r) => canSeeNamespace(p, r.namespace)).map((r) => renderPod(r, r.nodeId ? names.get(r.nodeId) : undefined)) });
  })
  .get('/namespaces/:ns/deployments', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const [rows, pods] = await Promise.all([listDeployments(c.var.deps.db, namespace), listPods(c.var.deps.db, { namespace })]);
    return c.json({ apiVersion: 'apps/v1', kind: 'DeploymentList', items: rows.map((r) => renderDeployment(r, pods)) });
  })
  .post('/namespaces/:ns/deployments', async (c) => {
    const { namespace, m } = await deploymentBody(c);
    if (await getDeployment(c.var.deps.db, namespace, m.metadata.name)) throw conflict(`deployment ${namespace}/${m.metadata.name} already exists`);
    const { row } = await apply(c.var.deps, c.var.principal, m, namespace);
    return c.json(renderDeployment(row, await listPods(c.var.deps.db, { namespace })), 201);
  })
  .put('/namespaces/:ns/deployments/:name', async (c) => {
    const { namespace, m } = await deploymentBody(c);
    if (m.metadata.name !== c.req.param('name')) throw invalid(`metadata.name "${m.metadata.name}" does not match the URL`, [{ path: 'metadata.name', message: 'does not match the URL' }]);
    const { row, outcome } = await apply(c.var.deps, c.var.principal, m, namespace);
    c.header('Flotilla-Outcome', outcome);
    return c.json(renderDeployment(row, await listPods(c.var.deps.db, { namespace })), outcome === 'created' ? 201 : 200);
  })
  .get('/namespaces/:ns/deployments/:name', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const row = await getDeployment(c.var.deps.db, namespace, c.req.param('name'));
    if (!row) throw notFound(`deployment ${namespace}/${c.req.param('name')} not found`);
    return c.json(renderDeployment(row, await listPods(c.var.deps.db, { namespace })));
  })
  .delete('/namespaces/:ns/deployments/:name', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'deploy', namespace);
    const deps = c.var.deps;
    const row = await getDeployment(deps.db, namespace, c.req.param('name'));
    if (!row || !(await deleteDeployment(deps.db, row, deps.clock(), who(c.var.principal)))) throw notFound(`deployment ${namespace}/${c.req.param('name')} not found`);
    await runTick(deps);
    return c.json({ apiVersion: 'v1', kind: 'Status', status: 'Success', details: { name: row.name, kind: 'deployments', uid: row.id } });
  })
  .get('/namespaces/:ns/pods', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const [rows, names] = await Promise.all([listPods(c.var.deps.db, { namespace }), nodeNames(c.var.deps)]);
    return c.json({ apiVersion: 'v1', kind: 'PodList', items: rows.map((r) => renderPod(r, r.nodeId ? names.get(r.nodeId) : undefined)) });
  })
  .get('/namespaces/:ns/pods/:name', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const row = await getPod(c.var.deps.db, namespace, c.req.param('name'));
    if (!row) throw notFound(`pod ${namespace}/${c.req.param('name')} not found`);
    return c.json(renderPod(row, row.nodeId ? (await nodeNames(c.var.deps)).get(row.nodeId) : undefined));
  })
  .get('/namespaces/:ns/events', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const limit = Math.min(1000, Math.max(1, Number(c.req.query('limit') ?? 200) || 200));
    const rows = await listEvents(c.var.deps.db, { namespace, kind: c.req.query('kind'), name: c.req.query('name'), limit });
    return c.json({
      apiVersion: 'v1',
      kind: 'EventList',
      items: rows.map((e) => ({
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: String(e.id), namespace: e.namespace },
        involvedObject: { kind: e.kind, name: e.name, namespace: e.namespace },
        type: e.type,
        reason: e.reason,
        message: e.message,
        source: { component: e.source },
        lastTimestamp: new Date(e.at).toISOString(),
      })),
    });
  });
