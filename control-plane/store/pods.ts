import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { PodSpec } from '../../shared/manifest.js';
import type { PodView } from '../core/types.js';
import type { Db } from './db.js';
import { nodes, pods } from './schema.js';

/** A stored pod row. */
export type PodRow = typeof pods.$inferSelect;

/** Projects a pod row to the view the pure core uses; its lease expiry is its node's. */
export function toPodView(r: PodRow, nodeLease: ReadonlyMap<string, number>): PodView {
  return {
    id: r.id,
    deploymentId: r.deploymentId,
    revision: r.revision,
    nodeId: r.nodeId,
    desired: r.desired,
    phase: r.phase,
    ready: r.ready,
    createdAt: r.createdAt,
    leaseExpiresAt: r.nodeId ? (nodeLease.get(r.nodeId) ?? 0) : 0,
    nodeSelector: (r.spec as PodSpec).nodeSelector ?? {},
  };
}

/** Pods of one namespace (or all), optionally of one node. */
export function listPods(db: Db, q: { namespace?: string; nodeId?: string } = {}): Promise<PodRow[]> {
  const conds = [];
  if (q.namespace !== undefined) conds.push(eq(pods.namespace, q.namespace));
  if (q.nodeId !== undefined) conds.push(eq(pods.nodeId, q.nodeId));
  return db
    .select()
    .from(pods)
    .where(and(...conds))
    .orderBy(pods.namespace, pods.name)
    .all();
}

/** One pod by namespace and name. */
export function getPod(db: Db, namespace: string, name: string): Promise<PodRow | undefined> {
  return db
    .select()
    .from(pods)
    .where(and(eq(pods.namespace, namespace), eq(pods.name, name)))
    .get();
}

/** Pods a node should run now: assigned to it and not terminating. */
export function desiredPodsOf(db: Db, nodeId: string): Promise<PodRow[]> {
  return db
    .select()
    .from(pods)
    .where(and(eq(pods.nodeId, nodeId), eq(pods.desired, 'run')))
    .orderBy(pods.name)
    .all();
}

/** Bumps the desired-state version (the agent's ETag) of nodes. */
export function bumpNodes(db: Db, nodeIds: readonly string[]) {
  return db
    .update(nodes)
    .set({ desiredVersion: sql`${nodes.desiredVersion} + 1` })
    .where(inArray(nodes.id, [...nodeIds]));
}

/** Assigns a pending pod to a node with a fresh epoch; a no-op if someone else placed it. */
export function assignPod(db: Db, podId: string, nodeId: string, now: number) {
  return db
    .update(pods)
    .set({ nodeId, epoch: sql`${pods.epoch} + 1`, reason: null, message: null, updatedAt: now })
    .where(and(eq(pods.id, podId), isNull(pods.nodeId), eq(pods.desired, 'run')))
    .returning({ id: pods.id, nodeId: pods.nodeId });
}
