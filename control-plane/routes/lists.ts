import type { Context, MiddlewareHandler } from 'hono';
import { type Difference, diffJson } from '../../shared/diff.js';
import { FlotillaError, gone, invalid } from '../../shared/errors.js';
import { matchesSelector, parseSelector, type Requirement } from '../../shared/selector.js';
import { canSeeNamespace, requireScope } from '../auth/operator.js';
import { intParam, readDocuments } from '../body.js';
import type { AppEnv, Deps } from '../context.js';
import { renderEvent, renderNode, renderPod, renderWorkload } from '../render.js';
import { type ChangeRow, currentSeq, preconditionStmt, prunedThrough, readChanges, rowFromSnapshot, snapshotsOf, versionsOf } from '../store/changes.js';
import type { Db } from '../store/db.js';
import { nodeNamesOf } from '../store/nodes.js';
import { podCountsByNode, workloadPods } from '../store/pods.js';
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

/** Renders changes as watch events, their objects as the API shows them. */
async function renderChanges(deps: Deps, rows: readonly ChangeRow[]): Promise<Array<{ type: string; object: Obj }>> {
  const now = deps.clock();
  // The nodes the batch's pods, claims and nodes name, and the pods of the batch's workloads: read
  // by key, never every node or pod of the fleet.
  const nodeIds: string[] = [];
  const workloadIds: string[] = [];
  const changedNodes: string[] = [];
  for (const ch of rows) {
    const keyed = ch.kind === 'Node' || ch.kind === 'Pod' || ch.kind === 'PersistentVolumeClaim' || ((ch.kind === 'Deployment' || ch.kind === 'DaemonSet') && ch.type !== 'DELETED');
    if (!keyed) continue;
    const o = JSON.parse(ch.object) as { id: string; node_id?: string | null };
    if (ch.kind === 'Node') {
      nodeIds.push(o.id);
      if (ch.type !== 'DELETED') changedNodes.push(o.id);
    } else if (ch.kind === 'Deployment' || ch.kind === 'DaemonSet') workloadIds.push(o.id);
    else if (o.node_id) nodeIds.push(o.node_id);
  }
  const nodeById = await nodeNamesOf(deps.db, nodeIds);
  // A node as the API shows it counts its pods (status.pods), read for the batch's live nodes only.
  const podsOnNode = changedNodes.length > 0 ? await podCountsByNode(deps.db, [...new Set(changedNodes)]) : new Map<string, number>();
  const workloadPodRows = await workloadPods(deps.db, { deploymentIds: [...new Set(workloadIds)] });
  const users = new Map<string, Awaited<ReturnType<typeof usersOf>>>();
  const out: Array<{ type: string; object: Obj }> = [];
  for (const ch of rows) {
    let object: Obj;
    switch (ch.kind) {
      case 'Deployment':
      case 'DaemonSet': {
        const d = rowFromSnapshot(deployments, ch.object);
        object = renderWorkload(d, ch.type === 'DELETED' ? [] : workloadPodRows, now);
        break;
      }
      case 'Pod': {
        const p = rowFromSnapshot(pods, ch.object);
        const n = p.nodeId ? nodeById.get(p.nodeId) : undefined;
        object = renderPod(p, n);
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
        object = renderClaim(r, nodeById);
        break;
      }
      case 'Node': {
        const n = rowFromSnapshot(nodes, ch.object);
        const live = nodeById.get(n.id);
        object = renderNode({ ...n, lastSeenAt: live?.lastSeenAt ?? 0, leaseExpiresAt: live?.leaseExpiresAt ?? 0 }, now, deps.config, ch.type === 'DELETED' ? undefined : (podsOnNode.get(n.id) ?? 0));
        break;
      }
      default:
        object = renderEvent(rowFromSnapshot(events, ch.object));
    }
    // The object's version is its change's: a client can write it back with that precondition.
    if (object.metadata) (object.metadata as Record<string, unknown>).resourceVersion = String(ch.seq);
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
  const timeout = intParam(q.timeoutSeconds, 'timeoutSeconds', 0, MAX_WATCH_SECONDS) ?? 30;
  const from = q.resourceVersion;
  let after: number;
  // No version: from now. "0" is what a list of an empty change log says: from its start.
  if (from === undefined || from === '') after = await currentSeq(deps.db);
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
const listFeatures: MiddlewareHandler<AppEnv> = async (c, next) => {
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
  const limit = paged ? intParam(q.limit, 'limit', 0, MAX_PAGE) : undefined;
  const after = paged && q.continue ? decodeContinue(q.continue) : undefined;
  // Without a label selector, the routes of the big lists (pods, nodes) read just the page in SQL.
  if (paged && selector.length === 0 && (limit !== undefined || after !== undefined)) c.set('listPage', { limit, after });
  // Read before the list: a change committed meanwhile may show in the list and in a watch from this version, never in neither.
  const rv = await currentSeq(c.var.deps.db);
  await next();
  if (c.res.status !== 200) return;
  const body = (await c.res.json()) as { items?: Obj[]; metadata?: Record<string, unknown> };
  if (!Array.isArray(body.items)) return;
  let items = body.items.filter((o) => matchesSelector(selector, o.metadata?.labels));
  const meta: Record<string, unknown> = { ...(body.metadata ?? {}), resourceVersion: String(rv) };
  const inSql = c.get('listPaged');
  if (inSql) {
    if (inSql.remaining > 0 && inSql.last) {
      meta.continue = encodeContinue([...inSql.last] as [string, string], rv);
      meta.remainingItemCount = inSql.remaining;
    }
  } else if (paged && (limit !== undefined || after !== undefined)) {
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
  // A page read in SQL is in SQL's key order: only its key range of the change log is read.
  const last = items.at(-1);
  const versions = inSql && !last ? new Map<string, number>() : await versionsOf(c.var.deps.db, kinds, namespace, undefined, inSql && last ? { after, through: keyOf(last) } : undefined);
  for (const o of items as Array<Obj & { kind?: string }>) setVersion(o, versions);
  replaceBody(c, { ...body, metadata: meta, items });
};

function replaceBody(c: Context<AppEnv>, body: unknown, status = c.res.status): void {
  const headers = new Headers(c.res.headers);
  headers.delete('content-length');
  headers.set('content-type', 'application/json');
  c.res = new Response(JSON.stringify(body), { status, headers });
}

function setVersion(o: Obj & { kind?: string }, versions: ReadonlyMap<string, number>): string | undefined {
  if (!o.metadata?.name || !o.kind) return undefined;
  const v = versions.get(`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
  if (v === undefined) return undefined;
  (o.metadata as Record<string, unknown>).resourceVersion = String(v);
  return String(v);
}

const OBJECT = /^\/v1\/namespaces\/([^/]+)\/([a-z]+)\/([^/]+)$/;
const NODE = /^\/v1\/nodes\/([^/]+)$/;

/** Ends a dry run at the first write: everything before it (validation, conflicts) ran; nothing is stored. */
class DryRunStop extends FlotillaError {
  constructor() {
    super('dry-run', 200, 'dry run: nothing was written');
  }
}

/** `db` whose batches go through `batch` (the original passed in). Statements built from it are the same. */
function interceptBatch(db: Db, batch: (orig: Db['batch'], stmts: Parameters<Db['batch']>[0]) => Promise<unknown>): Db {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === 'batch') return (stmts: Parameters<Db['batch']>[0]) => batch(target.batch.bind(target) as Db['batch'], stmts);
      return Reflect.get(target, prop, target);
    },
  });
}

/** Columns that change without the user changing anything (not reported as "what changed"). */
const NOT_USER_FIELDS = new Set(['id', 'created_at', 'updated_at', 'plan_version', 'plan_stamp', 'observed_fleet', 'want', 'kid', 'data']);

/** 409 for a stale resourceVersion, saying what changed since (from the change log) and what to do. */
async function staleVersion(db: Db, kind: string, namespace: string, name: string, expected: number): Promise<FlotillaError> {
  const { then, now } = await snapshotsOf(db, kind, namespace, name, expected);
  const what = `${kind.toLowerCase()} ${namespace}/${name}`;
  const errors = [{ path: 'metadata.resourceVersion', message: `stale: ${expected}, now ${now && now.type !== 'DELETED' ? now.seq : 'deleted'}` }];
  if (!now || now.type === 'DELETED') return new FlotillaError('conflict', 409, `${what} ${now ? 'was deleted' : 'does not exist'}; it is not at resourceVersion ${expected}`, errors);
  let changed = '';
  if (then) {
    const a = JSON.parse(then.object) as Record<string, unknown>;
    const b = JSON.parse(now.object) as Record<string, unknown>;
    const cols = Object.keys(b).filter((k) => !NOT_USER_FIELDS.has(k) && JSON.stringify(a[k]) !== JSON.stringify(b[k]));
    if (cols.length > 0) changed = `: ${cols.map((k) => (k === 'version' ? 'data' : k.replace(/_([a-z])/g, (_, ch: string) => ch.toUpperCase()))).join(', ')} changed`;
  }
  return new FlotillaError(
    'conflict',
    409,
    `${what} was changed since resourceVersion ${expected} (now ${now.seq}${changed}); read it again, redo your change and send the new resourceVersion`,
    errors,
  );
}

/** The resourceVersion a write is conditional on: `If-Match` (an ETag), else the body's metadata.resourceVersion. */
async function expectedVersion(c: Context<AppEnv>): Promise<number | undefined> {
  let v = c.req.header('if-match')?.trim();
  if (v !== undefined) v = v.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
  else if (c.req.method === 'PUT') {
    try {
      const [doc] = await readDocuments(c);
      const rv = (doc as Obj & { metadata?: { resourceVersion?: unknown } })?.metadata?.resourceVersion;
      if (typeof rv === 'string' && rv !== '') v = rv;
    } catch {
      return undefined; // the route reports the body's problem
    }
  }
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v))
    throw invalid(`resourceVersion "${v}" is not a version this API gave out`, [{ path: c.req.header('if-match') ? 'If-Match' : 'metadata.resourceVersion', message: 'not a resourceVersion' }]);
  return Number(v);
}

/** Values the server fills in when a field is left out: not a change when the sent document leaves them out. */
const DEFAULTS: Array<[RegExp, unknown]> = [
  [/^metadata\.annotations\.deployment\.kubernetes\.io\/revision$/, undefined],
  [/^spec\.strategy$/, { type: 'RollingUpdate' }],
  [/^spec\.updateStrategy$/, { type: 'RollingUpdate' }],
  [/^spec\.minReadySeconds$/, 0],
  [/^spec\.progressDeadlineSeconds$/, 600],
  [/^spec\.revisionHistoryLimit$/, 10],
  [/^spec\.paused$/, false],
  [/^spec\.type$/, 'ClusterIP'],
  [/^spec\.template\.spec\.restartPolicy$/, 'Always'],
  [/\.ports\[\d+\]\.protocol$/, 'TCP'],
];

function isDefault(d: Difference): boolean {
  return d.op === 'remove' && DEFAULTS.some(([re, v]) => re.test(d.path) && (v === undefined || JSON.stringify(v) === JSON.stringify(d.from)));
}

/** What a dry run compares: what the user controls of an object (server-filled fields left out). */
function userView(o: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!o) return {};
  const meta = (o.metadata ?? {}) as { labels?: Record<string, string>; annotations?: Record<string, string> };
  const out: Record<string, unknown> = { metadata: { labels: meta.labels ?? {}, annotations: meta.annotations ?? {} } };
  if (o.spec !== undefined) {
    const spec = { ...(o.spec as Record<string, unknown>) };
    delete spec.clusterIP;
    delete spec.volumeName;
    delete spec.volumeMode;
    if (Array.isArray(spec.ports)) spec.ports = spec.ports.map((p: Record<string, unknown>) => Object.fromEntries(Object.entries(p).filter(([k]) => k !== 'nodePort')));
    const t = spec.template as { metadata?: { annotations?: Record<string, string> } } | undefined;
    if (t?.metadata?.annotations?.['flotilla.dev/config-versions'] !== undefined) {
      const { 'flotilla.dev/config-versions': _, ...rest } = t.metadata.annotations;
      spec.template = { ...t, metadata: { ...t.metadata, annotations: rest } };
    }
    out.spec = spec;
  }
  if (o.kind === 'ConfigMap') out.data = o.data ?? {};
  if (o.kind === 'Secret') {
    // Never values: which keys there are (a sent Secret's from data/stringData, a stored one's from keys).
    const keys = Array.isArray(o.keys) ? (o.keys as Array<{ name: string }>).map((k) => k.name) : [...Object.keys((o.data as object) ?? {}), ...Object.keys((o.stringData as object) ?? {})];
    out.keys = [...new Set(keys)].sort();
    out.type = o.type;
  }
  return out;
}

/**
 * Per object: its `metadata.resourceVersion` (and ETag) on every response, `If-Match` /
 * metadata.resourceVersion preconditions on writes (checked first, and atomically with the write),
 * and `?dryRun=All`: the route runs up to its first write, so every check it makes runs; the answer
 * says what would happen and what would change.
 */
function objectFeatures(app: () => { request: (path: string, init: RequestInit) => Response | Promise<Response> }): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const method = c.req.method;
    const o = OBJECT.exec(c.req.path);
    const n = o ? null : NODE.exec(c.req.path);
    const list = !o && !n ? LIST.exec(c.req.path) : null;
    const plural = o?.[2] ?? list?.[2];
    const kind = plural ? KINDS[plural]?.[0] : n ? 'Node' : undefined;
    if (!kind || (list && (method !== 'POST' || list[1] === undefined))) return next();
    const namespace = o ? decodeURIComponent(o[1] as string) : list ? decodeURIComponent(list[1] as string) : '';
    const deps = c.var.deps;
    const dryRun = c.req.query('dryRun');
    if (dryRun !== undefined && dryRun !== 'All') throw invalid(`dryRun must be "All": "${dryRun}"`, [{ path: 'dryRun', message: 'must be All' }]);
    if (dryRun === 'All' && o && (method === 'PUT' || method === 'DELETE' || method === 'POST')) {
      const current = await app().request(c.req.path, { headers: { authorization: c.req.header('authorization') ?? '' } });
      const before = current.status === 200 ? ((await current.json()) as Record<string, unknown>) : undefined;
      c.set('deps', { ...deps, db: interceptBatch(deps.db, () => Promise.reject(new DryRunStop())) });
      await next();
      const stopped = c.error instanceof DryRunStop;
      if (!stopped && (c.error || c.res.status >= 300)) return; // refused: the route's own error
      let changes: ReturnType<typeof diffJson> = [];
      if (method === 'PUT') {
        const [doc] = await readDocuments(c);
        changes = diffJson(userView(before), userView(doc as Record<string, unknown>)).filter((d) => !isDefault(d));
      }
      const outcome = method === 'DELETE' ? (stopped ? 'deleted' : 'unchanged') : !before ? 'created' : stopped ? 'configured' : 'unchanged';
      c.error = undefined;
      replaceBody(c, { apiVersion: 'v1', kind: 'DryRunResult', dryRun: true, outcome, object: { kind, namespace, name: decodeURIComponent(o[3] as string) }, changes }, 200);
      return;
    }
    if (o && (method === 'PUT' || method === 'DELETE')) {
      const name = decodeURIComponent(o[3] as string);
      const expected = await expectedVersion(c);
      if (expected !== undefined) {
        const current = (await versionsOf(deps.db, [kind], namespace, name)).get(`${kind}/${namespace}/${name}`) ?? 0;
        if (current !== expected) throw await staleVersion(deps.db, kind, namespace, name, expected);
        let armed = true;
        const db = interceptBatch(deps.db, async (orig, stmts) => {
          if (!armed) return orig(stmts);
          armed = false; // only the first write is conditional: what follows (controllers) must not be
          try {
            const res = (await orig([preconditionStmt(deps.db, kind, namespace, name, expected), ...stmts] as never)) as unknown[];
            return res.slice(1);
          } catch (e) {
            const now = (await versionsOf(deps.db, [kind], namespace, name)).get(`${kind}/${namespace}/${name}`) ?? 0;
            if (now !== expected) throw await staleVersion(deps.db, kind, namespace, name, expected);
            throw e;
          }
        });
        c.set('deps', { ...deps, db });
      }
    }
    await next();
    if (method === 'DELETE' || c.res.status >= 300 || !(c.res.headers.get('content-type') ?? '').includes('json')) return;
    const body = (await c.res.clone().json()) as Obj & { kind?: string };
    if (!body?.metadata?.name || body.kind !== kind) return;
    const v = setVersion(body, await versionsOf(deps.db, [kind], body.metadata.namespace ?? '', body.metadata.name));
    replaceBody(c, body);
    if (v) c.header('ETag', `"${v}"`);
  };
}

/** The list and object features of the API, for every kind (see above). */
export function apiFeatures(app: () => { request: (path: string, init: RequestInit) => Response | Promise<Response> }): MiddlewareHandler<AppEnv> {
  const objects = objectFeatures(app);
  return (c, next) => {
    // A dry run is honoured only where it is implemented; anywhere else it would write for real.
    if (c.req.method !== 'GET' && c.req.query('dryRun') !== undefined && !((c.req.method === 'PUT' || c.req.method === 'DELETE') && OBJECT.test(c.req.path)))
      throw invalid(`dryRun is supported on PUT and DELETE of an object (/v1/namespaces/{ns}/{kind}/{name}), not on ${c.req.method} ${c.req.path}: nothing was changed`, [
        { path: 'dryRun', message: 'not supported here' },
      ]);
    return c.req.method === 'GET' && LIST.test(c.req.path) ? listFeatures(c, next) : objects(c, next);
  };
}
