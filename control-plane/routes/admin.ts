import { Hono } from 'hono';
import { z } from 'zod';
import { parseDuration } from '../../shared/duration.js';
import { invalid, notFound } from '../../shared/errors.js';
import { fieldErrors } from '../../shared/manifest.js';
import { isLabelKey, isLabelValue } from '../../shared/names.js';
import { parseCpu, parseMemory } from '../../shared/quantity.js';
import { requireScope } from '../auth/operator.js';
import { readJson } from '../body.js';
import type { AppEnv } from '../context.js';
import { runTick } from '../controllers/tick.js';
import { renderNode } from '../render.js';
import { resealSecrets } from '../store/config.js';
import { listEvents } from '../store/events.js';
import { getNodeByName, listNodesPage, type NodePatch, patchNode, revokeNode } from '../store/nodes.js';
import { listPods, podCountOf, podCountsByNode } from '../store/pods.js';
import { createApiToken, createEnrollmentToken, listApiTokens, listEnrollmentTokens, revokeApiToken, revokeEnrollmentToken } from '../store/tokens.js';
import { secretsUnavailable } from './config.js';

const duration = z.string().refine((s) => parseDuration(s) !== null && (parseDuration(s) as number) > 0, 'must be a duration such as 30m, 1h or 7d');
const labelMap = z.record(z.string(), z.string()).superRefine((m, ctx) => {
  for (const [k, v] of Object.entries(m)) if (!isLabelKey(k) || !isLabelValue(v)) ctx.addIssue({ code: 'custom', path: [k], message: 'invalid label' });
});

export const nodePatchBody = z.strictObject({
  labels: labelMap.optional(),
  taints: z
    .array(
      z.strictObject({
        key: z.string().min(1).max(253).refine(isLabelKey, 'must be a label key'),
        value: z.string().max(63).refine(isLabelValue, 'must be a label value').optional(),
        effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']),
      }),
    )
    .max(64)
    .optional(),
  unschedulable: z.boolean().optional(),
  allocatable: z
    .strictObject({
      cpu: z
        .union([z.string(), z.number()])
        .refine((v) => parseCpu(v) !== null, 'must be a CPU quantity')
        .optional(),
      memory: z
        .union([z.string(), z.number()])
        .refine((v) => parseMemory(v) !== null, 'must be a memory quantity')
        .optional(),
    })
    .nullable()
    .optional(),
});

export const enrollmentTokenBody = z.strictObject({
  uses: z.number().int().min(1).max(100_000).default(1),
  ttl: duration.default('1h'),
  labels: labelMap.default({}),
});

export const apiTokenBody = z.strictObject({
  name: z.string().min(1).max(63),
  scope: z.enum(['admin', 'deploy', 'read']),
  namespaces: z.array(z.string()).min(1).optional(),
  ttl: duration.optional(),
});

function parse<T extends z.ZodType>(schema: T, body: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(body);
  if (!r.success) {
    const errors = fieldErrors(r.error);
    throw invalid(`invalid ${what}: ${errors[0]?.path}: ${errors[0]?.message}`, errors);
  }
  return r.data;
}

/** Cluster-scoped administration: enrollment and API tokens, nodes, signing keys, events. */
export const adminRoutes = new Hono<AppEnv>()
  .post('/enrollment-tokens', async (c) => {
    requireScope(c.var.principal, 'admin');
    const b = parse(enrollmentTokenBody, await readJson(c), 'enrollment token request');
    const { token, row } = await createEnrollmentToken(c.var.deps.db, { maxUses: b.uses, ttlMs: parseDuration(b.ttl) as number, labels: b.labels, now: c.var.deps.clock() });
    c.var.log.info({ tokenId: row.id, uses: row.maxUses }, 'enrollment token created');
    return c.json({ id: row.id, token, maxUses: row.maxUses, expiresAt: new Date(row.expiresAt).toISOString(), labels: row.labels }, 201);
  })
  .get('/enrollment-tokens', async (c) => {
    requireScope(c.var.principal, 'admin');
    const rows = await listEnrollmentTokens(c.var.deps.db);
    const now = c.var.deps.clock();
    return c.json({
      items: rows.map((r) => ({
        id: r.id,
        maxUses: r.maxUses,
        uses: r.uses,
        labels: r.labels,
        createdAt: new Date(r.createdAt).toISOString(),
        expiresAt: new Date(r.expiresAt).toISOString(),
        state: r.revokedAt ? 'revoked' : r.expiresAt <= now ? 'expired' : r.uses >= r.maxUses ? 'used' : 'active',
      })),
    });
  })
  .delete('/enrollment-tokens/:id', async (c) => {
    requireScope(c.var.principal, 'admin');
    if (!(await revokeEnrollmentToken(c.var.deps.db, c.req.param('id'), c.var.deps.clock()))) throw notFound(`enrollment token ${c.req.param('id')} not found or already revoked`);
    return c.json({ id: c.req.param('id'), revoked: true });
  })
  .post('/api-tokens', async (c) => {
    requireScope(c.var.principal, 'admin');
    const b = parse(apiTokenBody, await readJson(c), 'API token request');
    const { token, row } = await createApiToken(c.var.deps.db, {
      name: b.name,
      scope: b.scope,
      namespaces: b.namespaces ?? null,
      ttlMs: b.ttl ? (parseDuration(b.ttl) as number) : null,
      now: c.var.deps.clock(),
    });
    c.var.log.info({ tokenId: row.id, scope: row.scope }, 'API token created');
    return c.json({ id: row.id, name: row.name, token, scope: row.scope, namespaces: row.namespaces }, 201);
  })
  .get('/api-tokens', async (c) => {
    requireScope(c.var.principal, 'admin');
    const rows = await listApiTokens(c.var.deps.db);
    return c.json({ items: rows.map((r) => ({ id: r.id, name: r.name, scope: r.scope, namespaces: r.namespaces, createdAt: new Date(r.createdAt).toISOString(), revoked: r.revokedAt !== null })) });
  })
  .delete('/api-tokens/:id', async (c) => {
    requireScope(c.var.principal, 'admin');
    if (!(await revokeApiToken(c.var.deps.db, c.req.param('id'), c.var.deps.clock()))) throw notFound(`API token ${c.req.param('id')} not found or already revoked`);
    return c.json({ id: c.req.param('id'), revoked: true });
  })
  .get('/nodes', async (c) => {
    requireScope(c.var.principal, 'read');
    const { db, clock, config } = c.var.deps;
    const page = c.get('listPage');
    const { rows, remaining } = await listNodesPage(db, page ?? {});
    // A page counts its own nodes' pods (by the node index); the whole list counts all in one pass.
    const count = await podCountsByNode(db, page?.limit ? rows.map((n) => n.id) : undefined);
    const last = rows.at(-1);
    if (page) c.set('listPaged', { last: last ? ['', last.name] : undefined, remaining });
    const now = clock();
    return c.json({ apiVersion: 'v1', kind: 'NodeList', items: rows.map((n) => renderNode(n, now, config, count.get(n.id) ?? 0)) });
  })
  .get('/nodes/:name', async (c) => {
    requireScope(c.var.principal, 'read');
    const { db, clock, config } = c.var.deps;
    const n = await getNodeByName(db, c.req.param('name'));
    if (!n) throw notFound(`node ${c.req.param('name')} not found`);
    return c.json(renderNode(n, clock(), config, await podCountOf(db, n.id)));
  })
  .patch('/nodes/:name', async (c) => {
    requireScope(c.var.principal, 'admin');
    const deps = c.var.deps;
    const parsed = nodePatchBody.safeParse(await readJson(c));
    if (!parsed.success) {
      const errors = fieldErrors(parsed.error);
      throw invalid(`invalid node update: ${errors[0]?.path}: ${errors[0]?.message}`, errors);
    }
    const n = await getNodeByName(deps.db, c.req.param('name'));
    if (!n) throw notFound(`node ${c.req.param('name')} not found`);
    const b = parsed.data;
    const patch: NodePatch = {
      ...(b.labels !== undefined ? { labels: b.labels } : {}),
      ...(b.taints !== undefined ? { taints: b.taints } : {}),
      ...(b.unschedulable !== undefined ? { cordoned: b.unschedulable, ...(b.unschedulable ? {} : { draining: false }) } : {}),
      ...(b.allocatable !== undefined
        ? {
            allocatable:
              b.allocatable === null
                ? null
                : {
                    ...(b.allocatable.cpu !== undefined ? { cpu: parseCpu(b.allocatable.cpu) as number } : {}),
                    ...(b.allocatable.memory !== undefined ? { memory: parseMemory(b.allocatable.memory) as number } : {}),
                  },
          }
        : {}),
    };
    await patchNode(deps.db, n, patch, deps.clock(), operatorName(c.var.principal));
    await runTick(deps);
    const after = await getNodeByName(deps.db, n.name);
    return c.json(renderNode(after ?? n, deps.clock(), deps.config, await podCountOf(deps.db, n.id)));
  })
  .post('/nodes/:name/:verb{cordon|uncordon|drain}', async (c) => {
    requireScope(c.var.principal, 'admin');
    const deps = c.var.deps;
    const n = await getNodeByName(deps.db, c.req.param('name'));
    if (!n) throw notFound(`node ${c.req.param('name')} not found`);
    const verb = c.req.param('verb');
    const patch: NodePatch = verb === 'uncordon' ? { cordoned: false, draining: false } : verb === 'cordon' ? { cordoned: true } : { cordoned: true, draining: true };
    await patchNode(deps.db, n, patch, deps.clock(), operatorName(c.var.principal));
    await runTick(deps);
    const pods = (await listPods(deps.db, { nodeId: n.id })).filter((p) => !p.pinnedNode);
    const after = await getNodeByName(deps.db, n.name);
    return c.json({ ...renderNode(after ?? n, deps.clock(), deps.config, await podCountOf(deps.db, n.id)), remainingPods: pods.map((p) => `${p.namespace}/${p.name}`) });
  })
  .post('/nodes/:name/revoke', async (c) => {
    requireScope(c.var.principal, 'admin');
    const deps = c.var.deps;
    const n = await getNodeByName(deps.db, c.req.param('name'));
    if (!n) throw notFound(`node ${c.req.param('name')} not found`);
    const p = c.var.principal;
    await revokeNode(deps.db, n, deps.clock(), p.kind === 'operator' ? p.name : 'unknown');
    deps.directory?.markRevoked(n.id);
    c.var.log.warn({ node: n.name, nodeId: n.id }, 'node revoked');
    deps.defer?.(runTick(deps));
    return c.json({ name: n.name, revoked: true });
  })
  .post('/keys/rotate', async (c) => {
    requireScope(c.var.principal, 'admin');
    const kid = await c.var.deps.keys.rotate(c.var.deps.clock());
    c.var.log.info({ kid }, 'lease-signing key rotated');
    return c.json({ kid, jwks: await c.var.deps.keys.jwks(c.var.deps.clock()) });
  })
  .post('/keys/rotate-secrets', async (c) => {
    // Re-seal every Secret under the current master key (the old one configured as previous).
    requireScope(c.var.principal, 'admin');
    const deps = c.var.deps;
    if (!deps.secrets) throw secretsUnavailable(deps);
    const r = await resealSecrets(deps.db, deps.secrets);
    c.var.log.info({ kid: deps.secrets.kid, resealed: r.resealed, remaining: r.remaining }, 'secrets re-sealed');
    return c.json({ kid: deps.secrets.kid, ...r });
  })
  .get('/events', async (c) => {
    requireScope(c.var.principal, 'admin');
    const limit = Math.min(1000, Math.max(1, Number(c.req.query('limit') ?? 200) || 200));
    const after = c.req.query('after');
    return c.json({ items: await listEvents(c.var.deps.db, { limit, afterId: after ? Number(after) : undefined }) });
  });

function operatorName(p: AppEnv['Variables']['principal']): string {
  return p.kind === 'operator' ? p.name : 'unknown';
}
