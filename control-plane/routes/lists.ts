import type { MiddlewareHandler } from 'hono';
import { gone, invalid } from '../../shared/errors.js';
import { matchesSelector, parseSelector, type Requirement } from '../../shared/selector.js';
import { canSeeNamespace, requireScope } from '../auth/operator.js';
import type { AppEnv, Deps } from '../context.js';
import { renderEvent, renderNode, renderPod, renderWorkload } from '../render.js';
import { type ChangeRow, currentSeq, prunedThrough, readChanges, rowFromSnapshot } from '../store/changes.js';
import { listNodes } from '../store/nodes.js';
import { listPods, type PodRow } from '../store/pods.js';
import { configObjects, deployments, events, nodes, pods, services, volumeClaims } from '../store/schema.js';
import { endpointsOf } from '../store/services.js';
import { renderClaim } from './claims.js';
import { renderConfig, usersOf } from './config.js';
import { renderService } from './services.js';
import { ns as checkNamespace } from './workloads.js';

// What every list of the API shares, in one place: label selectors (`labelSelector`), pages
// (`limit` + `continue`), the list's `metadata.resourceVersion`, and watches (`watch=1` from a
// resourceVersion, a long-poll over the change log that triggers write in the same transaction as
// each change: every change once, in commit order).

/** List paths: plural -> the kinds its watch follows. */
const KINDS: Record<string, readonly string[]> = {
  nodes: ['Node'],
  deployments: ['Deployment'],
  daemonsets: ['DaemonSet'],
  pods: ['Pod'],
  configmaps: ['ConfigMap'],
  secrets: ['Secret'],
  services: ['Service'],
  persistentvolumeclaims: ['PersistentVolumeClaim'],
  events: ['Event'],
};
const LIST = /^\/v1\/(?:namespaces\/([^/]+)\/)?([a-z]+)$/;

/** Most changes one watch response carries; the client continues from its resourceVersion. */
const WATCH_BATCH = 500;
const MAX_WATCH_SECONDS = 300;
const MAX_PAGE = 5000;

type Obj = { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> } };

function selectorOf(text: string | undefined): Requirement[] {
  if (text === undefined) return [];
  try {
    return parseSelector(text);
  } catch (e) {
    throw invalid(`labelSelector: ${(e as Error).message}`, [{ path: 'labelSelector', message: (e as Error).message }]);
  }
}

function keyOf(o: Obj): [string, string] {
  return [o.metadata?.namespace ?? '', o.metadata?.name ?? ''];
}

/** Orders by namespace, then name (names of digits, like events', by number). */
function compareKeys(a: [string, string], b: [string, string]): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  if (/^\d+$/.test(a[1]) && /^\d+$/.test(b[1]) && a[1].length !== b[1].length) return a[1].length - b[1].length;
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

function encodeContinue(key: [string, string], rv: number): string {
  return btoa(JSON.stringify({ k: key, rv }))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

function decodeContinue(token: string): [string, string] {
  try {
    const v = JSON.parse(atob(token.replace(/-/g, '+').replace(/_/g, '/'))) as { k?: unknown };
    if (Array.isArray(v.k) && v.k.length === 2 && v.k.every((x) => typeof x === 'string')) return v.k as [string, string];
  } catch {}
  throw invalid('continue: not a continue token of this list (take it from metadata.continue of the previous page)', [{ path: 'continue', message: 'not a continue token' }]);
}

function wholeNumber(name: string, v: string | undefined, max: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v) || Number(v) > max) throw invalid(`${name} must be a whole number up to ${max}: "${v}"`, [{ path: name, message: `must be a whole number up to ${max}` }]);
  return Number(v);
}

/** Renders changes as watch events, their objects as the API shows them. */
async function renderChanges(deps: Deps, rows: readonly ChangeRow[]): Promise<Array<{ type: string; object: Obj }>> {
  const now = deps.clock();
  const kinds = new Set(rows.map((r) => r.kind));
  const needNodes = ['Pod', 'PersistentVolumeClaim', 'Node'].some((k) => kinds.has(k));
  const nodeRows = needNodes ? await listNodes(deps.db, true) : [];
  const nodeById = new Map(nodeRows.map((n) => [n.id, n]));
  const podsOf = new Map<string, PodRow[]>();
  const users = new Map<string, Awaited<ReturnType<typeof usersOf>>>();
  const out: Array<{ type: string; object: Obj }> = [];
  for (const ch of rows) {
    let object: Obj;
    switch (ch.kind) {
      case 'Deployment':
      case 'DaemonSet': {
        const d = rowFromSnapshot(deployments, ch.object);
        if (!podsOf.has(d.namespace)) podsOf.set(d.namespace, await listPods(deps.db, { namespace: d.namespace }));
        object = renderWorkload(d, ch.type === 'DELETED' ? [] : (podsOf.get(d.namespace) ?? []), now);
        break;
      }
      case 'Pod': {
        const p = rowFromSnapshot(pods, ch.object);
        const n = p.nodeId ? nodeById.get(p.nodeId) : undefined;
        object = renderPod(p, n ? { name: n.name, leaseExpiresAt: n.leaseExpiresAt } : undefined);
        break;
      }
      case 'ConfigMap':
      case 'Secret': {
        const r = rowFromSnapshot(configObjects, ch.object);
        if (!users.has(r.namespace)) users.set(r.namespace, await usersOf(deps, r.namespace));
        const usedBy = ch.type === 'DELETED' ? [] : (users.get(r.namespace)?.(r.kind, r.name) ?? []);
        object = renderConfig(r, usedBy, r.kind === 'ConfigMap' ? (JSON.parse(r.data ?? '{}') as Record<string, string>) : undefined);
        break;
      }
      case 'Service': {
        const s = rowFromSnapshot(services, ch.object);
        const [e] = ch.type === 'DELETED' ? [{ service: s, matched: 0, ports: [] }] : await endpointsOf(deps.db, [s], now, deps.config.nodeGraceMs);
        object = renderService(e ?? { service: s, matched: 0, ports: [] });
        break;
      }
      case 'PersistentVolumeClaim': {
        const r = rowFromSnapshot(volumeClaims, ch.object);
        object = renderClaim(r, new Map(nodeRows.map((n) => [n.id, n.name])));
        break;
      }
      case 'Node': {
        const n = rowFromSnapshot(nodes, ch.object);
        const live = nodeById.get(n.id);
        object = renderNode({ ...n, lastSeenAt: live?.lastSeenAt ?? 0, leaseExpiresAt: live?.leaseExpiresAt ?? 0 }, now, deps.config);
        break;
      }
      default:
        object = renderEvent(rowFromSnapshot(events, ch.object));
    }
    out.push({ type: ch.type, object });
  }
  return out;
}

/**
 * `GET <list>?watch=1&resourceVersion=N[&timeoutSeconds=T][&labelSelector=S]`: the changes after N
 * (at most 500; `metadata.resourceVersion` says where to continue), or, when there are none yet,
 * waits for one up to T seconds (default 30) and answers with none and the version to go on from.
 */
async function watch(c: Parameters<MiddlewareHandler<AppEnv>>[0], kinds: readonly string[], namespace: string | undefined, selector: Requirement[]): Promise<Response> {
  const deps = c.var.deps;
  const p = c.var.principal;
  const q = c.req.query();
  const timeout = wholeNumber('timeoutSeconds', q.timeoutSeconds, MAX_WATCH_SECONDS) ?? 30;
  const from = q.resourceVersion;
  let after: number;
  if (from === undefined || from === '' || from === '0') after = await currentSeq(deps.db);
  else if (/^\d+$/.test(from)) after = Number(from);
  else throw invalid(`resourceVersion must be a version from a list or watch of this API: "${from}"`, [{ path: 'resourceVersion', message: 'not a resourceVersion' }]);
  const pruned = await prunedThrough(deps.db);
  if (after < pruned) throw gone(`resourceVersion ${after} is older than the change history kept (from ${pruned}, FLOTILLA_WATCH_RETENTION); list again and watch from the list's resourceVersion`);
  const deadline = deps.clock() + timeout * 1000;
  for (;;) {
    const head = await currentSeq(deps.db);
    const rows = head > after ? await readChanges(deps.db, { kinds, namespace, after, upTo: head, limit: WATCH_BATCH }) : [];
    const next = rows.length === WATCH_BATCH ? (rows.at(-1)?.seq ?? head) : head;
    const visible = rows.filter((r) => namespace !== undefined || r.kind === 'Node' || canSeeNamespace(p, r.namespace));
    const items = (await renderChanges(deps, visible)).filter((e) => matchesSelector(selector, e.object.metadata?.labels));
    after = Math.max(after, next);
    if (items.length > 0 || deps.clock() >= deadline || c.req.raw.signal.aborted) return c.json({ apiVersion: 'v1', kind: 'WatchEventList', metadata: { resourceVersion: String(after) }, items });
    await new Promise((r) => setTimeout(r, Math.min(deps.config.watchPollMs, Math.max(1, deadline - deps.clock()))));
  }
}

/** Label selectors, pages, resourceVersion and watches for every list route (GET only). */
export const listFeatures: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method !== 'GET') return next();
  const m = LIST.exec(c.req.path);
  const kinds = m ? KINDS[m[2] as string] : undefined;
  if (!m || !kinds || (m[2] === 'nodes' && m[1] !== undefined)) return next();
  const namespace = m[1] === undefined ? undefined : checkNamespace(decodeURIComponent(m[1]));
  const q = c.req.query();
  const selector = selectorOf(q.labelSelector);
  if (q.watch === '1' || q.watch === 'true') {
    requireScope(c.var.principal, m[2] === 'events' && namespace === undefined ? 'admin' : 'read', namespace);
    if (m[2] === 'events' && namespace === undefined)
      throw invalid('watch events per namespace (/v1/namespaces/{ns}/events?watch=1)', [{ path: 'watch', message: 'not for the cluster-wide event log' }]);
    return watch(c, kinds, namespace, selector);
  }
  const paged = m[2] !== 'events'; // the event lists take `limit` as "the newest N"
  const limit = paged ? wholeNumber('limit', q.limit, MAX_PAGE) : undefined;
  const after = paged && q.continue ? decodeContinue(q.continue) : undefined;
  // Read before the list: a change committed meanwhile may show in the list and in a watch from this version, never in neither.
  const rv = await currentSeq(c.var.deps.db);
  await next();
  if (c.res.status !== 200) return;
  const body = (await c.res.json()) as { items?: Obj[]; metadata?: Record<string, unknown> };
  if (!Array.isArray(body.items)) return;
  let items = body.items.filter((o) => matchesSelector(selector, o.metadata?.labels));
  const meta: Record<string, unknown> = { ...(body.metadata ?? {}), resourceVersion: String(rv) };
  if (paged && (limit !== undefined || after !== undefined)) {
    items = items
      .map((o) => [keyOf(o), o] as const)
      .sort((a, b) => compareKeys(a[0], b[0]))
      .filter(([k]) => after === undefined || compareKeys(k, after) > 0)
      .map(([, o]) => o);
    if (limit !== undefined && limit > 0 && items.length > limit) {
      meta.continue = encodeContinue(keyOf(items[limit - 1] as Obj), rv);
      meta.remainingItemCount = items.length - limit;
      items = items.slice(0, limit);
    }
  }
  const headers = new Headers(c.res.headers);
  headers.delete('content-length');
  c.res = new Response(JSON.stringify({ ...body, metadata: meta, items }), { status: 200, headers });
};
