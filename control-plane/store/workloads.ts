import { and, asc, eq, lt, ne, sql } from 'drizzle-orm';
import { canonicalJson, specDigest } from '../../shared/digest.js';
import { conflict } from '../../shared/errors.js';
import type { Deployment, Workload } from '../../shared/manifest.js';
import type { Db } from './db.js';
import { insertEvent } from './events.js';
import { deployments, namespaces, type RolloutRecord, revisions } from './schema.js';

/** A stored workload row (Deployment or DaemonSet). */
export type DeploymentRow = typeof deployments.$inferSelect;
/** The kinds of workload. */
export type WorkloadKind = Workload['kind'];

/** What apply did. */
export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

/** Stored spec of a Deployment (the validated manifest's spec). */
export type DeploymentSpec = Deployment['spec'];

/** Creates the namespace row if missing (namespaces are created on first use). */
export function ensureNamespace(db: Db, name: string, now: number) {
  return db.insert(namespaces).values({ name, uid: crypto.randomUUID(), createdAt: now }).onConflictDoNothing();
}

/**
 * Creates or updates a workload (apply semantics). A change to the pod template makes a new
 * revision; a change to replicas alone does not; an identical manifest writes nothing.
 * Optimistic: the update is conditional on the generation read; a concurrent writer wins, we retry.
 */
export async function applyWorkload(
  db: Db,
  d: Workload,
  namespace: string,
  now: number,
  source: string,
  opts: { rollout?: RolloutRecord; expectGeneration?: number } = {},
): Promise<{ row: DeploymentRow; outcome: ApplyOutcome }> {
  const templateDigest = await specDigest(d.spec.template);
  const kind = d.kind;
  const replicas = d.kind === 'Deployment' ? d.spec.replicas : undefined;
  const spec = { ...d.spec } as Record<string, unknown>;
  const labels = d.metadata.labels ?? {};
  const annotations = d.metadata.annotations ?? {};
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await getDeployment(db, namespace, d.metadata.name, kind);
    if (!existing) {
      const id = crypto.randomUUID();
      const row: DeploymentRow = {
        id,
        kind,
        want: 0,
        observedFleet: -1,
        namespace,
        name: d.metadata.name,
        labels,
        annotations,
        spec,
        generation: 1,
        revision: 1,
        templateDigest,
        planVersion: 0,
        planStamp: null,
        rollout: null,
        stableRevision: 0,
        promotedRevision: 0,
        createdAt: now,
        updatedAt: now,
      };
      try {
        await db.batch([
          ensureNamespace(db, namespace, now),
          db.insert(deployments).values(row),
          db.insert(revisions).values({ deploymentId: id, revision: 1, template: d.spec.template as Record<string, unknown>, digest: templateDigest, createdAt: now }),
          insertEvent(db, { namespace, kind, name: row.name, type: 'Normal', reason: 'Created', message: `created by ${source}`, source: 'api', at: now }),
        ]);
        return { row, outcome: 'created' };
      } catch (e) {
        if (isUniqueViolation(e)) continue; // created concurrently: go round and update it
        throw e;
      }
    }
    if (opts.expectGeneration !== undefined && existing.generation !== opts.expectGeneration) throw conflict(`${kind.toLowerCase()} ${namespace}/${existing.name} changed meanwhile`);
    const oldSpec = existing.spec as DeploymentSpec;
    const selectorChanged = JSON.stringify(oldSpec.selector) !== JSON.stringify(d.spec.selector);
    if (selectorChanged) throw conflict(`spec.selector of ${kind.toLowerCase()} ${namespace}/${existing.name} is immutable; delete and re-create it to change the selector`);
    const templateChanged = existing.templateDigest !== templateDigest;
    const { template: _oldTemplate, ...oldRest } = oldSpec as Record<string, unknown>;
    const { template: _newTemplate, ...newRest } = spec;
    const same =
      !templateChanged &&
      canonicalJson(oldRest) === canonicalJson(newRest) &&
      JSON.stringify(existing.labels) === JSON.stringify(labels) &&
      JSON.stringify(existing.annotations) === JSON.stringify(annotations);
    if (same) return { row: existing, outcome: 'unchanged' };
    const revision = templateChanged ? existing.revision + 1 : existing.revision;
    const updated = { labels, annotations, spec, generation: existing.generation + 1, revision, templateDigest, updatedAt: now, ...(opts.rollout ? { rollout: opts.rollout } : {}) };
    const stmts = [
      db
        .update(deployments)
        .set(updated)
        .where(and(eq(deployments.id, existing.id), eq(deployments.generation, existing.generation)))
        .returning({ id: deployments.id }),
    ] as const;
    const extra = templateChanged
      ? [
          db
            .insert(revisions)
            .values({ deploymentId: existing.id, revision, template: d.spec.template as Record<string, unknown>, digest: templateDigest, createdAt: now })
            .onConflictDoNothing(),
          insertEvent(db, { namespace, kind, name: existing.name, type: 'Normal', reason: 'NewRevision', message: `revision ${revision} by ${source}`, source: 'api', at: now }),
          // Back to a template that has pods (an undo, a rollback, an old manifest applied again):
          // those pods are of the new revision, as Kubernetes scales the old ReplicaSet back up;
          // nothing is restarted. Only if the update above applied.
          db.run(sql`UPDATE pods SET revision = ${revision}
            WHERE deployment_id = ${existing.id} AND desired = 'run'
              AND revision IN (SELECT revision FROM revisions WHERE deployment_id = ${existing.id} AND digest = ${templateDigest})
              AND EXISTS (SELECT 1 FROM deployments WHERE id = ${existing.id} AND generation = ${existing.generation + 1} AND revision = ${revision})`),
          // Keep the current revision, `revisionHistoryLimit` older ones, and the last stable one (what an automatic rollback needs).
          db.delete(revisions).where(and(eq(revisions.deploymentId, existing.id), lt(revisions.revision, revision - historyLimit(d)), ne(revisions.revision, existing.stableRevision))),
        ]
      : oldSpec.replicas !== replicas
        ? [
            insertEvent(db, {
              namespace,
              kind: 'Deployment',
              name: existing.name,
              type: 'Normal',
              reason: 'Scaled',
              message: `replicas ${oldSpec.replicas} -> ${replicas} by ${source}`,
              source: 'api',
              at: now,
            }),
          ]
        : [];
    const [res] = await db.batch([...stmts, ...extra]);
    if ((res as unknown[]).length === 1) return { row: { ...existing, ...updated }, outcome: 'configured' };
  }
  throw conflict(`${kind.toLowerCase()} ${namespace}/${d.metadata.name} is being changed concurrently; try again`);
}

/** Applies a Deployment (see applyWorkload). */
export function applyDeployment(db: Db, d: Deployment, namespace: string, now: number, source: string) {
  return applyWorkload(db, d, namespace, now, source);
}

/** One workload by namespace, name and kind. */
export function getDeployment(db: Db, namespace: string, name: string, kind: WorkloadKind = 'Deployment'): Promise<DeploymentRow | undefined> {
  return db
    .select()
    .from(deployments)
    .where(and(eq(deployments.namespace, namespace), eq(deployments.name, name), eq(deployments.kind, kind)))
    .get();
}

/** Workloads of a kind in one namespace, or in all when `namespace` is undefined. */
export function listDeployments(db: Db, namespace?: string, kind: WorkloadKind = 'Deployment'): Promise<DeploymentRow[]> {
  const conds = [eq(deployments.kind, kind)];
  if (namespace !== undefined) conds.push(eq(deployments.namespace, namespace));
  return db
    .select()
    .from(deployments)
    .where(and(...conds))
    .orderBy(deployments.namespace, deployments.name)
    .all();
}

/** Deletes a Deployment and its revisions; its pods become orphans that the controller stops. */
export async function deleteDeployment(db: Db, row: DeploymentRow, now: number, source: string): Promise<boolean> {
  const [res] = await db.batch([
    db.delete(deployments).where(eq(deployments.id, row.id)).returning({ id: deployments.id }),
    db.delete(revisions).where(eq(revisions.deploymentId, row.id)),
    insertEvent(db, { namespace: row.namespace, kind: row.kind, name: row.name, type: 'Normal', reason: 'Deleted', message: `deleted by ${source}`, source: 'api', at: now }),
  ]);
  return (res as unknown[]).length === 1;
}

/** SQLite unique-constraint failure, as libSQL and D1 report it. */
export function isUniqueViolation(e: unknown): boolean {
  const texts: string[] = [];
  for (let x: unknown = e; x && texts.length < 5; x = (x as { cause?: unknown }).cause) texts.push(String((x as { message?: unknown }).message ?? x));
  return texts.some((t) => /UNIQUE constraint failed|SQLITE_CONSTRAINT/i.test(t));
}

function historyLimit(d: Workload): number {
  return d.spec.revisionHistoryLimit ?? 10;
}

/** The revisions kept of a workload, oldest first. */
export function listRevisions(db: Db, workloadId: string) {
  return db.select().from(revisions).where(eq(revisions.deploymentId, workloadId)).orderBy(asc(revisions.revision)).all();
}

/** The manifest a stored workload was applied from (for read-modify-write changes such as scale). */
export function manifestOf(row: DeploymentRow): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: row.kind,
    metadata: { name: row.name, namespace: row.namespace, labels: row.labels, annotations: row.annotations },
    spec: row.spec,
  };
}
