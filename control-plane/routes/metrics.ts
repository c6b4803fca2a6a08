import { Hono } from 'hono';
import { formatCpu } from '../../shared/quantity.js';
import { canSeeNamespace, requireScope } from '../auth/operator.js';
import type { AppEnv, Deps } from '../context.js';
import { nodeUsage, podUsage } from '../store/usage.js';
import { ns } from './workloads.js';

// Resource use as agents report it, in the shape of Kubernetes' metrics.k8s.io (NodeMetrics,
// PodMetrics): what `flotilla top` shows. Samples older than three report windows (at least a
// minute) are left out: a node that stopped reporting has no current figures.

const memory = (bytes: number) => `${Math.round(bytes / 1024)}Ki`;
const since = (deps: Deps) => deps.clock() - Math.max(60_000, 3 * deps.config.metricsIntervalMs);

function podMetrics(r: Awaited<ReturnType<typeof podUsage>>[number]) {
  return {
    apiVersion: 'metrics.k8s.io/v1beta1',
    kind: 'PodMetrics',
    metadata: { name: r.name, namespace: r.namespace },
    timestamp: new Date(r.at).toISOString(),
    window: `${r.window}s`,
    containers: r.containers.map((c) => ({ name: c.name, usage: { cpu: formatCpu(c.cpu), memory: memory(c.memory) } })),
    usage: { cpu: formatCpu(r.cpu), memory: memory(r.memory) },
  };
}

export const metricsRoutes = new Hono<AppEnv>()
  .get('/metrics/nodes', async (c) => {
    requireScope(c.var.principal, 'read');
    const rows = await nodeUsage(c.var.deps.db, since(c.var.deps));
    return c.json({
      apiVersion: 'metrics.k8s.io/v1beta1',
      kind: 'NodeMetricsList',
      items: rows.map((r) => ({
        apiVersion: 'metrics.k8s.io/v1beta1',
        kind: 'NodeMetrics',
        metadata: { name: r.name },
        timestamp: new Date(r.at).toISOString(),
        window: `${r.window}s`,
        usage: { cpu: formatCpu(r.cpu), memory: memory(r.memory) },
      })),
    });
  })
  .get('/metrics/pods', async (c) => {
    requireScope(c.var.principal, 'read');
    const rows = (await podUsage(c.var.deps.db, since(c.var.deps))).filter((r) => canSeeNamespace(c.var.principal, r.namespace));
    return c.json({ apiVersion: 'metrics.k8s.io/v1beta1', kind: 'PodMetricsList', items: rows.map(podMetrics) });
  })
  .get('/namespaces/:ns/metrics/pods', async (c) => {
    const namespace = ns(c.req.param('ns'));
    requireScope(c.var.principal, 'read', namespace);
    const rows = await podUsage(c.var.deps.db, since(c.var.deps), namespace);
    return c.json({ apiVersion: 'metrics.k8s.io/v1beta1', kind: 'PodMetricsList', items: rows.map(podMetrics) });
  });
