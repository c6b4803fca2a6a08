import { createClient } from '@libsql/client/web';
import { drizzle } from 'drizzle-orm/libsql/web';
import { parseMasterKey, parsePreviousKeys, SecretBox } from '../../shared/secretbox.js';
import { createApp } from '../app.js';
import { configFromEnv, consoleLogger } from '../config.js';
import type { Deps } from '../context.js';
import { runTick } from '../controllers/tick.js';
import { Keyring, signingKeyFromJwk } from '../keys.js';
import { isWriteStatement, Metrics } from '../metrics.js';
import { masterKeyProblem } from '../store/config.js';
import { type D1DatabaseLike, type Db, fromD1, schema } from '../store/db.js';
import { ensureBootstrapToken, ensureCluster } from '../store/meta.js';

/** Bindings and secrets of the Worker (wrangler.toml, `wrangler secret put`). */
export interface WorkerEnv {
  DB?: D1DatabaseLike;
  LIBSQL_URL?: string;
  LIBSQL_AUTH_TOKEN?: string;
  /** Ed25519 private JWK that seeds the lease-signing keyring on first use. */
  FLOTILLA_SIGNING_KEY?: string;
  /** Bootstrap admin API token (its hash is registered on first use). */
  FLOTILLA_BOOTSTRAP_TOKEN?: string;
  FLOTILLA_LOG_LEVEL?: string;
  /** Master key for Secrets (base64 of 32 bytes): `wrangler secret put FLOTILLA_SECRET_KEY`. */
  FLOTILLA_SECRET_KEY?: string;
  [k: string]: unknown;
}

interface ExecutionContextLike {
  waitUntil(p: Promise<unknown>): void;
}

// Per-isolate cache of the wiring (not of state: every fact lives in the database).
let cached: { key: string; deps: Deps; app: ReturnType<typeof createApp> } | null = null;

function openDb(env: WorkerEnv, metrics: Metrics): Db {
  // libSQL/Turso over HTTP when configured, else the D1 binding.
  if (env.LIBSQL_URL) return drizzle(createClient({ url: env.LIBSQL_URL, authToken: env.LIBSQL_AUTH_TOKEN }), { schema }) as unknown as Db;
  if (!env.DB) throw new Error('no database: bind a D1 database as DB or set LIBSQL_URL');
  return fromD1(countingD1(env.DB, metrics));
}

/**
 * Counts the statements this isolate prepares on D1 (each is run once) and the batches it sends:
 * what D1 bills and what a request costs in round trips.
 */
function countingD1(d1: D1DatabaseLike, m: Metrics): D1DatabaseLike {
  return new Proxy(d1, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (prop === 'prepare')
        return (query: string) => {
          m.inc('flotilla_db_statements_total');
          if (isWriteStatement(query)) m.inc('flotilla_db_write_statements_total');
          return (v as (q: string) => unknown).call(target, query);
        };
      if (prop === 'batch')
        return (stmts: unknown[]) => {
          m.inc('flotilla_db_batches_total');
          return (v as (s: unknown[]) => Promise<unknown>).call(target, stmts);
        };
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

async function wire(env: WorkerEnv): Promise<{ deps: Deps; app: ReturnType<typeof createApp> }> {
  const key = `${env.LIBSQL_URL ?? 'd1'}`;
  if (cached && cached.key === key) return cached;
  const strings = Object.fromEntries(Object.entries(env).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
  // No long-poll on Workers: answer polls at once, agents poll on their heartbeat cadence.
  const config = configFromEnv(strings, { pollWaitMs: 0 });
  const logger = consoleLogger({ svc: 'flotilla', runtime: 'worker' }, env.FLOTILLA_LOG_LEVEL === 'debug' ? 'debug' : 'info');
  const metrics = new Metrics();
  const db = openDb(env, metrics);
  const now = Date.now();
  const cluster = await ensureCluster(db, now);
  const keys = new Keyring(db, config.leaseTtlMs + config.clockSkewMs);
  await keys.ensure(now, env.FLOTILLA_SIGNING_KEY ? signingKeyFromJwk(env.FLOTILLA_SIGNING_KEY, now) : undefined);
  if (env.FLOTILLA_BOOTSTRAP_TOKEN) await ensureBootstrapToken(db, env.FLOTILLA_BOOTSTRAP_TOKEN, now);
  // Secrets: a wrangler secret. Without it, Secret applies answer 503 with how to set it.
  // A key that is not the one the stored Secrets are sealed under: a Worker has no start to refuse,
  // so Secrets are refused (503 with the reason, /healthz degraded) and nothing is overwritten,
  // while the rest of the cluster (leases, workloads) keeps working.
  let secrets = env.FLOTILLA_SECRET_KEY ? await SecretBox.fromKey(parseMasterKey(env.FLOTILLA_SECRET_KEY), parsePreviousKeys(env.FLOTILLA_SECRET_KEY_PREVIOUS as string | undefined)) : undefined;
  const secretsProblem = secrets ? await masterKeyProblem(db, secrets) : undefined;
  if (secretsProblem) {
    logger.error({}, `${secretsProblem}; Secrets are refused until FLOTILLA_SECRET_KEY is set to that key`);
    secrets = undefined;
  }
  const deps: Deps = { db, config, logger, clock: Date.now, keys, cluster, metrics, ...(secrets ? { secrets } : {}), ...(secretsProblem ? { secretsProblem } : {}) };
  cached = { key, deps, app: createApp(deps) };
  return cached;
}

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContextLike): Promise<Response> {
    const { app } = await wire(env);
    return app.fetch(request, env, ctx as never);
  },
  /** Cron Trigger: the periodic controller tick (lease expiry, finalization). */
  async scheduled(_event: unknown, env: WorkerEnv, ctx: ExecutionContextLike): Promise<void> {
    const { deps } = await wire(env);
    ctx.waitUntil(runTick(deps).then((r) => deps.logger.info({ ...r }, 'scheduled tick')));
  },
};
