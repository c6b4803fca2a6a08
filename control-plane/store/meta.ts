import { eq, sql } from 'drizzle-orm';
import { sha256Hex } from '../../shared/digest.js';
import type { Db } from './db.js';
import { apiTokens, meta, namespaces } from './schema.js';

/** Cluster identity: `issuer` signs leases, `audience` is what agent JWTs must name. */
export interface ClusterInfo {
  clusterId: string;
  issuer: string;
  audience: string;
}

/** Creates the cluster id and the `default` namespace on first use (idempotent, race-safe). */
export async function ensureCluster(db: Db, now: number): Promise<ClusterInfo> {
  await db.batch([
    db.insert(meta).values({ key: 'cluster_id', value: crypto.randomUUID() }).onConflictDoNothing(),
    db.insert(namespaces).values({ name: 'default', uid: crypto.randomUUID(), createdAt: now }).onConflictDoNothing(),
  ]);
  const row = await db.select().from(meta).where(eq(meta.key, 'cluster_id')).get();
  if (!row) throw new Error('cluster id missing after insert');
  return clusterInfo(row.value);
}

/** Derives issuer and audience from the cluster id. */
export function clusterInfo(clusterId: string): ClusterInfo {
  return { clusterId, issuer: `flotilla:${clusterId}`, audience: `flotilla:${clusterId}:agents` };
}

/** Registers a bootstrap admin token (by its hash) if it is not there yet. */
export async function ensureBootstrapToken(db: Db, token: string, now: number): Promise<void> {
  const hash = await sha256Hex(token);
  await db
    .insert(apiTokens)
    .values({ id: `tok-${hash.slice(0, 12)}`, name: 'bootstrap-admin', hash, scope: 'admin', namespaces: null, createdAt: now })
    .onConflictDoNothing();
}

/**
 * Bumps the fleet version: any change to which nodes exist or to their labels and taints. DaemonSets
 * record the version they were planned against, so an idle check in SQL can tell when to re-plan.
 */
export function bumpFleet(db: Db) {
  return db.run(sql`INSERT INTO meta (key, value) VALUES ('fleet_version', '1') ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)`);
}

/** SQL expression: the current fleet version. */
export const fleetVersionSql = sql`COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fleet_version'), 0)`;
