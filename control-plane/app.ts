import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { isFlotillaError, type Problem } from '../shared/errors.js';
import { NodeDirectory } from './auth/node-directory.js';
import { operatorAuth, requireScope } from './auth/operator.js';
import { bodyLimit } from './body-limit.js';
import type { Logger } from './config.js';
import type { AppEnv, Deps } from './context.js';
import { DOCS_PAGE } from './docs-page.js';
import { openApiDocument } from './openapi.js';
import { RateLimiter, TooManyRequests } from './ratelimit.js';
import { adminRoutes } from './routes/admin.js';
import { agentRoutes } from './routes/agent.js';
import { claimRoutes } from './routes/claims.js';
import { configRoutes } from './routes/config.js';
import { apiFeatures } from './routes/lists.js';
import { logRoutes } from './routes/logs.js';
import { metricsRoutes } from './routes/metrics.js';
import { serviceRoutes } from './routes/services.js';
import { workloadRoutes } from './routes/workloads.js';

/** The version the API and agents report. */
export const VERSION = '0.1.0';

function problem(status: number, type: string, detail: string, requestId: string): Response {
  const body: Problem & { requestId: string } = { type: `https://flotilla.dev/problems/${type}`, title: type.replace(/-/g, ' '), status, detail, requestId };
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/problem+json' } });
}

/** A child logger made only when something is logged (most requests log once, at debug level). */
function lazyChild(parent: Logger, bindings: object): Logger {
  let child: Logger | null = null;
  const get = () => {
    child ??= parent.child(bindings);
    return child;
  };
  return {
    debug: (o, m) => {
      if (parent.isLevelEnabled?.('debug') !== false) get().debug(o, m);
    },
    info: (o, m) => get().info(o, m),
    warn: (o, m) => get().warn(o, m),
    error: (o, m) => get().error(o, m),
    child: (b) => get().child(b),
  };
}

/**
 * Builds the control plane's HTTP app. The same factory serves Node (entry/node.ts) and Workers
 * (entry/worker.ts); everything stateful comes in through `deps`.
 */
export function createApp(given: Deps): Hono<AppEnv> {
  const deps: Deps = {
    ...given,
    directory: given.directory ?? new NodeDirectory(),
    limits: given.limits ?? {
      enroll: new RateLimiter(given.config.enrollRate, given.config.enrollBurst),
      authFailures: new RateLimiter(given.config.authFailuresPerMinute / 60, given.config.authFailuresPerMinute),
    },
  };
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    const requestId = c.req.header('x-request-id')?.slice(0, 64) || crypto.randomUUID();
    const log = lazyChild(deps.logger, { requestId });
    // On Workers, work after the response must go to waitUntil; Node passes its own `defer`.
    // (Probing c.executionCtx throws an Error on Node, which is costly per request: only probe without `defer`.)
    let ctx: { waitUntil(p: Promise<unknown>): void } | undefined;
    if (!deps.defer) {
      try {
        ctx = c.executionCtx;
      } catch {
        ctx = undefined;
      }
    }
    c.set('deps', ctx ? { ...deps, defer: (p) => ctx.waitUntil(p.catch((e: Error) => log.error({ err: { message: e.message } }, 'background work failed'))) } : deps);
    c.set('requestId', requestId);
    c.set('log', log);
    const started = Date.now();
    await next();
    deps.metrics?.inc('flotilla_http_requests_total');
    c.header('X-Request-Id', requestId);
    const path = c.req.path;
    // Agent polls and heartbeats are the bulk of traffic: log them at debug level only.
    const level = c.res.status >= 500 ? 'error' : path.startsWith('/v1/agent/') && c.res.status < 400 ? 'debug' : 'info';
    log[level]({ method: c.req.method, path, status: c.res.status, ms: Date.now() - started }, 'request');
  });

  app.use(bodyLimit(deps.config.maxBodyBytes));

  app.onError((err, c) => {
    const requestId = c.get('requestId') ?? 'none';
    if (isFlotillaError(err)) {
      if (err.status === 401 || err.status === 403) c.get('log')?.warn({ status: err.status, path: c.req.path, reason: err.message }, 'access denied');
      const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
      if (err instanceof TooManyRequests) headers['retry-after'] = String(err.retryAfter);
      return new Response(JSON.stringify({ ...err.toProblem(), requestId }), { status: err.status, headers });
    }
    if (err instanceof HTTPException) return problem(err.status, 'http-error', err.message || 'request failed', requestId);
    (c.get('log') ?? deps.logger).error({ err: { message: err.message, stack: err.stack } }, 'unhandled error');
    return problem(500, 'internal', `internal error (request ${requestId})`, requestId);
  });
  app.notFound((c) => problem(404, 'not-found', `no route for ${c.req.method} ${c.req.path}`, c.get('requestId') ?? 'none'));

  // Degraded (503) when part of the control plane cannot work: a wrong Secrets master key on Workers.
  app.get('/healthz', (c) => (deps.secretsProblem ? c.json({ status: 'degraded', version: VERSION, problems: [deps.secretsProblem] }, 503) : c.json({ status: 'ok', version: VERSION })));
  app.get('/.well-known/jwks.json', async (c) => {
    c.header('Cache-Control', 'public, max-age=60');
    return c.json(await deps.keys.jwks(deps.clock()));
  });

  // The API reference page holds no data (it asks for a token to load the document).
  app.get('/docs', (c) => {
    c.header('Content-Security-Policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'");
    return c.html(DOCS_PAGE);
  });
  app.get('/metrics', operatorAuth, (c) => {
    requireScope(c.var.principal, 'read');
    return c.text(deps.metrics?.render() ?? '', 200, { 'content-type': 'text/plain; version=0.0.4' });
  });
  app.route('/v1/agent', agentRoutes);
  const v1 = new Hono<AppEnv>()
    .use(operatorAuth)
    .use(apiFeatures(() => app))
    .get('/openapi.json', (c) => {
      requireScope(c.var.principal, 'read');
      return c.json(openApiDocument(VERSION));
    })
    .route('/', adminRoutes)
    .route('/', workloadRoutes)
    .route('/', configRoutes)
    .route('/', serviceRoutes)
    .route('/', claimRoutes)
    .route('/', logRoutes)
    .route('/', metricsRoutes);
  app.route('/v1', v1);
  return app;
}
