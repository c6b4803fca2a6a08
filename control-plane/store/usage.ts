import { and, eq, gte, ne } from 'drizzle-orm';
import type { MetricsReport } from '../../shared/protocol.js';
import { type Db, paramLimit } from './db.js';
import { nodes, pods, usage } from './schema.js';

// The latest resource use agents reported (`flotilla top`): replaced per node by each report.

export type UsageRow = typeof usage.$inferSelect;

/**
 * Replaces a node's usage with its report, in one batch. Only pods the node runs are kept (a report
 * cannot speak for another node's pods).
 */
export async function recordUsage(db: Db, nodeId: string, report: MetricsReport, now: number): Promise<number> {
  const mine = new Set((await db.select({ id: pods.id }).from(pods).where(eq(pods.nodeId, nodeId)).all()).map((p) => p.id));
  const window = Math.round(report.window);
  const rows: UsageRow[] = [{ nodeId, podId: '', cpu: report.node.cpu, memory: report.node.memory, containers: [], window, at: now }];
  for (const p of report.pods) {
    if (!mine.has(p.podId)) continue;
    rows.push({
      nodeId,
      podId: p.podId,
      cpu: p.containers.reduce((s, c) => s + c.cpu, 0),
      memory: p.containers.reduce((s, c) => s + c.memory, 0),
      containers: p.containers,
      window,
      at: now,
    });
  }
  const per = Math.max(1, Math.floor(paramLimit(db) / 7));
  const inserts = [];
  for (let i = 0; i < rows.length; i += per) inserts.push(db.insert(usage).values(rows.slice(i, i + per)));
  await db.batch([db.delete(usage).where(eq(usage.nodeId, nodeId)), ...inserts]);
  return rows.length - 1;
}

/** Nodes' usage reported since `since`, with the node's name. */
export function nodeUsage(db: Db, since: number) {
  return db
    .select({ name: nodes.name, cpu: usage.cpu, memory: usage.memory, window: usage.window, at: usage.at, facts: nodes.facts, allocatable: nodes.allocatable })
    .from(usage)
    .innerJoin(nodes, eq(nodes.id, usage.nodeId))
    .where(and(eq(usage.podId, ''), gte(usage.at, since)))
    .orderBy(nodes.name)
    .all();
}

/** Pods' usage reported since `since` (in one namespace, or all), with the pod's name. */
export function podUsage(db: Db, since: number, namespace?: string) {
  return db
    .select({ namespace: pods.namespace, name: pods.name, cpu: usage.cpu, memory: usage.memory, containers: usage.containers, window: usage.window, at: usage.at })
    .from(usage)
    .innerJoin(pods, and(eq(pods.id, usage.podId), eq(pods.nodeId, usage.nodeId)))
    .where(and(ne(usage.podId, ''), gte(usage.at, since), namespace === undefined ? undefined : eq(pods.namespace, namespace)))
    .orderBy(pods.namespace, pods.name)
    .all();
}
