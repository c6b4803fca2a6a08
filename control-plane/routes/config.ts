import { and, eq } from 'drizzle-orm';
import { Hono } from 'hono';
import { FlotillaError, invalid, notFound } from '../../shared/errors.js';
import { envReferencedNames, parseWorkload, referencedNames } from '../../shared/manifest.js';
import { canSeeNamespace, requireScope } from '../auth/operator.js';
import type { AppEnv, Deps } from '../context.js';
import { runTick } from '../controllers/tick.js';
import { applyConfig, type ConfigKind, type ConfigRow, deleteConfig, getConfig, listConfig } from '../store/config.js';
import type { Db } from '../store/db.js';
import { bumpNodes } from '../store/pods.js';
import { pods } from '../store/schema.js';
import { applyWorkload, listDeployments, manifestOf } from '../store/workloads.js';
import { ns, who, workloadBody } from './workloads.js';

const RESOURCES = [
  ['secrets', 'Secret'],
  ['configmaps', 'ConfigMap'],
] as const;

/** The workloads of a namespace that use a Secret or ConfigMap (for `usedBy`). */
export async function usersOf(deps: Deps, namespace: string): Promise<(kind: ConfigKind, name: string) => string[]> {
  const rows = [...(await listDeployments(deps.db, namespace, 'Deployment')), ...(await listDeployments(deps.db, namespace, 'DaemonSet'))];
  const refs = rows.map((r) => {
    const spec = (r.spec as { template: { spec: unknown } }).template.spec;
    return { who: `${r.kind.toLowerCase()}/${r.name}`, secrets: referencedNames(spec, 'Secret'), configMaps: referencedNames(spec, 'ConfigMap') };
  });
  return (kind, name) => refs.filter((r) => (kind === 'Secret' ? r.secrets : r.configMaps).has(name)).map((r) => r.who);
}

/**
 * A Secret or ConfigMap as the API shows it. A Secret never shows its values: key names and sizes,
 * the version, and which workloads use it. A ConfigMap shows its data.
 */
export function renderConfig(row: ConfigRow, usedBy: string[], data?: Record<string, string>) {
  return {
    apiVersion: 'v1',
    kind: row.kind,
    metadata: {
      name: row.name,
      namespace: row.namespace,
      uid: row.id,
      labels: row.labels,
      annotations: row.annotations,
      resourceVersion: String(row.version),
      creationTimestamp: new Date(row.createdAt).toISOString(),
    },
    ...(row.kind === 'Secret' ? { type: row.type } : { data: data ?? {} }),
    keys: row.keys.map((k) => ({ name: k.key, size: k.size })),
    version: row.version,
    usedBy,
  };
}

/** 503 for anything that needs the master key when there is none (or a wrong one), saying how to fix it. */
export function secretsUnavailable(deps: Deps): FlotillaError {
  return new FlotillaError(
    'secrets-unavailable',
    503,
    deps.secretsProblem
      ? `${deps.secretsProblem}: Secrets are refused and nothing was changed; set FLOTILLA_SECRET_KEY to that key`
      : 'Secrets need a master key: set FLOTILLA_SECRET_KEY (on Workers: `wrangler secret put FLOTILLA_SECRET_KEY`)',
  );
}

function needsKey(deps: Deps, kind: ConfigKind) {
  if (kind === 'Secret' && !deps.secrets) throw secretsUnavailable(deps);
  return deps.secrets;
}

/** Template annotation recording the Secret/ConfigMap versions a workload's env was built from. */
export const CONFIG_VERSIONS_ANNOTATION = 'flotilla.dev/config-versions';

/**
 * A changed Secret or ConfigMap reaches its consumers without rebuilding anything: nodes running
 * pods that mount it are told (their desired state carries the new versions; agents swap the files
 * in place), and workloads that read it as environment get a new revision (the template annotation
 * `flotilla.dev/config-versions`), which the rollout machinery rolls out by their strategy.
 */
async function propagate(deps: Deps, row: ConfigRow, source: string): Promise<void> {
  const ref = `${row.kind}/${row.name}`;
  const now = deps.clock();
  let rolled = false;
  for (const kind of ['Deployment', 'DaemonSet'] as const) {
    for (const w of await listDeployments(deps.db, row.namespace, kind)) {
      const spec = w.spec as { template: { metadata: { annotations?: Record<string, string> }; spec: unknown } };
      if (!envReferencedNames(spec.template.spec).has(ref)) continue;
      const entries = new Map(
        (spec.template.metadata.annotations?.[CONFIG_VERSIONS_ANNOTATION] ?? '')
          .split(',')
          .filter(Boolean)
          .map((e) => [e.slice(0, e.lastIndexOf('@')), e] as const),
      );
      entries.set(ref, `${ref}@${row.version}`);
      const m = manifestOf(w) as { spec: typeof spec };
      m.spec = {
        ...spec,
        template: {
          ...spec.template,
          metadata: { ...spec.template.metadata, annotations: { ...(spec.template.metadata.annotations ?? {}), [CONFIG_VERSIONS_ANNOTATION]: [...entries.values()].sort().join(',') } },
        },
      };
      try {
        await applyWorkload(deps.db, parseWorkload(m), row.namespace, now, `${source} (${ref} changed to version ${row.version})`, { expectGeneration: w.generation });
        rolled = true;
      } catch (e) {
        deps.logger.warn({ workload: `${w.namespace}/${w.name}`, err: (e as Error).message }, 'could not roll a consumer of a changed secret or config map');
      }
    }
  }
  const nodeIds = new Set(
    (
      await deps.db
        .select({ nodeId: pods.nodeId, spec: pods.spec })
        .from(pods)
        .where(and(eq(pods.namespace, row.namespace), eq(pods.desired, 'run')))
        .all()
    )
      .filter((p) => p.nodeId !== null && referencedNames(p.spec, row.kind).has(row.name))
      .map((p) => p.nodeId as string),
  );
  if (nodeIds.size > 0) {
    await deps.db.batch(bumpNodes(deps.db, [...nodeIds]) as unknown as [Parameters<Db['batch']>[0][number]]);
    deps.notifier?.notify(nodeIds);
  }
  if (rolled) await runTick(deps);
}

export const configRoutes = new Hono<AppEnv>();

for (const [plural, kind] of RESOURCES) {
  const label = kind.toLowerCase();
  const show = (row: ConfigRow, usedBy: string[]) => renderConfig(row, usedBy, row.kind === 'ConfigMap' ? (JSON.parse(row.data) as Record<string, string>) : undefined);
  configRoutes
    .get(`/${plural}`, async (c) => {
      requireScope(c.var.principal, 'read');
      const rows = (await listConfig(c.var.deps.db, kind)).filter((r) => canSeeNamespace(c.var.principal, r.namespace));
      return c.json({ apiVersion: 'v1', kind: `${kind}List`, items: rows.map((r) => show(r, [])) });
    })
    .get(`/namespaces/:ns/${plural}`, async (c) => {
      const namespace = ns(c.req.param('ns'));
      requireScope(c.var.principal, 'read', namespace);
      const [rows, users] = await Promise.all([listConfig(c.var.deps.db, kind, namespace), usersOf(c.var.deps, namespace)]);
      return c.json({ apiVersion: 'v1', kind: `${kind}List`, items: rows.map((r) => show(r, users(kind, r.name))) });
    })
    .put(`/namespaces/:ns/${plural}/:name`, async (c) => {
      const { namespace, m } = await workloadBody(c, kind);
      if (m.metadata.name !== c.req.param('name')) throw invalid(`metadata.name "${m.metadata.name}" does not match the URL`, [{ path: 'metadata.name', message: 'does not match the URL' }]);
      const deps = c.var.deps;
      const { row, outcome, valuesChanged } = await applyConfig(deps.db, m, namespace, needsKey(deps, kind), deps.clock(), who(c.var.principal));
      if (outcome !== 'unchanged' && valuesChanged) await propagate(deps, row, who(c.var.principal));
      c.header('Flotilla-Outcome', outcome);
      return c.json(show(row, (await usersOf(deps, namespace))(kind, row.name)), outcome === 'created' ? 201 : 200);
    })
    .get(`/namespaces/:ns/${plural}/:name`, async (c) => {
      const namespace = ns(c.req.param('ns'));
      requireScope(c.var.principal, 'read', namespace);
      const row = await getConfig(c.var.deps.db, namespace, kind, c.req.param('name'));
      if (!row) throw notFound(`${label} ${namespace}/${c.req.param('name')} not found`);
      return c.json(show(row, (await usersOf(c.var.deps, namespace))(kind, row.name)));
    })
    .delete(`/namespaces/:ns/${plural}/:name`, async (c) => {
      const namespace = ns(c.req.param('ns'));
      requireScope(c.var.principal, 'deploy', namespace);
      const deps = c.var.deps;
      const row = await getConfig(deps.db, namespace, kind, c.req.param('name'));
      if (!row || !(await deleteConfig(deps.db, row, deps.clock(), who(c.var.principal)))) throw notFound(`${label} ${namespace}/${c.req.param('name')} not found`);
      return c.json({ apiVersion: 'v1', kind: 'Status', status: 'Success', details: { name: row.name, kind: plural, uid: row.id } });
    });
}
