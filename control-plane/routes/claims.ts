import { Hono } from 'hono';
import { invalid, notFound } from '../../shared/errors.js';
import { canSeeNamespace, requireScope } from '../auth/operator.js';
import type { AppEnv, Deps } from '../context.js';
import { runTick } from '../controllers/tick.js';
import { applyClaim, type ClaimRow, claimVolumeName, finalizeClaims, getClaim, listClaims, requestClaimDeletion } from '../store/claims.js';
import { nodeNamesOf } from '../store/nodes.js';
import { ns, who, workloadBody } from './workloads.js';

/** A claim as the API shows it: the Kubernetes shape, with the node it is bound to and its reclaim policy in `status`. */
export function renderClaim(r: ClaimRow, nodes: ReadonlyMap<string, { name: string }>) {
  const phase = r.phase === 'Releasing' ? 'Releasing' : r.deletionRequestedAt !== null ? 'Terminating' : r.phase;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: r.name,
      namespace: r.namespace,
      uid: r.id,
      labels: r.labels,
      annotations: r.annotations,
      resourceVersion: String(r.version),
      creationTimestamp: new Date(r.createdAt).toISOString(),
      ...(r.deletionRequestedAt !== null ? { deletionTimestamp: new Date(r.deletionRequestedAt).toISOString() } : {}),
    },
    spec: { storageClassName: r.storageClass, accessModes: r.accessModes, resources: { requests: { storage: r.storage } }, volumeName: claimVolumeName(r.id), volumeMode: 'Filesystem' },
    status: {
      phase,
      ...(r.nodeId ? { node: nodes.get(r.nodeId)?.name ?? r.nodeId, boundAt: new Date(r.boundAt ?? r.updatedAt).toISOString() } : {}),
      capacity: { storage: r.storage },
      accessModes: r.accessModes,
      reclaimPolicy: r.reclaimPolicy,
    },
  };
}

/** Names of the nodes the given claims are bound to. */
function names(deps: Deps, claims: readonly ClaimRow[]) {
  return nodeNamesOf(
    deps.db,
    claims.flatMap((r) => (r.nodeId ? [r.nodeId] : [])),
  );
}

export const claimRoutes = new Hono<AppEnv>()
  .get('/persistentvolumeclaims', async (c) => {
    requireScope(c.var.principal, 'read');
    const rows = (await listClaims(c.var.deps.db)).filter((r) => canSeeNamespace(c.var.principal, r.namespace));
    const n = await names(c.var.deps, rows);
    return c.json({ apiVersion: 'v1', kind: 'PersistentVolumeClaimList', items: rows.map((r) => renderClaim(r, n)) });
  })
  .get('/namespaces/:ns/persistentvolumeclaims', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const rows = await listClaims(c.var.deps.db, namespace);
    const n = await names(c.var.deps, rows);
    return c.json({ apiVersion: 'v1', kind: 'PersistentVolumeClaimList', items: rows.map((r) => renderClaim(r, n)) });
  })
  .put('/namespaces/:ns/persistentvolumeclaims/:name', async (c) => {
    const { namespace, m } = await workloadBody(c, 'PersistentVolumeClaim');
    if (m.metadata.name !== c.req.param('name')) throw invalid(`metadata.name "${m.metadata.name}" does not match the URL`, [{ path: 'metadata.name', message: 'does not match the URL' }]);
    const deps = c.var.deps;
    const { row, outcome } = await applyClaim(deps.db, m, namespace, deps.clock(), who(c.var.principal));
    // Pods waiting for this claim can be placed now.
    if (outcome === 'created') await runTick(deps);
    c.header('Flotilla-Outcome', outcome);
    return c.json(renderClaim(row, await names(deps, [row])), outcome === 'created' ? 201 : 200);
  })
  .get('/namespaces/:ns/persistentvolumeclaims/:name', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const row = await getClaim(c.var.deps.db, namespace, c.req.param('name'));
    if (!row) throw notFound(`persistentvolumeclaim ${namespace}/${c.req.param('name')} not found`);
    return c.json(renderClaim(row, await names(c.var.deps, [row])));
  })
  .delete('/namespaces/:ns/persistentvolumeclaims/:name', async (c) => {
    // Kubernetes' protection: the claim goes once no pod uses it; then Retain keeps the data on the
    // node and Delete has the node's agent remove the volume.
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'deploy', namespace);
    const deps = c.var.deps;
    const row = await getClaim(deps.db, namespace, c.req.param('name'));
    if (!row || !(await requestClaimDeletion(deps.db, row, deps.clock(), who(c.var.principal)))) throw notFound(`persistentvolumeclaim ${namespace}/${c.req.param('name')} not found`);
    const released = await finalizeClaims(deps.db, deps.clock());
    deps.notifier?.notify(released);
    const now = await getClaim(deps.db, namespace, row.name);
    return c.json({
      apiVersion: 'v1',
      kind: 'Status',
      status: 'Success',
      details: { name: row.name, kind: 'persistentvolumeclaims', uid: row.id },
      ...(now ? { message: `${renderClaim(now, await names(deps, [now])).status.phase}` } : {}),
    });
  });
