import { and, eq, inArray, lte, sql } from 'drizzle-orm';
import { Hono } from 'hono';
import { CompactEncrypt, importJWK } from 'jose';
import { forbidden, invalid, isFlotillaError } from '../../shared/errors.js';
import type { LeaseClaims } from '../../shared/lease.js';
import { fieldErrors, referencedNames } from '../../shared/manifest.js';
import {
  type DesiredState,
  type EnrollResponse,
  enrollRequestSchema,
  type HeartbeatRequest,
  type HeartbeatResponse,
  heartbeatRequestSchema,
  logChunkSchema,
  metricsReportSchema,
  type PodConfig,
  volumesRemovedSchema,
} from '../../shared/protocol.js';
import { agentAuth } from '../auth/agent.js';
import type { AgentNode } from '../auth/node-directory.js';
import { readJson } from '../body.js';
import type { AppEnv, Deps } from '../context.js';
import { maybeTick } from '../controllers/tick.js';
import { clientAddress, TooManyRequests } from '../ratelimit.js';
import { claimVolumesOf, volumeDeletesOf, volumesRemoved } from '../store/claims.js';
import { configVersionsOf, getConfig, valuesOf } from '../store/config.js';
import type { Db } from '../store/db.js';
import { insertEvent } from '../store/events.js';
import { appendLogChunk, logSessionsFor } from '../store/logs.js';
import { enrollNode, leaseNotRevoked } from '../store/nodes.js';
import { desiredPodsOf, type LeaseSubject, leaseSubjectsOf, prefetchImagesOf } from '../store/pods.js';
import { nodeLeases, nodes, pods } from '../store/schema.js';
import { serviceConsumers, servicesForNode } from '../store/services.js';
import { recordUsage } from '../store/usage.js';
import { secretsUnavailable } from './config.js';

type Stmt = Parameters<Deps['db']['batch']>[0][number];

/** Signs the leases of a node's pods; a lease never outlives the expiry recorded in the database. */
async function signLeases(deps: Deps, node: AgentNode, rows: readonly LeaseSubject[], now: number): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of rows) {
    const claims: LeaseClaims = {
      iss: deps.cluster.issuer,
      aud: node.id,
      sub: p.id,
      node: node.id,
      pod: p.id,
      ns: p.namespace,
      workload: p.workload,
      rev: p.revision,
      digest: p.specDigest,
      epoch: p.epoch,
      policy: p.policy,
      iat: Math.floor(now / 1000),
      // Millisecond precision (a NumericDate may be fractional): flooring to seconds cost up to 1 s of
      // lease. Never later than the stored expiry: that is the fencing invariant.
      exp: node.leaseExpiresAt / 1000,
    };
    out.set(p.id, await deps.keys.signLease(claims, now));
  }
  return out;
}

/**
 * Renews a node's liveness and every lease it holds with one statement, at most once per renewal
 * period: the heartbeat economy. Returns the node's pods (to re-sign their leases), or null if not due.
 * The write is conditional on the stored renewal being old enough and the node not revoked, so
 * concurrent instances renew once, and a revoked node never renews.
 */
async function renewIfDue(deps: Deps, node: AgentNode, now: number): Promise<Renewal | null> {
  const { db, config } = deps;
  if (now - node.lastSeenAt < config.renewPeriodMs * (1 + renewSpread(node.id))) return null;
  let at = now;
  let exp = now + config.leaseTtlMs;
  let renewed: boolean;
  let subjects: LeaseSubject[] | null = null;
  let version: number | undefined;
  if (deps.renewals) {
    const r = await deps.renewals.renew(node.id);
    ({ renewed, at, exp } = r);
    subjects = r.pods;
  } else {
    const done = await db
      .update(nodeLeases)
      .set({ lastSeenAt: now, leaseExpiresAt: exp })
      .where(and(eq(nodeLeases.nodeId, node.id), lte(nodeLeases.lastSeenAt, now - config.renewPeriodMs), leaseNotRevoked))
      // The node's desired version comes back with the renewal: a heartbeat without long-poll needs
      // it, and this saves that read (one D1 statement in three of a renewing heartbeat).
      .returning({ id: nodeLeases.nodeId, version: sql<number>`(SELECT ${nodes.desiredVersion} FROM ${nodes} WHERE ${nodes.id} = ${nodeLeases.nodeId})` });
    renewed = done.length === 1;
    version = done[0]?.version;
  }
  if (!renewed) {
    // Renewed by another instance, or revoked: take the stored state and sign nothing new.
    const row = await db
      .select({ lastSeenAt: nodeLeases.lastSeenAt, leaseExpiresAt: nodeLeases.leaseExpiresAt, revokedAt: nodes.revokedAt })
      .from(nodes)
      .innerJoin(nodeLeases, eq(nodeLeases.nodeId, nodes.id))
      .where(eq(nodes.id, node.id))
      .get();
    if (!row || row.revokedAt !== null) deps.directory?.markRevoked(node.id);
    else Object.assign(node, { lastSeenAt: row.lastSeenAt, leaseExpiresAt: row.leaseExpiresAt });
    return null;
  }
  node.lastSeenAt = at;
  node.leaseExpiresAt = exp;
  if (version !== undefined) node.desiredVersion = version;
  return { subjects: subjects ?? (await leaseSubjectsOf(db, [node.id])).get(node.id) ?? [], versionRead: version !== undefined };
}

/** A renewal: the pods whose leases to re-sign, and whether it read the node's desired version. */
interface Renewal {
  subjects: LeaseSubject[];
  versionRead: boolean;
}

/**
 * A fixed per-node fraction in [0, 0.25): a node renews between TTL/3 and 5/12 TTL after its last
 * renewal. With at most one heartbeat interval (TTL/6) on top, a lease is renewed by 7/12 of its TTL,
 * leaving 5/12 for delays. A fleet that renews in lock-step (after a control-plane restart, or a
 * partition that healed) thereby drifts apart instead of landing every renewal, and every lease
 * signature, in the same second.
 */
export function renewSpread(nodeId: string): number {
  let h = 0;
  for (let i = 0; i < nodeId.length; i++) h = (h * 31 + nodeId.charCodeAt(i)) >>> 0;
  return (h % 1000) / 4000;
}

/** Whether agents' desired-state polls wait for a change here (Node with FLOTILLA_POLL_WAIT > 0), or are answered at once (Workers). */
function longPolls(deps: Deps): boolean {
  return deps.notifier !== undefined && deps.config.pollWaitMs > 0;
}

async function freshDesiredVersion(deps: Deps, node: AgentNode): Promise<number> {
  const row = await deps.db.select({ v: nodes.desiredVersion }).from(nodes).where(eq(nodes.id, node.id)).get();
  if (row) node.desiredVersion = row.v;
  return node.desiredVersion;
}

function nextHeartbeat(deps: Deps): number {
  // Jitter only downwards, so a heartbeat never arrives later than the renewal period.
  return Math.max(100, Math.floor(deps.config.heartbeatMs * (0.85 + Math.random() * 0.15)));
}

const enroll = new Hono<AppEnv>().post('/enroll', async (c) => {
  const deps = c.var.deps;
  // Per client address: enrollments (FLOTILLA_ENROLL_RATE/BURST), and refused tokens count as failed authentications.
  const from = clientAddress(c);
  const failing = deps.limits?.authFailures.wait(from, deps.clock()) ?? 0;
  if (failing > 0) throw new TooManyRequests(`too many refused enrollments from ${from}; retry in ${failing} s`, failing);
  const wait = deps.limits?.enroll.take(from, deps.clock()) ?? 0;
  if (wait > 0) throw new TooManyRequests(`too many enrollments from ${from}; retry in ${wait} s`, wait);
  const parsed = enrollRequestSchema.safeParse(await readJson(c));
  if (!parsed.success) {
    const errors = fieldErrors(parsed.error).map((e) => (e.path === 'token' ? { ...e, message: 'invalid token format' } : e));
    throw invalid(`invalid enrollment request: ${errors[0]?.path}: ${errors[0]?.message}`, errors);
  }
  let node: Awaited<ReturnType<typeof enrollNode>>;
  try {
    node = await enrollNode(deps.db, parsed.data, deps.clock(), deps.config.leaseTtlMs);
  } catch (e) {
    if (isFlotillaError(e) && e.status === 401) deps.limits?.authFailures.take(from, deps.clock());
    throw e;
  }
  c.var.log.info({ node: node.name, nodeId: node.id }, 'node enrolled');
  // A new node may make pending pods placeable. Rate-limited: a fleet enrolling at once must not run
  // a full tick per enrollment (on Node the coalesced tick loop; elsewhere piggybacked, `maybeTick`).
  nudgeControllers(deps);
  const body: EnrollResponse = { nodeId: node.id, name: node.name, clusterId: deps.cluster.clusterId, audience: deps.cluster.audience, issuer: deps.cluster.issuer, labels: node.labels };
  return c.json(body, 201);
});

const authed = new Hono<AppEnv>()
  .use(agentAuth)
  .get('/desired', async (c) => {
    const deps = c.var.deps;
    const node = c.var.node;
    const now = deps.clock();
    // Polls never renew: heartbeats do, and carry the renewed leases back. A poll that renewed would
    // have to answer 200 with every pod and lease re-signed (a 304 would leave the agent's copies to
    // run out), which at fleet scale made renewals the most common reason for a full answer.
    const tag = (v: number) => `"${v}"`;
    const inm = c.req.header('if-none-match');
    let version = await freshDesiredVersion(deps, node);
    if (inm === tag(version) && deps.notifier && longPolls(deps)) {
      // Long-poll: wait for a change to this node's desired state (woken in-process), or time out.
      await deps.notifier.wait(node.id, deps.config.pollWaitMs, c.req.raw.signal);
      version = await freshDesiredVersion(deps, node);
    }
    if (inm === tag(version)) {
      c.header('ETag', tag(node.desiredVersion));
      return c.body(null, 304);
    }
    const [rows, prefetch, svcs, volumeDeletes, logs] = await Promise.all([
      desiredPodsOf(deps.db, node.id),
      prefetchImagesOf(deps.db, node.id),
      servicesForNode(deps.db, node.id, now, deps.config.nodeGraceMs),
      volumeDeletesOf(deps.db, node.id),
      logSessionsFor(deps.db, node.id, now),
    ]);
    const [leases, configVersions, claimVolumes] = await Promise.all([signLeases(deps, node, rows, deps.clock()), configVersionsOf(deps.db, rows), claimVolumesOf(deps.db, rows)]);
    const body: DesiredState = {
      version: String(node.desiredVersion),
      pollWaitMs: longPolls(deps) ? deps.config.pollWaitMs : 0,
      heartbeatMs: nextHeartbeat(deps),
      metricsMs: deps.config.metricsIntervalMs,
      ...(prefetch.length > 0 ? { prefetch } : {}),
      ...(svcs.length > 0 ? { services: svcs } : {}),
      ...(volumeDeletes.length > 0 ? { volumeDeletes } : {}),
      ...(logs.length > 0
        ? {
            logs: logs.map((l) => ({
              id: l.id,
              podId: l.podId,
              container: l.container,
              ...(l.tailLines !== null ? { tailLines: l.tailLines } : {}),
              ...(l.sinceSeconds !== null ? { sinceSeconds: l.sinceSeconds } : {}),
              follow: l.follow,
              limitBytes: l.limitBytes,
            })),
          }
        : {}),
      pods: rows.map((p) => ({
        id: p.id,
        name: p.name,
        namespace: p.namespace,
        workload: p.workload,
        revision: p.revision,
        specDigest: p.specDigest,
        epoch: p.epoch,
        labels: p.labels,
        spec: p.spec as DesiredState['pods'][number]['spec'],
        lease: leases.get(p.id) as string,
        ...(configVersions.has(p.id) ? { configVersion: configVersions.get(p.id) } : {}),
        ...(claimVolumes.has(p.id) ? { volumeClaims: claimVolumes.get(p.id) } : {}),
      })),
    };
    c.header('ETag', tag(node.desiredVersion));
    // Where no timer ticks (Workers), agents' requests carry the time-based controller work (see the
    // heartbeat). On Node the tick loop has its timer, and a tick from here would run beside the
    // loop's (their plans then conflict and one is thrown away: every large tick while a fleet grew).
    if (!deps.kick) deps.defer?.(maybeTick(deps));
    return c.json(body);
  })
  .get('/pods/:id/config', async (c) => {
    // The Secrets and ConfigMaps one pod refers to, for the node that holds its live lease only,
    // encrypted to that node's X25519 key (JWE): never in a lease, never in plain over the wire.
    const deps = c.var.deps;
    const node = c.var.node;
    const now = deps.clock();
    const pod = await deps.db
      .select({ id: pods.id, name: pods.name, namespace: pods.namespace, spec: pods.spec })
      .from(pods)
      .where(and(eq(pods.id, c.req.param('id')), eq(pods.nodeId, node.id), eq(pods.desired, 'run')))
      .get();
    if (!pod || node.leaseExpiresAt < now) throw forbidden('this node holds no live lease for that pod');
    const row = await deps.db.select({ encryptionKey: nodes.encryptionKey }).from(nodes).where(eq(nodes.id, node.id)).get();
    if (!row?.encryptionKey) throw forbidden('this node enrolled without an encryption key; re-enroll it to receive secrets');
    const payload: PodConfig = { secrets: {}, configMaps: {}, missing: [] };
    const versions: Record<string, number> = {};
    const delivered: string[] = [];
    for (const kind of ['Secret', 'ConfigMap'] as const) {
      for (const name of referencedNames(pod.spec, kind)) {
        const obj = await getConfig(deps.db, pod.namespace, kind, name);
        if (!obj) {
          payload.missing.push({ kind, name });
          continue;
        }
        if (kind === 'Secret' && !deps.secrets) throw secretsUnavailable(deps);
        const data = await valuesOf(obj, deps.secrets);
        if (kind === 'Secret') {
          payload.secrets[name] = { version: obj.version, type: obj.type, data };
          delivered.push(`${name}@${obj.version}`);
        } else payload.configMaps[name] = { version: obj.version, data };
        versions[`${kind}/${name}`] = obj.version;
      }
    }
    const key = await importJWK(row.encryptionKey, 'ECDH-ES+A256KW');
    const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' }).encrypt(key);
    // Each delivery of a Secret is on record: which node got which version, when (never the value).
    if (delivered.length > 0)
      await insertEvent(deps.db, {
        namespace: pod.namespace,
        kind: 'Pod',
        name: pod.name,
        type: 'Normal',
        reason: 'SecretDelivered',
        message: `secret ${delivered.join(', ')} delivered to node ${node.name}`,
        source: 'api',
        at: now,
      });
    return c.json({ jwe, versions, missing: payload.missing });
  })
  .post('/logs/:id', async (c) => {
    // A chunk of a container's log for an operator's request; `closed` tells the node to stop.
    const deps = c.var.deps;
    const parsed = logChunkSchema.safeParse(await readJson(c));
    if (!parsed.success) throw invalid('invalid log chunk', fieldErrors(parsed.error));
    const open = await appendLogChunk(deps.db, c.var.node.id, c.req.param('id'), parsed.data, deps.clock());
    return c.json({ closed: !open });
  })
  .post('/metrics', async (c) => {
    // The node's and its pods' resource use (`flotilla top`): the latest sample replaces the last.
    const deps = c.var.deps;
    const parsed = metricsReportSchema.safeParse(await readJson(c));
    if (!parsed.success) throw invalid('invalid metrics report', fieldErrors(parsed.error));
    const pods = await recordUsage(deps.db, c.var.node.id, parsed.data, deps.clock());
    return c.json({ pods });
  })
  .post('/volumes/removed', async (c) => {
    // The node removed the Docker volumes of claims released to it (reclaim policy Delete).
    const deps = c.var.deps;
    const parsed = volumesRemovedSchema.safeParse(await readJson(c));
    if (!parsed.success) throw invalid('invalid volume report', fieldErrors(parsed.error));
    const removed = await volumesRemoved(deps.db, c.var.node.id, c.var.node.name, parsed.data.volumes, deps.clock());
    return c.json({ removed });
  })
  .post('/heartbeat', async (c) => {
    const deps = c.var.deps;
    const { db } = deps;
    const node = c.var.node;
    const parsed = heartbeatRequestSchema.safeParse(await readJson(c));
    if (!parsed.success) throw invalid('invalid heartbeat', fieldErrors(parsed.error));
    const hb = parsed.data;
    const now = deps.clock();
    deps.metrics?.inc('flotilla_heartbeats_total');
    const wasReady = now - node.lastSeenAt <= deps.config.nodeGraceMs;
    const renewed = await renewIfDue(deps, node, now);
    const stmts: Stmt[] = [];
    // Which reported pods change what they serve (readiness, published ports): the database bumps the
    // nodes proxying their services (a trigger); here we only wake those nodes' long-polls.
    const endpointNamespaces = deps.notifier && hb.pods?.length ? await endpointChanges(db, node.id, hb.pods) : [];
    if (hb.facts) stmts.push(db.update(nodes).set({ facts: hb.facts }).where(eq(nodes.id, node.id)));
    for (const s of hb.pods ?? []) {
      const mine = and(eq(pods.id, s.podId), eq(pods.nodeId, node.id), eq(pods.epoch, s.epoch));
      if (s.gone) {
        // Fenced: only the holder of the current epoch can release the slot, and only once it is terminating.
        stmts.push(db.delete(pods).where(and(mine, eq(pods.desired, 'stop'))));
        continue;
      }
      const { podId: _p, epoch: _e, gone: _g, ...status } = s;
      stmts.push(
        db
          .update(pods)
          .set({
            phase: s.phase,
            ready: s.ready,
            readySince: s.ready ? sql`COALESCE(${pods.readySince}, ${now})` : null,
            restarts: s.containers.reduce((n, c) => n + c.restartCount, 0),
            reason: s.reason ?? null,
            message: s.message ?? null,
            status,
            updatedAt: now,
          })
          .where(mine),
      );
    }
    for (const e of hb.events ?? []) {
      stmts.push(
        db.run(sql`INSERT INTO events (namespace, kind, name, type, reason, message, source, at)
          SELECT namespace, 'Pod', name, ${e.type}, ${e.reason}, ${e.message.slice(0, 1024)}, ${`agent/${node.name}`}, ${now}
          FROM pods WHERE id = ${e.podId} AND node_id = ${node.id}`),
      );
    }
    if (stmts.length > 0) await db.batch(stmts as [Stmt, ...Stmt[]]);
    if (endpointNamespaces.length > 0) deps.notifier?.notify(await serviceConsumers(db, endpointNamespaces));
    const leases = renewed ? Object.fromEntries(await signLeases(deps, node, renewed.subjects, now)) : {};
    // Without long-poll (Workers, or FLOTILLA_POLL_WAIT=0) the agent polls only when this version
    // differs from its own, so it is read fresh: one read here instead of a poll request (and its
    // read) after every heartbeat. With long-poll the agent is already waiting on the desired state;
    // the cached hint will do. A renewal read it already, unless this heartbeat's reports were
    // written after it (they may bump versions through the endpoint triggers).
    const fresh = !longPolls(deps);
    const desiredVersion = fresh && !(renewed?.versionRead && stmts.length === 0) ? await freshDesiredVersion(deps, node) : node.desiredVersion;
    const body: HeartbeatResponse = { leases, nextHeartbeatMs: nextHeartbeat(deps), desiredVersion: String(desiredVersion), ...(fresh ? { pollIntervalMs: deps.config.pollIntervalMs } : {}) };
    // Controllers care about status changes and a node coming back, not about routine renewals.
    if (stmts.length > 0 || (renewed && !wasReady)) nudgeControllers(deps);
    // Where no timer ticks (Workers), renewals carry the time-based controller work (a rollout
    // waiting out minReadySeconds, a lost node's pods): once per renewal period per node, rate-limited.
    else if (renewed && !deps.kick) deps.defer?.(maybeTick(deps));
    return c.json(body);
  });

/** Asks for a controller tick: the Node tick loop's coalesced prompt tick, else one piggybacked on this request (rate-limited). */
function nudgeControllers(deps: Deps): void {
  if (deps.kick) deps.kick();
  else deps.defer?.(maybeTick(deps));
}

/**
 * Namespaces of reported pods whose readiness or published ports differ from what is stored, among
 * namespaces that have services (one narrow read, only for heartbeats that carry pod statuses).
 */
async function endpointChanges(db: Db, nodeId: string, reports: NonNullable<HeartbeatRequest['pods']>): Promise<string[]> {
  const rows = await db
    .select({ id: pods.id, namespace: pods.namespace, ready: pods.ready, ports: sql<string | null>`json_extract(${pods.status}, '$.containers[0].hostPorts')` })
    .from(pods)
    .where(
      and(
        inArray(
          pods.id,
          reports.map((r) => r.podId),
        ),
        eq(pods.nodeId, nodeId),
        sql`EXISTS (SELECT 1 FROM services s WHERE s.namespace = ${pods.namespace})`,
      ),
    )
    .all();
  const byId = new Map(rows.map((r) => [r.id, r]));
  const out = new Set<string>();
  for (const r of reports) {
    const old = byId.get(r.podId);
    if (!old) continue;
    const newPorts = r.gone ? null : (r.containers[0]?.hostPorts ?? null);
    if (old.ready !== (r.gone ? false : r.ready) || JSON.stringify(old.ports === null ? null : JSON.parse(old.ports)) !== JSON.stringify(newPorts)) out.add(old.namespace);
  }
  return [...out];
}

/** Routes agents call: enrollment (token in body), then everything with a node-signed JWT. */
export const agentRoutes = new Hono<AppEnv>().route('/', enroll).route('/', authed);
