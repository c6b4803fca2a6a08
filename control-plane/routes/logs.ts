import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import { FlotillaError, invalid, notFound } from '../../shared/errors.js';
import type { PodSpec } from '../../shared/manifest.js';
import { requireScope } from '../auth/operator.js';
import { intParam } from '../body.js';
import type { AppEnv } from '../context.js';
import { closeLogSession, getLogSession, logSessionsFor, openLogSession, takeLogChunks } from '../store/logs.js';
import { getPod } from '../store/pods.js';
import { ns } from './workloads.js';

/** Most a `logs` request returns (and the default), and the longest a `logs -f` follows. */
export const LOG_LIMIT_BYTES = 10 * 1024 * 1024;
export const LOG_FOLLOW_MAX_MS = 60 * 60 * 1000;
/** Open log requests one node serves at a time (its desired state lists at most 64). */
export const LOG_SESSIONS_PER_NODE = 16;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `GET /v1/namespaces/{ns}/pods/{name}/log`: a container's log from its node, through the control
 * plane (no device takes inbound connections). Opens a session the node's agent picks up on its
 * next poll (at once: the node's desired state changes), then streams the chunks the agent uploads,
 * deleting each once written. Waits at most `logWaitMs` for the node to answer (504 otherwise).
 */
export const logRoutes = new Hono<AppEnv>().get('/namespaces/:ns/pods/:name/log', async (c) => {
  const namespace = ns(c.req.param('ns'));
  requireScope(c.var.principal, 'read', namespace);
  const deps = c.var.deps;
  const pod = await getPod(deps.db, namespace, c.req.param('name'));
  if (!pod) throw notFound(`pod ${namespace}/${c.req.param('name')} not found`);
  const spec = pod.spec as PodSpec;
  const names = spec.containers.map((x) => x.name);
  const container = c.req.query('container') ?? names[0];
  if (!container || !names.includes(container))
    throw invalid(`container "${container}" is not in pod ${pod.name} (containers: ${names.join(', ')})`, [{ path: 'container', message: `one of ${names.join(', ')}` }]);
  if (!pod.nodeId) throw new FlotillaError('not-scheduled', 409, `pod ${pod.name} is not on a node yet (${pod.reason ?? 'Pending'}): it has no log`);
  const follow = c.req.query('follow') === '1' || c.req.query('follow') === 'true';
  const tailLines = intParam(c.req.query('tailLines'), 'tailLines', 0, 1_000_000);
  const sinceSeconds = intParam(c.req.query('sinceSeconds'), 'sinceSeconds', 1, 366 * 86_400);
  const limitBytes = intParam(c.req.query('limitBytes'), 'limitBytes', 1, LOG_LIMIT_BYTES) ?? LOG_LIMIT_BYTES;
  const now = deps.clock();
  if ((await logSessionsFor(deps.db, pod.nodeId, now)).length >= LOG_SESSIONS_PER_NODE) {
    c.header('Retry-After', '5');
    throw new FlotillaError('too-many-requests', 429, `node of pod ${pod.name} already serves ${LOG_SESSIONS_PER_NODE} log requests; try again shortly`);
  }
  const id = crypto.randomUUID();
  await openLogSession(deps.db, {
    id,
    nodeId: pod.nodeId,
    podId: pod.id,
    container,
    tailLines: tailLines ?? null,
    sinceSeconds: sinceSeconds ?? null,
    follow,
    limitBytes,
    createdAt: now,
    expiresAt: now + (follow ? LOG_FOLLOW_MAX_MS : deps.config.logWaitMs + 60_000),
  });
  deps.notifier?.notify([pod.nodeId]);
  // The status line goes out once the node has answered: an offline node is a 504, not an empty 200.
  const deadline = Date.now() + deps.config.logWaitMs;
  let s = await getLogSession(deps.db, id);
  while (s?.state === 'pending' && Date.now() < deadline && !c.req.raw.signal.aborted) {
    await sleep(deps.config.logPollMs);
    s = await getLogSession(deps.db, id);
  }
  if (!s || s.state === 'pending') {
    await closeLogSession(deps.db, id);
    throw new FlotillaError('node-unavailable', 504, `node of pod ${pod.name} did not answer the log request within ${Math.round(deps.config.logWaitMs / 1000)} s (is it connected?)`);
  }
  if (s.error) {
    const first = await takeLogChunks(deps.db, id);
    if (first.length === 0) {
      await closeLogSession(deps.db, id);
      throw new FlotillaError('log-unavailable', 404, s.error);
    }
  }
  c.header('Content-Type', 'text/plain; charset=utf-8');
  c.header('X-Content-Type-Options', 'nosniff');
  // Lines must reach the client as they come: no compression or buffering on the way (Workers, proxies).
  c.header('Cache-Control', 'no-store, no-transform');
  c.header('X-Accel-Buffering', 'no');
  return stream(c, async (out) => {
    let gone = false;
    out.onAbort(() => {
      gone = true;
    });
    try {
      while (!gone) {
        const chunks = await takeLogChunks(deps.db, id);
        for (const ch of chunks) await out.write(ch);
        if (chunks.length > 0) continue;
        const cur = await getLogSession(deps.db, id);
        if (!cur || cur.state === 'done' || cur.expiresAt <= deps.clock()) {
          for (const ch of await takeLogChunks(deps.db, id)) await out.write(ch);
          break;
        }
        await sleep(deps.config.logPollMs);
      }
    } finally {
      // The node learns on its next upload that nobody reads any more; nothing is kept.
      await closeLogSession(deps.db, id);
    }
  });
});
