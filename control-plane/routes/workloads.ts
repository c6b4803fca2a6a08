import { and, eq } from 'drizzle-orm';
import { type Context, Hono } from 'hono';
import { conflict, invalid, notFound } from '../../shared/errors.js';
import { type Deployment, type Manifest, parseManifest, parseWorkload, podRequests, rolloutPolicyOf, type Workload } from '../../shared/manifest.js';
import { DNS1123_LABEL } from '../../shared/names.js';
import { formatCpu, formatMemory, parseCpu, parseMemory } from '../../shared/quantity.js';
import { canSeeNamespace, requireScope } from '../auth/operator.js';
import { readDocument } from '../body.js';
import type { AppEnv, Deps, Principal } from '../context.js';
import { runTick } from '../controllers/tick.js';
import { renderEvent, renderPod, renderWorkload } from '../render.js';
import { insertEvent, listEvents } from '../store/events.js';
import { largestAllocatable, nodeNamesOf } from '../store/nodes.js';
import { getPod, listPodsPage, podsByWorkload, workloadPods } from '../store/pods.js';
import { deployments, namespaces as namespacesTable } from '../store/schema.js';
import { applyWorkload, type DeploymentSpec, deleteDeployment, ensureNamespace, getDeployment, listDeployments, listRevisions, manifestOf, type WorkloadKind } from '../store/workloads.js';

export function ns(name: string): string {
  if (!DNS1123_LABEL.test(name) || name.length > 63) throw invalid(`invalid namespace "${name}"`, [{ path: 'metadata.namespace', message: 'must be a DNS-1123 label' }]);
  return name;
}

export function who(p: Principal): string {
  return p.kind === 'operator' ? `token ${p.name}` : `node ${p.nodeName}`;
}

/** A pod list (one namespace, or the ones a token may see): the page the list middleware asks for, read in SQL. */
async function podList(c: Context<AppEnv>, scope: { namespace?: string; namespaces?: readonly string[] | null }): Promise<Response> {
  const db = c.var.deps.db;
  const page = c.get('listPage');
  const { rows, remaining } = await listPodsPage(db, { ...scope, ...page });
  const last = rows.at(-1);
  if (page) c.set('listPaged', { last: last ? [last.namespace, last.name] : undefined, remaining });
  const names = await nodeNamesOf(
    db,
    rows.flatMap((r) => (r.nodeId ? [r.nodeId] : [])),
  );
  return c.json({ apiVersion: 'v1', kind: 'PodList', items: rows.map((r) => renderPod(r, r.nodeId ? names.get(r.nodeId) : undefined)) });
}

/**
 * Refuses a pod that could never fit: a CPU or memory request larger than the allocatable of every
 * enrolled node (with no node enrolled yet, the pod waits Pending instead).
 */
async function checkFitsSomewhere(deps: Deps, w: Workload): Promise<void> {
  const spec = w.spec.template.spec;
  const req = podRequests(spec);
  if (req.cpu === 0 && req.memory === 0) return;
  const largest = await largestAllocatable(deps.db, { cpu: deps.config.reservedCpu, memory: deps.config.reservedMemory });
  if (!largest) return;
  for (const [r, parse, fmt] of [
    ['cpu', parseCpu, formatCpu],
    ['memory', parseMemory, formatMemory],
  ] as const) {
    const max = largest[r];
    if (req[r] <= max) continue;
    const i = Math.max(
      0,
      spec.containers.findIndex((c) => {
        const q = c.resources?.requests?.[r] ?? c.resources?.limits?.[r];
        return q !== undefined && (parse(q) ?? 0) > 0;
      }),
    );
    const path = `spec.template.spec.containers[${i}].resources.requests.${r}`;
    throw invalid(`${path}: the pod requests ${fmt(req[r])} ${r}, more than any node can allocate (largest: ${fmt(max)})`, [{ path, message: `exceeds every node's allocatable ${r} (${fmt(max)})` }]);
  }
}

/** Applies a validated workload and runs the controllers right away, so pods are placed within the request. */
async function apply(deps: Deps, p: Principal, d: Workload, namespace: string, expectGeneration?: number) {
  await checkFitsSomewhere(deps, d);
  const { row, outcome } = await applyWorkload(deps.db, d, namespace, deps.clock(), who(p), expectGeneration === undefined ? {} : { expectGeneration });
  if (outcome !== 'unchanged') await runTick(deps);
  return { row, outcome };
}

/** Authorises a write to the URL's namespace and reads a workload body of the given kind that belongs there. */
export async function workloadBody<K extends Manifest['kind']>(c: Context<AppEnv>, kind: K): Promise<{ namespace: string; m: Extract<Manifest, { kind: K }> }> {
  const namespace = ns(c.req.param('ns') ?? '');
  requireScope(c.var.principal, 'deploy', namespace);
  const m = parseManifest(await readDocument(c));
  if (m.kind !== kind) throw invalid(`expected kind ${kind}, got ${m.kind}`, [{ path: 'kind', message: `expected ${kind}` }]);
  if (m.metadata.namespace !== undefined && m.metadata.namespace !== namespace)
    throw invalid(`metadata.namespace "${m.metadata.namespace}" does not match the namespace in the URL "${namespace}"`, [{ path: 'metadata.namespace', message: 'does not match the URL' }]);
  return { namespace, m: m as Extract<Manifest, { kind: K }> };
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
  .get('/pods', async (c) => {
    requireScope(c.var.principal, 'read');
    const p = c.var.principal;
    return podList(c, { namespaces: p.kind === 'operator' ? p.namespaces : [] });
  })
  .get('/namespaces/:ns/pods', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    return podList(c, { namespace });
  })
  .get('/namespaces/:ns/pods/:name', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const row = await getPod(c.var.deps.db, namespace, c.req.param('name'));
    if (!row) throw notFound(`pod ${namespace}/${c.req.param('name')} not found`);
    return c.json(renderPod(row, row.nodeId ? (await nodeNamesOf(c.var.deps.db, [row.nodeId])).get(row.nodeId) : undefined));
  })
  .get('/namespaces/:ns/events', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const limit = Math.min(1000, Math.max(1, Number(c.req.query('limit') ?? 200) || 200));
    const rows = await listEvents(c.var.deps.db, { namespace, kind: c.req.query('kind'), name: c.req.query('name'), limit });
    return c.json({
      apiVersion: 'v1',
      kind: 'EventList',
      items: rows.map(renderEvent),
    });
  });

const WORKLOAD_RESOURCES = [
  ['deployments', 'Deployment'],
  ['daemonsets', 'DaemonSet'],
] as const;

// Workload resources share one set of routes: list (all or one namespace), create, apply, get, delete.
for (const [plural, kind] of WORKLOAD_RESOURCES) {
  const label = kind.toLowerCase();
  workloadRoutes
    .get(`/${plural}`, async (c) => {
      requireScope(c.var.principal, 'read');
      const p = c.var.principal;
      const [rows, pods] = await Promise.all([listDeployments(c.var.deps.db, undefined, kind), workloadPods(c.var.deps.db, {})]);
      const of = podsByWorkload(pods);
      return c.json({ apiVersion: 'apps/v1', kind: `${kind}List`, items: rows.filter((r) => canSeeNamespace(p, r.namespace)).map((r) => renderWorkload(r, of.get(r.id) ?? [], c.var.deps.clock())) });
    })
    .get(`/namespaces/:ns/${plural}`, async (c) => {
      const namespace = ns(c.req.param('ns'));
      requireScope(c.var.principal, 'read', namespace);
      const [rows, pods] = await Promise.all([listDeployments(c.var.deps.db, namespace, kind), workloadPods(c.var.deps.db, { namespace })]);
      const of = podsByWorkload(pods);
      return c.json({ apiVersion: 'apps/v1', kind: `${kind}List`, items: rows.map((r) => renderWorkload(r, of.get(r.id) ?? [], c.var.deps.clock())) });
    })
    .post(`/namespaces/:ns/${plural}`, async (c) => {
      const { namespace, m } = await workloadBody(c, kind);
      if (await getDeployment(c.var.deps.db, namespace, m.metadata.name, kind)) throw conflict(`${label} ${namespace}/${m.metadata.name} already exists`);
      const { row } = await apply(c.var.deps, c.var.principal, m, namespace);
      return c.json(renderWorkload(row, await workloadPods(c.var.deps.db, { deploymentIds: [row.id] }), c.var.deps.clock()), 201);
    })
    .put(`/namespaces/:ns/${plural}/:name`, async (c) => {
      const { namespace, m } = await workloadBody(c, kind);
      if (m.metadata.name !== c.req.param('name')) throw invalid(`metadata.name "${m.metadata.name}" does not match the URL`, [{ path: 'metadata.name', message: 'does not match the URL' }]);
      const { row, outcome } = await apply(c.var.deps, c.var.principal, m, namespace);
      c.header('Flotilla-Outcome', outcome);
      return c.json(renderWorkload(row, await workloadPods(c.var.deps.db, { deploymentIds: [row.id] }), c.var.deps.clock()), outcome === 'created' ? 201 : 200);
    })
    .get(`/namespaces/:ns/${plural}/:name`, async (c) => {
      const namespace = ns(c.req.param('ns'));
      requireScope(c.var.principal, 'read', namespace);
      const row = await getDeployment(c.var.deps.db, namespace, c.req.param('name'), kind);
      if (!row) throw notFound(`${label} ${namespace}/${c.req.param('name')} not found`);
      return c.json(renderWorkload(row, await workloadPods(c.var.deps.db, { deploymentIds: [row.id] }), c.var.deps.clock()));
    })
    .delete(`/namespaces/:ns/${plural}/:name`, async (c) => {
      const namespace = ns(c.req.param('ns'));
      requireScope(c.var.principal, 'deploy', namespace);
      const deps = c.var.deps;
      const row = await getDeployment(deps.db, namespace, c.req.param('name'), kind);
      if (!row || !(await deleteDeployment(deps.db, row, deps.clock(), who(c.var.principal)))) throw notFound(`${label} ${namespace}/${c.req.param('name')} not found`);
      await runTick(deps);
      return c.json({ apiVersion: 'v1', kind: 'Status', status: 'Success', details: { name: row.name, kind: plural, uid: row.id } });
    });
}

const KIND_OF: Record<string, WorkloadKind> = { deployments: 'Deployment', daemonsets: 'DaemonSet' };

/** The workload kind a subresource path names (`deployments` unless it says `daemonsets`). */
function kindOf(c: Context<AppEnv>): WorkloadKind {
  return KIND_OF[c.req.param('res') ?? 'deployments'] ?? 'Deployment';
}

/** Reads a workload the caller may change, applies `change` to its manifest, and applies the result. */
async function changeDeployment(c: Context<AppEnv>, change: (spec: Record<string, unknown>) => void, kind: WorkloadKind = 'Deployment') {
  const namespace = ns(c.req.param('ns') ?? '');
  requireScope(c.var.principal, 'deploy', namespace);
  const deps = c.var.deps;
  const row = await getDeployment(deps.db, namespace, c.req.param('name') ?? '', kind);
  if (!row) throw notFound(`${kind.toLowerCase()} ${namespace}/${c.req.param('name')} not found`);
  const m = manifestOf(row) as { spec: Record<string, unknown> };
  m.spec = { ...m.spec };
  change(m.spec);
  // Read-modify-write: conditional on the generation read (a concurrent change gets a 409, not lost).
  const { row: after } = await apply(deps, c.var.principal, parseWorkload(m), namespace, row.generation);
  return after;
}

// Deployment subresources: scale (as Kubernetes' /scale), pause/resume, revision history.
workloadRoutes
  .put('/namespaces/:ns/deployments/:name/scale', async (c) => {
    const body = (await readDocument(c)) as { spec?: { replicas?: unknown }; replicas?: unknown } | null;
    const replicas = body?.spec?.replicas ?? body?.replicas;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0 || replicas > 10_000)
      throw invalid('spec.replicas must be an integer from 0 to 10000', [{ path: 'spec.replicas', message: 'must be an integer from 0 to 10000' }]);
    const row = await changeDeployment(c, (spec) => {
      spec.replicas = replicas;
    });
    return c.json({ apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: row.name, namespace: row.namespace }, spec: { replicas }, status: { replicas } });
  })
  .post('/namespaces/:ns/deployments/:name/:verb{pause|resume}', async (c) => {
    const paused = c.req.param('verb') === 'pause';
    const row = await changeDeployment(c, (spec) => {
      spec.paused = paused;
    });
    return c.json(renderWorkload(row, await workloadPods(c.var.deps.db, { deploymentIds: [row.id] }), c.var.deps.clock()));
  })
  .post('/namespaces/:ns/:res{deployments|daemonsets}/:name/rollback', async (c) => {
    // Undo: the template of an earlier revision (the previous one by default) becomes a new revision.
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'deploy', namespace);
    const body = (c.req.header('content-type') ? await readDocument(c) : null) as { toRevision?: unknown } | null;
    const to = body?.toRevision;
    if (to !== undefined && (typeof to !== 'number' || !Number.isInteger(to) || to < 1))
      throw invalid('toRevision must be a positive integer', [{ path: 'toRevision', message: 'must be a positive integer' }]);
    const kind = kindOf(c);
    const row0 = await getDeployment(c.var.deps.db, namespace, c.req.param('name'), kind);
    if (!row0) throw notFound(`${kind.toLowerCase()} ${namespace}/${c.req.param('name')} not found`);
    const revs = await listRevisions(c.var.deps.db, row0.id);
    const target = to === undefined ? revs.filter((r) => r.revision < row0.revision).at(-1) : revs.find((r) => r.revision === to);
    if (!target)
      throw invalid(to === undefined ? 'there is no earlier revision to roll back to' : `revision ${to} not found (kept: ${revs.map((r) => r.revision).join(', ')})`, [
        { path: 'toRevision', message: 'no such revision' },
      ]);
    const row = await changeDeployment(
      c,
      (spec) => {
        spec.template = target.template;
      },
      kind,
    );
    return c.json(renderWorkload(row, await workloadPods(c.var.deps.db, { deploymentIds: [row.id] }), c.var.deps.clock()));
  })
  .post('/namespaces/:ns/:res{deployments|daemonsets}/:name/restart', async (c) => {
    // Restart: a new revision that differs only by an annotation, rolled out like any other.
    const now = new Date(c.var.deps.clock()).toISOString();
    const row = await changeDeployment(
      c,
      (spec) => {
        const t = spec.template as { metadata: { annotations?: Record<string, string> } };
        spec.template = { ...t, metadata: { ...t.metadata, annotations: { ...(t.metadata.annotations ?? {}), 'flotilla.dev/restartedAt': now } } };
      },
      kindOf(c),
    );
    return c.json(renderWorkload(row, await workloadPods(c.var.deps.db, { deploymentIds: [row.id] }), c.var.deps.clock()));
  })
  .post('/namespaces/:ns/deployments/:name/promote', async (c) => {
    // Promote a held canary: the rollout goes on to every replica.
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'deploy', namespace);
    const deps = c.var.deps;
    const row = await getDeployment(deps.db, namespace, c.req.param('name'));
    if (!row) throw notFound(`deployment ${namespace}/${c.req.param('name')} not found`);
    const r = row.rollout?.revision === row.revision ? row.rollout : null;
    const canary = rolloutPolicyOf('Deployment', row.annotations, (row.spec as DeploymentSpec).replicas).canary;
    const inProgress = canary && row.stableRevision > 0 && r && (r.state === 'CanaryHold' || r.state === 'Progressing') && !r.promoted && row.promotedRevision !== row.revision;
    if (!inProgress) throw conflict(`no canary in progress for deployment ${namespace}/${row.name}${canary ? '' : ' (it has no flotilla.dev/canary annotation)'}`);
    const now = deps.clock();
    const [done] = await deps.db.batch([
      deps.db
        .update(deployments)
        .set({ promotedRevision: row.revision })
        .where(and(eq(deployments.id, row.id), eq(deployments.revision, row.revision)))
        .returning({ id: deployments.id }),
      insertEvent(deps.db, {
        namespace,
        kind: 'Deployment',
        name: row.name,
        type: 'Normal',
        reason: 'CanaryPromoted',
        message: `canary of revision ${row.revision} promoted by ${who(c.var.principal)}`,
        source: 'api',
        at: now,
      }),
    ]);
    if ((done as unknown[]).length !== 1) throw conflict(`deployment ${namespace}/${row.name} changed meanwhile; try again`);
    await runTick(deps);
    return c.json(renderWorkload({ ...row, promotedRevision: row.revision }, await workloadPods(deps.db, { deploymentIds: [row.id] }), now));
  })
  .get('/namespaces/:ns/:res{deployments|daemonsets}/:name/revisions', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const kind = kindOf(c);
    const row = await getDeployment(c.var.deps.db, namespace, c.req.param('name'), kind);
    if (!row) throw notFound(`${kind.toLowerCase()} ${namespace}/${c.req.param('name')} not found`);
    const revs = await listRevisions(c.var.deps.db, row.id);
    return c.json({
      kind: 'RevisionList',
      items: revs.map((r) => {
        const t = r.template as Deployment['spec']['template'];
        return {
          revision: r.revision,
          current: r.revision === row.revision,
          digest: r.digest,
          images: t.spec.containers.map((x) => x.image),
          changeCause: t.metadata.annotations?.['kubernetes.io/change-cause'] ?? null,
          createdAt: new Date(r.createdAt).toISOString(),
        };
      }),
    });
  });
