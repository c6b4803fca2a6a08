import { stringify } from 'yaml';
import { formatAge, parseDuration } from '../shared/duration.js';
import { parseCpu, parseMemory } from '../shared/quantity.js';
import { parseSelector } from '../shared/selector.js';
import { CliError, call, type Target } from './api.js';
import { KIND_ALIASES } from './manifests.js';
import { claimTable, configTable, daemonSetTable, deploymentTable, endpointsTable, nodeTable, podTable, serviceTable, table as tableOf } from './output.js';

type Obj = Record<string, unknown> & {
  kind?: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; creationTimestamp?: string; resourceVersion?: string };
};
type Event = Obj & { type: string; reason: string; message: string; lastTimestamp: string; involvedObject: { kind: string; name: string; namespace?: string } };

export const KINDS_HELP = 'namespaces, nodes, deployments, daemonsets, pods, events, secrets, configmaps, services, endpoints, pvc';

/** The singular resource name `-o name` prints (`deployment.apps/web`), as kubectl. */
const NAME_PREFIX: Record<string, string> = {
  namespaces: 'namespace',
  nodes: 'node',
  deployments: 'deployment.apps',
  daemonsets: 'daemonset.apps',
  pods: 'pod',
  events: 'event',
  secrets: 'secret',
  configmaps: 'configmap',
  services: 'service',
  endpoints: 'endpoints',
  persistentvolumeclaims: 'persistentvolumeclaim',
};

export interface GetOptions {
  namespace?: string;
  all: boolean;
  output?: string;
  selector?: string;
}

const OUTPUTS = ['table', 'wide', 'json', 'yaml', 'name'];

/** A kind argument as its API plural; a usage error (exit 2) for an unknown one. */
export function kindOf(arg: string | undefined, verb: string): string {
  const kind = KIND_ALIASES[arg ?? ''];
  if (!kind) throw new CliError(`${verb}: unknown kind "${arg ?? ''}" (${KINDS_HELP})`, 2);
  return kind;
}

/** The API path of a list or of one object. */
export function pathOf(kind: string, o: GetOptions, name?: string): string {
  const ns = encodeURIComponent(o.namespace ?? 'default');
  const n = name === undefined ? '' : `/${encodeURIComponent(name)}`;
  if (kind === 'nodes') return `/v1/nodes${n}`;
  if (kind === 'namespaces') return `/v1/namespaces${n}`;
  if (kind === 'events') return o.all && !name ? '/v1/events?limit=1000' : `/v1/namespaces/${ns}/events`;
  if (kind === 'endpoints') return name ? `/v1/namespaces/${ns}/services${n}/endpoints` : `/v1/namespaces/${ns}/endpoints`;
  return name ? `/v1/namespaces/${ns}/${kind}${n}` : o.all ? `/v1/${kind}` : `/v1/namespaces/${ns}/${kind}`;
}

function checkOutput(output: string | undefined): void {
  if (output !== undefined && !OUTPUTS.includes(output)) throw new CliError(`unknown output format "${output}" (${OUTPUTS.join(', ')})`, 2);
}

function checkSelector(selector: string | undefined): void {
  if (selector === undefined) return;
  try {
    parseSelector(selector);
  } catch (e) {
    throw new CliError(`-l: ${(e as Error).message}`, 2);
  }
}

/** Cluster-wide events (admin) come as stored rows, node events among them: the same shape as the namespaced ones. */
function eventFromRow(e: { id: number; namespace: string; kind: string; name: string; type: string; reason: string; message: string; at: number; source?: string }): Event {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: String(e.id), namespace: e.namespace },
    type: e.type,
    reason: e.reason,
    message: e.message,
    source: { component: e.source },
    lastTimestamp: new Date(e.at).toISOString(),
    involvedObject: { kind: e.kind, name: e.name, namespace: e.namespace },
  };
}

/** Reads a whole list, page by page (500 objects a page), with the label selector. */
export async function fetchList(t: Target, kind: string, o: GetOptions): Promise<{ items: Obj[]; resourceVersion?: string; list: Record<string, unknown> }> {
  const base = pathOf(kind, o);
  if (kind === 'events' && o.all) {
    const r = await call<{ items: Parameters<typeof eventFromRow>[0][] }>(t, 'GET', base);
    return { items: r.body.items.map(eventFromRow), list: { apiVersion: 'v1', kind: 'EventList', items: r.body.items.map(eventFromRow) } };
  }
  const items: Obj[] = [];
  let cont: string | undefined;
  let first: Record<string, unknown> | undefined;
  for (let page = 0; page < 10_000; page++) {
    const q = new URLSearchParams();
    if (o.selector) q.set('labelSelector', o.selector);
    if (!['events', 'endpoints', 'namespaces'].includes(kind)) q.set('limit', '500');
    if (cont) q.set('continue', cont);
    const qs = q.toString();
    const r = await call<{ items: Obj[]; metadata?: { resourceVersion?: string; continue?: string } }>(t, 'GET', qs ? `${base}${base.includes('?') ? '&' : '?'}${qs}` : base);
    first ??= r.body as unknown as Record<string, unknown>;
    items.push(...r.body.items);
    cont = r.body.metadata?.continue;
    if (!cont) break;
  }
  const rv = (first?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
  return { items, resourceVersion: rv, list: { ...first, metadata: { ...((first?.metadata as object) ?? {}), continue: undefined }, items } };
}

/** Table text (header first) for objects of a kind. */
export function tableFor(kind: string, items: Obj[], o: GetOptions, now = Date.now()): string {
  const all = o.all;
  if (kind === 'events') {
    const evs = items as Event[];
    return tableOf(
      ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE'],
      evs.map((e) => [
        new Date(e.lastTimestamp).toISOString().slice(11, 19),
        e.type,
        e.reason,
        `${e.involvedObject.kind.toLowerCase()}/${all && e.involvedObject.namespace ? `${e.involvedObject.namespace}/` : ''}${e.involvedObject.name}`,
        e.message,
      ]),
    );
  }
  const x = items as never[];
  if (kind === 'namespaces')
    return tableOf(
      ['NAME', 'STATUS', 'AGE'],
      items.map((i) => [i.metadata.name, String((i.status as { phase?: string })?.phase ?? 'Active'), i.metadata.creationTimestamp ? formatAge(now - Date.parse(i.metadata.creationTimestamp)) : '']),
    );
  if (kind === 'nodes') return nodeTable(x, now);
  if (kind === 'deployments') return deploymentTable(x, now, all);
  if (kind === 'daemonsets') return daemonSetTable(x, now, all);
  if (kind === 'secrets' || kind === 'configmaps') return configTable(x, now, all);
  if (kind === 'services') return serviceTable(x, now, all);
  if (kind === 'endpoints') return endpointsTable(x);
  if (kind === 'persistentvolumeclaims') return claimTable(x, now, all);
  return podTable(x, now, all, o.output === 'wide');
}

function nameOf(kind: string, o: Obj): string {
  return `${NAME_PREFIX[kind] ?? kind}/${o.metadata.name}`;
}

/** Prints objects in the chosen output: a table (default, wide), JSON, YAML or names. */
function print(kind: string, body: unknown, items: Obj[], o: GetOptions, single: boolean): void {
  if (o.output === 'json') console.log(JSON.stringify(body, null, 2));
  else if (o.output === 'yaml') process.stdout.write(stringify(body));
  else if (o.output === 'name') for (const i of items) console.log(nameOf(kind, i));
  else if (items.length === 0 && !single)
    console.error(`No ${kind} found${kind === 'nodes' ? '' : ` in ${o.all ? 'any namespace' : `namespace ${o.namespace ?? 'default'}`}`}${o.selector ? ` matching ${o.selector}` : ''}.`);
  else console.log(tableFor(kind, items, o));
}

/** `flotilla get KIND [NAME] [-o ...] [-l SELECTOR] [-A] [-w [--timeout D]]`. */
export async function get(t: Target, kind: string, name: string | undefined, o: GetOptions & { watch?: boolean; timeout?: string }): Promise<number> {
  checkOutput(o.output);
  checkSelector(o.selector);
  if (name && o.selector) throw new CliError('get: a name and -l cannot be used together', 2);
  const timeoutMs = o.timeout === undefined ? undefined : parseDuration(o.timeout);
  if (timeoutMs === null) throw new CliError(`--timeout: not a duration: ${o.timeout}`, 2);
  if (kind === 'namespaces' && name) throw new CliError('get namespaces: list them (no single namespace view)', 2);
  if (o.watch && (kind === 'endpoints' || kind === 'namespaces'))
    throw new CliError(`get -w: not for ${kind === 'endpoints' ? 'endpoints (watch the service)' : 'events of all namespaces (use -n NS)'}`, 2);
  let items: Obj[];
  let rv: string | undefined;
  if (name) {
    const r = await call<Obj>(t, 'GET', pathOf(kind, o, name));
    items = [r.body];
    rv = r.body.metadata.resourceVersion;
    print(kind, r.body, items, o, true);
  } else {
    const l = await fetchList(t, kind, o);
    items = l.items;
    rv = l.resourceVersion;
    print(kind, l.list, items, o, false);
  }
  if (!o.watch) return 0;
  if (kind === 'events' && o.all) return followEventLog(t, o, items, timeoutMs);
  return watchPrint(t, kind, name, o, rv, timeoutMs, items.length > 0);
}

/**
 * Follows changes after the list: long-polls the watch API and prints each changed object (a table
 * row; a JSON or YAML document with its change type; a name). Relists when the history kept no
 * longer reaches back (410). Runs until interrupted, or for --timeout.
 */
async function watchPrint(t: Target, kind: string, name: string | undefined, o: GetOptions, rv: string | undefined, timeoutMs: number | undefined, headerShown: boolean): Promise<number> {
  const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
  let shown = headerShown;
  // Without a version (an object that had none), the watch starts from now.
  let version = rv;
  while (Date.now() < deadline) {
    const q = new URLSearchParams({ watch: '1', timeoutSeconds: String(Math.max(1, Math.min(30, Math.ceil((deadline - Date.now()) / 1000)))) });
    if (version !== undefined) q.set('resourceVersion', version);
    if (o.selector) q.set('labelSelector', o.selector);
    let r: Awaited<ReturnType<typeof call<{ items: Array<{ type: string; object: Obj }>; metadata: { resourceVersion: string } }>>>;
    try {
      r = await call(t, 'GET', `${pathOf(kind, { ...o, all: o.all && kind !== 'events' })}?${q}`);
    } catch (e) {
      if (e instanceof CliError && /410|older than the change history/.test(e.message)) {
        version = (await fetchList(t, kind, o)).resourceVersion;
        continue;
      }
      throw e;
    }
    version = r.body.metadata.resourceVersion;
    for (const ev of r.body.items) {
      if (name && ev.object.metadata.name !== name) continue;
      if (o.output === 'json') console.log(JSON.stringify(ev));
      else if (o.output === 'yaml') process.stdout.write(`---\n${stringify(ev)}`);
      else if (o.output === 'name') console.log(`${nameOf(kind, ev.object)} ${ev.type.toLowerCase()}`);
      else {
        const lines = tableFor(kind, [ev.object], o).split('\n');
        console.log((shown ? lines.slice(1) : lines).join('\n'));
        shown = true;
      }
    }
  }
  return 0;
}

/** `events -A -w` (admin): follows the cluster's event log (node events included) by id, once a second. */
async function followEventLog(t: Target, o: GetOptions, seen: Obj[], timeoutMs: number | undefined): Promise<number> {
  const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
  let after = Math.max(0, ...seen.map((e) => Number(e.metadata.name) || 0));
  let shown = seen.length > 0;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
    const r = await call<{ items: Parameters<typeof eventFromRow>[0][] }>(t, 'GET', `/v1/events?after=${after}&limit=1000`);
    if (r.body.items.length === 0) continue;
    after = Math.max(after, ...r.body.items.map((e) => e.id));
    const evs = r.body.items.map(eventFromRow);
    if (o.output === 'json') for (const e of evs) console.log(JSON.stringify({ type: 'ADDED', object: e }));
    else if (o.output === 'name') for (const e of evs) console.log(`event/${e.metadata.name} added`);
    else {
      const lines = tableFor('events', evs, o).split('\n');
      console.log((shown ? lines.slice(1) : lines).join('\n'));
      shown = true;
    }
  }
  return 0;
}

function indent(text: string, by = '  '): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => by + l)
    .join('\n');
}

function mapLine(m: Record<string, string> | undefined): string {
  const e = Object.entries(m ?? {});
  return e.length === 0 ? '<none>' : e.map(([k, v]) => `${k}=${v}`).join('\n               ');
}

/** `flotilla describe KIND NAME`: what kubectl describe shows: identity, spec, status, conditions, recent events. */
export async function describe(t: Target, kind: string, name: string, o: GetOptions): Promise<number> {
  const obj = (await call<Obj>(t, 'GET', pathOf(kind, o, name))).body;
  const m = obj.metadata;
  const now = Date.now();
  const out: string[] = [];
  out.push(`Name:          ${m.name}`);
  if (m.namespace) out.push(`Namespace:     ${m.namespace}`);
  out.push(`Kind:          ${obj.kind ?? kind}`);
  out.push(`Labels:        ${mapLine(m.labels)}`);
  out.push(`Annotations:   ${mapLine(m.annotations)}`);
  if (m.creationTimestamp) out.push(`Created:       ${m.creationTimestamp} (${formatAge(now - Date.parse(m.creationTimestamp))} ago)`);
  if (m.resourceVersion) out.push(`Version:       ${m.resourceVersion}`);
  const rest = Object.fromEntries(Object.entries(obj).filter(([k]) => !['apiVersion', 'kind', 'metadata', 'spec', 'status'].includes(k)));
  if (obj.spec !== undefined) out.push('Spec:', indent(stringify(obj.spec)));
  if (Object.keys(rest).length > 0) out.push(indent(stringify(rest), ''));
  const status = obj.status as { conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> } | undefined;
  if (status !== undefined) {
    const { conditions, ...other } = status;
    if (Object.keys(other).length > 0) out.push('Status:', indent(stringify(other)));
    if (conditions && conditions.length > 0)
      out.push(
        'Conditions:',
        indent(
          tableOf(
            ['TYPE', 'STATUS', 'REASON', 'MESSAGE'],
            conditions.map((c) => [c.type, c.status, c.reason ?? '', c.message ?? '']),
          ),
        ),
      );
  }
  if (kind === 'nodes') {
    const pods = (await fetchList(t, 'pods', { all: true })).items.filter((p) => (p.spec as { nodeName?: string }).nodeName === m.name);
    out.push(`Pods:          ${pods.length}`);
    if (pods.length > 0) out.push(indent(tableFor('pods', pods, { all: true })));
  }
  // Events about this object (nodes' are cluster-wide: admin only, skipped when the token cannot read them).
  let events: Event[] = [];
  const evKind = String(obj.kind ?? '');
  if (kind === 'nodes') {
    try {
      events = (await fetchList(t, 'events', { all: true })).items.filter((e) => (e as Event).involvedObject.kind === 'Node' && (e as Event).involvedObject.name === m.name) as Event[];
    } catch {
      events = [];
    }
  } else {
    const q = new URLSearchParams({ kind: evKind, name: m.name });
    events = (await call<{ items: Event[] }>(t, 'GET', `/v1/namespaces/${encodeURIComponent(m.namespace ?? 'default')}/events?${q}`)).body.items;
  }
  events = events.slice(-20);
  out.push(
    events.length === 0
      ? 'Events:        <none>'
      : `Events:\n${indent(
          tableOf(
            ['LAST SEEN', 'TYPE', 'REASON', 'MESSAGE'],
            events.map((e) => [`${formatAge(now - Date.parse(e.lastTimestamp))} ago`, e.type, e.reason, e.message]),
          ),
        )}`,
  );
  console.log(out.join('\n'));
  return 0;
}

type Usage = { cpu: string; memory: string };

/** `flotilla top nodes|pods [--containers]`: resource use as agents last reported it. */
export async function top(t: Target, what: string | undefined, o: GetOptions & { containers?: boolean; sort?: string }): Promise<number> {
  checkOutput(o.output);
  const cpuOf = (u: Usage) => parseCpu(u.cpu) ?? 0;
  const memOf = (u: Usage) => parseMemory(u.memory) ?? 0;
  const mi = (b: number) => `${Math.round(b / 2 ** 20)}Mi`;
  if (what === 'nodes' || what === 'node' || what === 'no') {
    const [m, nodes] = await Promise.all([
      call<{ items: Array<{ metadata: { name: string }; usage: Usage; timestamp: string }> }>(t, 'GET', '/v1/metrics/nodes'),
      call<{ items: Obj[] }>(t, 'GET', '/v1/nodes'),
    ]);
    if (o.output === 'json' || o.output === 'yaml') {
      process.stdout.write(o.output === 'json' ? `${JSON.stringify(m.body, null, 2)}\n` : stringify(m.body));
      return 0;
    }
    const alloc = new Map(nodes.body.items.map((n) => [n.metadata.name, (n.status as { allocatable?: Usage }).allocatable]));
    const rows = m.body.items.map((i) => {
      const a = alloc.get(i.metadata.name);
      const pct = (v: number, of: number | undefined) => (of ? `${Math.round((v / of) * 100)}%` : '-');
      return [i.metadata.name, formatCpuCell(cpuOf(i.usage)), pct(cpuOf(i.usage), a ? cpuOf(a) : undefined), mi(memOf(i.usage)), pct(memOf(i.usage), a ? memOf(a) : undefined)];
    });
    if (rows.length === 0) throw new CliError('no node has reported resource use yet (agents report every FLOTILLA_METRICS_INTERVAL, 30 s by default)');
    console.log(tableOf(['NAME', 'CPU(cores)', 'CPU%', 'MEMORY(bytes)', 'MEMORY%'], rows));
    return 0;
  }
  if (what === 'pods' || what === 'pod' || what === 'po') {
    const path = o.all ? '/v1/metrics/pods' : `/v1/namespaces/${encodeURIComponent(o.namespace ?? 'default')}/metrics/pods`;
    const m = await call<{ items: Array<{ metadata: { name: string; namespace: string }; usage: Usage; containers: Array<{ name: string; usage: Usage }> }> }>(t, 'GET', path);
    if (o.output === 'json' || o.output === 'yaml') {
      process.stdout.write(o.output === 'json' ? `${JSON.stringify(m.body, null, 2)}\n` : stringify(m.body));
      return 0;
    }
    let items = m.body.items;
    if (o.sort === 'cpu') items = [...items].sort((a, b) => cpuOf(b.usage) - cpuOf(a.usage));
    if (o.sort === 'memory') items = [...items].sort((a, b) => memOf(b.usage) - memOf(a.usage));
    if (items.length === 0)
      throw new CliError(`no pod ${o.all ? '' : `in namespace ${o.namespace ?? 'default'} `}has reported resource use yet (agents report every FLOTILLA_METRICS_INTERVAL, 30 s by default)`);
    const ns = o.all ? ['NAMESPACE'] : [];
    if (o.containers)
      console.log(
        tableOf(
          [...ns, 'POD', 'NAME', 'CPU(cores)', 'MEMORY(bytes)'],
          items.flatMap((p) => p.containers.map((c) => [...(o.all ? [p.metadata.namespace] : []), p.metadata.name, c.name, formatCpuCell(cpuOf(c.usage)), mi(memOf(c.usage))])),
        ),
      );
    else
      console.log(
        tableOf(
          [...ns, 'NAME', 'CPU(cores)', 'MEMORY(bytes)'],
          items.map((p) => [...(o.all ? [p.metadata.namespace] : []), p.metadata.name, formatCpuCell(cpuOf(p.usage)), mi(memOf(p.usage))]),
        ),
      );
    return 0;
  }
  throw new CliError('usage: flotilla top nodes | top pods [-n NS | -A] [--containers] [--sort-by cpu|memory]', 2);
}

function formatCpuCell(milli: number): string {
  return `${milli}m`;
}
