import { and, eq, inArray, isNotNull, isNull, or, sql } from 'drizzle-orm';
import { canonicalJson } from '../../shared/digest.js';
import { conflict } from '../../shared/errors.js';
import { LOAD_BALANCING_ANNOTATION, NODE_PORT_RANGE, type PodSpec, type ServiceManifest, type ServicePort, selects } from '../../shared/manifest.js';
import type { ServiceState } from '../../shared/protocol.js';
import type { Db } from './db.js';
import { insertEvent } from './events.js';
import { nodeLeases, nodes, pods, services } from './schema.js';
import type { ApplyOutcome } from './workloads.js';
import { ensureNamespace } from './workloads.js';

/** A stored Service row. */
export type ServiceRow = typeof services.$inferSelect;
/** The stored spec of a Service (ports with their nodePorts allocated). */
export type ServiceSpec = ServiceManifest['spec'];

/** Service addresses: 127.77.0.1 - 127.77.255.254 on every node (loopback, so nothing leaves the node). */
const CLUSTER_IP_PREFIX = '127.77.';

function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A free address for a new service: derived from its name, probing on from there. */
function allocateClusterIp(key: string, taken: ReadonlySet<string>): string {
  const size = 65534;
  const start = hash32(key) % size;
  for (let i = 0; i < size; i++) {
    const n = ((start + i) % size) + 1;
    const ip = `${CLUSTER_IP_PREFIX}${n >> 8}.${n & 255}`;
    if (!taken.has(ip)) return ip;
  }
  throw conflict('no free service address is left in 127.77.0.0/16');
}

function allocateNodePort(key: string, taken: ReadonlySet<number>): number {
  const [lo, hi] = NODE_PORT_RANGE;
  const size = hi - lo + 1;
  const start = hash32(key) % size;
  for (let i = 0; i < size; i++) {
    const p = lo + ((start + i) % size);
    if (!taken.has(p)) return p;
  }
  throw conflict(`no free nodePort is left in ${lo}-${hi}`);
}

/** The nodePorts a stored service holds. */
export function nodePortsOf(row: Pick<ServiceRow, 'spec'>): number[] {
  return ((row.spec as ServiceSpec).ports ?? []).flatMap((p) => (p.nodePort ? [p.nodePort] : []));
}

/**
 * Statement bumping the desired version of every node that proxies a namespace's services: nodes
 * running its pods and, when it has a NodePort service (or `all`), every node.
 */
export function bumpServiceConsumers(db: Db, namespace: string, all = false) {
  if (all) return db.run(sql`UPDATE nodes SET desired_version = desired_version + 1 WHERE revoked_at IS NULL`);
  return db.run(sql`UPDATE nodes SET desired_version = desired_version + 1
    WHERE id IN (SELECT node_id FROM pods WHERE namespace = ${namespace} AND node_id IS NOT NULL)
       OR EXISTS (SELECT 1 FROM services WHERE namespace = ${namespace} AND type = 'NodePort')`);
}

/** Ids of the nodes that proxy the services of these namespaces (to wake their long-polls). */
export async function serviceConsumers(db: Db, namespaces: readonly string[]): Promise<string[]> {
  if (namespaces.length === 0) return [];
  const withServices = await db.selectDistinct({ namespace: services.namespace, type: services.type }).from(services).where(inArray(services.namespace, namespaces)).all();
  if (withServices.length === 0) return [];
  if (withServices.some((s) => s.type === 'NodePort')) return (await db.select({ id: nodes.id }).from(nodes).where(isNull(nodes.revokedAt)).all()).map((r) => r.id);
  const rows = await db
    .selectDistinct({ id: pods.nodeId })
    .from(pods)
    .where(and(inArray(pods.namespace, [...new Set(withServices.map((s) => s.namespace))]), isNotNull(pods.nodeId)))
    .all();
  return rows.map((r) => r.id as string);
}

/**
 * Creates or updates a Service. Its address is kept for its lifetime; nodePorts are allocated
 * when not given and kept across updates. Ports must be unique within the namespace (pods reach every
 * service of their namespace on the same gateway address of their node) and nodePorts across the cluster.
 */
export async function applyService(db: Db, m: ServiceManifest, namespace: string, now: number, source: string): Promise<{ row: ServiceRow; outcome: ApplyOutcome }> {
  const all = await db.select().from(services).all();
  const existing = all.find((s) => s.namespace === namespace && s.name === m.metadata.name);
  const others = all.filter((s) => s !== existing);
  for (const [i, p] of m.spec.ports.entries()) {
    const clash = others.find((s) => s.namespace === namespace && ((s.spec as ServiceSpec).ports ?? []).some((q) => q.port === p.port));
    if (clash)
      throw conflict(`spec.ports[${i}].port: port ${p.port} is already used by service ${namespace}/${clash.name}; the services of a namespace share one address per node, so their ports must differ`);
    const np = p.nodePort;
    const npClash = np ? others.find((s) => nodePortsOf(s).includes(np)) : undefined;
    if (npClash) throw conflict(`spec.ports[${i}].nodePort: ${np} is already used by service ${npClash.namespace}/${npClash.name}`);
  }
  // Keep the nodePorts already allocated to this service's ports; allocate the rest.
  const takenPorts = new Set(others.flatMap(nodePortsOf));
  const prev = existing ? ((existing.spec as ServiceSpec).ports ?? []) : [];
  const ports: ServicePort[] = m.spec.ports.map((p) => {
    if (m.spec.type !== 'NodePort' || p.nodePort) return p;
    const kept = prev.find((q) => q.nodePort && (p.name ? q.name === p.name : q.port === p.port))?.nodePort;
    const nodePort = kept && !takenPorts.has(kept) ? kept : allocateNodePort(`${namespace}/${m.metadata.name}/${p.port}`, takenPorts);
    takenPorts.add(nodePort);
    return { ...p, nodePort };
  });
  const spec: ServiceSpec = { type: m.spec.type, ...(m.spec.selector ? { selector: m.spec.selector } : {}), ports };
  const labels = m.metadata.labels ?? {};
  const annotations = m.metadata.annotations ?? {};
  const wasNodePort = existing?.type === 'NodePort';
  if (existing) {
    if (canonicalJson(existing.spec) === canonicalJson(spec) && canonicalJson(existing.labels) === canonicalJson(labels) && canonicalJson(existing.annotations) === canonicalJson(annotations))
      return { row: existing, outcome: 'unchanged' };
    const updated = { type: spec.type, spec: spec as unknown as Record<string, unknown>, labels, annotations, version: existing.version + 1, updatedAt: now };
    const [res] = await db.batch([
      db
        .update(services)
        .set(updated)
        .where(and(eq(services.id, existing.id), eq(services.version, existing.version)))
        .returning({ id: services.id }),
      bumpServiceConsumers(db, namespace, wasNodePort || spec.type === 'NodePort'),
      insertEvent(db, { namespace, kind: 'Service', name: existing.name, type: 'Normal', reason: 'Updated', message: `updated by ${source}`, source: 'api', at: now }),
    ]);
    if ((res as unknown[]).length !== 1) throw conflict(`service ${namespace}/${existing.name} is being changed concurrently; try again`);
    return { row: { ...existing, ...updated }, outcome: 'configured' };
  }
  const row: ServiceRow = {
    id: crypto.randomUUID(),
    namespace,
    name: m.metadata.name,
    type: spec.type,
    spec: spec as unknown as Record<string, unknown>,
    labels,
    annotations,
    clusterIp: allocateClusterIp(`${namespace}/${m.metadata.name}`, new Set(all.map((s) => s.clusterIp))),
    version: 1,
    createdAt: now,
    updatedAt: now,
  };
  try {
    await db.batch([
      ensureNamespace(db, namespace, now),
      db.insert(services).values(row),
      bumpServiceConsumers(db, namespace, spec.type === 'NodePort'),
      insertEvent(db, { namespace, kind: 'Service', name: row.name, type: 'Normal', reason: 'Created', message: `created by ${source}; address ${row.clusterIp}`, source: 'api', at: now }),
    ]);
  } catch (e) {
    if (/UNIQUE/i.test(String((e as Error).message) + String((e as { cause?: Error }).cause?.message ?? ''))) throw conflict(`service ${namespace}/${row.name} was created concurrently; try again`);
    throw e;
  }
  return { row, outcome: 'created' };
}

export function getService(db: Db, namespace: string, name: string): Promise<ServiceRow | undefined> {
  return db
    .select()
    .from(services)
    .where(and(eq(services.namespace, namespace), eq(services.name, name)))
    .get();
}

export function listServices(db: Db, namespace?: string): Promise<ServiceRow[]> {
  return db
    .select()
    .from(services)
    .where(namespace === undefined ? undefined : eq(services.namespace, namespace))
    .orderBy(services.namespace, services.name)
    .all();
}

export async function deleteService(db: Db, row: ServiceRow, now: number, source: string): Promise<boolean> {
  const [res] = await db.batch([
    db.delete(services).where(eq(services.id, row.id)).returning({ id: services.id }),
    // After the delete: a NodePort service's nodes are every node, which the statement can no longer see.
    bumpServiceConsumers(db, row.namespace, row.type === 'NodePort'),
    insertEvent(db, { namespace: row.namespace, kind: 'Service', name: row.name, type: 'Normal', reason: 'Deleted', message: `deleted by ${source}`, source: 'api', at: now }),
  ]);
  return (res as unknown[]).length === 1;
}

/** One backend of a service port: where a proxy connects. */
export interface EndpointAddress {
  ip: string;
  port: number;
  pod: string;
  nodeName: string;
  ready: boolean;
}

/** The endpoints of one service, per port. */
export interface ServiceEndpoints {
  service: ServiceRow;
  /** Pods the selector matches (run, on a node), ready or not. */
  matched: number;
  ports: { name?: string; port: number; nodePort?: number; targetPort: number | string; addresses: EndpointAddress[] }[];
}

interface CandidatePod {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  spec: Record<string, unknown>;
  status: Record<string, unknown> | null;
  ready: boolean;
  nodeName: string;
  advertise: string | null;
  lastSeenAt: number;
  leaseExpiresAt: number;
}

async function candidatePods(db: Db, namespaces: readonly string[]): Promise<CandidatePod[]> {
  if (namespaces.length === 0) return [];
  return db
    .select({
      name: pods.name,
      namespace: pods.namespace,
      labels: pods.labels,
      spec: pods.spec,
      status: pods.status,
      ready: pods.ready,
      nodeName: nodes.name,
      advertise: sql<string | null>`json_extract(${nodes.facts}, '$.advertiseAddress')`,
      lastSeenAt: nodeLeases.lastSeenAt,
      leaseExpiresAt: nodeLeases.leaseExpiresAt,
    })
    .from(pods)
    .innerJoin(nodes, eq(nodes.id, pods.nodeId))
    .innerJoin(nodeLeases, eq(nodeLeases.nodeId, pods.nodeId))
    .where(and(inArray(pods.namespace, [...new Set(namespaces)]), eq(pods.desired, 'run')))
    .orderBy(pods.name)
    .all();
}

/** Where a pod serves a target port: the published host port on its node's address (or the port itself with hostNetwork). */
function addressOf(p: CandidatePod, target: number | string): { ip: string; port: number } | undefined {
  const spec = p.spec as PodSpec;
  const declared = spec.containers.flatMap((c) => c.ports ?? []);
  const containerPort = typeof target === 'number' ? target : declared.find((d) => d.name === target)?.containerPort;
  if (containerPort === undefined) return undefined;
  const node = p.advertise ?? '127.0.0.1';
  if (spec.hostNetwork) return declared.some((d) => d.containerPort === containerPort) ? { ip: node, port: containerPort } : undefined;
  const containers = ((p.status?.containers as { hostPorts?: { containerPort: number; protocol: string; hostIP: string; hostPort: number }[] }[] | undefined) ?? []).flatMap((c) => c.hostPorts ?? []);
  const hp = containers.find((h) => h.containerPort === containerPort && h.protocol === 'TCP' && h.hostPort > 0);
  if (!hp) return undefined;
  const ip = hp.hostIP === '' || hp.hostIP === '0.0.0.0' || hp.hostIP === '::' ? node : hp.hostIP;
  return { ip, port: hp.hostPort };
}

/**
 * The endpoints of these services, now: for each port, the pods the selector matches, with where
 * they serve it. An address is `ready` only for a Ready pod that is not terminating, on a node whose
 * lease is live and that is Ready (heartbeating within `graceMs`).
 */
export async function endpointsOf(db: Db, rows: readonly ServiceRow[], now: number, graceMs: number): Promise<ServiceEndpoints[]> {
  const candidates = await candidatePods(
    db,
    rows.map((r) => r.namespace),
  );
  return rows.map((service) => {
    const spec = service.spec as ServiceSpec;
    const matched = candidates.filter((p) => p.namespace === service.namespace && selects(spec.selector, p.labels));
    return {
      service,
      matched: matched.length,
      ports: spec.ports.map((sp) => {
        const target = sp.targetPort ?? sp.port;
        const addresses: EndpointAddress[] = [];
        for (const p of matched) {
          const a = addressOf(p, target);
          if (!a) continue;
          const live = p.leaseExpiresAt > now && now - p.lastSeenAt <= graceMs;
          addresses.push({ ...a, pod: p.name, nodeName: p.nodeName, ready: p.ready && live });
        }
        return { ...(sp.name ? { name: sp.name } : {}), port: sp.port, ...(sp.nodePort ? { nodePort: sp.nodePort } : {}), targetPort: target, addresses };
      }),
    };
  });
}

/** A short content hash of a service's ready endpoints: the Endpoints' resourceVersion (equal iff the endpoints are). */
export function endpointsVersion(e: ServiceEndpoints): string {
  const body = canonicalJson({ v: e.service.version, p: e.ports.map((p) => ({ n: p.name, p: p.port, a: p.addresses.map((a) => [a.ip, a.port, a.pod, a.ready]) })) });
  return `${e.service.version}-${hash32(body).toString(36)}`;
}

/** The services a node proxies (those of the namespaces it runs pods of, and every NodePort service), with their ready endpoints. */
export async function servicesForNode(db: Db, nodeId: string, now: number, graceMs: number): Promise<ServiceState[]> {
  const rows = await db
    .select()
    .from(services)
    .where(or(eq(services.type, 'NodePort'), inArray(services.namespace, db.selectDistinct({ namespace: pods.namespace }).from(pods).where(eq(pods.nodeId, nodeId)))))
    .all();
  if (rows.length === 0) return [];
  const eps = await endpointsOf(db, rows, now, graceMs);
  return eps.map((e) => ({
    namespace: e.service.namespace,
    name: e.service.name,
    clusterIP: e.service.clusterIp,
    type: e.service.type,
    balance: e.service.annotations[LOAD_BALANCING_ANNOTATION] === 'least-connections' ? 'least-connections' : 'round-robin',
    ports: e.ports.map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      port: p.port,
      ...(p.nodePort ? { nodePort: p.nodePort } : {}),
      endpoints: p.addresses.filter((a) => a.ready).map((a) => ({ ip: a.ip, port: a.port })),
    })),
  }));
}
