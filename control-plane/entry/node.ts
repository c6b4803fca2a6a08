import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAdaptorServer } from '@hono/node-server';
import pino from 'pino';
import { randomToken } from '../../shared/digest.js';
import { newMasterKey, parseMasterKey, parsePreviousKeys, SecretBox } from '../../shared/secretbox.js';
import { createApp } from '../app.js';
import type { SignatureVerifier } from '../auth/agent.js';
import { type Config, configFromEnv, type Logger } from '../config.js';
import type { Deps } from '../context.js';
import { runTick } from '../controllers/tick.js';
import { Keyring, type LeaseSigner } from '../keys.js';
import { Metrics } from '../metrics.js';
import { createNotifier } from '../notifier.js';
import { RenewalGroup } from '../renewals.js';
import { masterKeyProblem } from '../store/config.js';
import type { Db } from '../store/db.js';
import { migrateLibsql, openLibsql } from '../store/libsql.js';
import { ensureBootstrapToken, ensureCluster } from '../store/meta.js';
import { API_PREFIX } from '../store/tokens.js';

/** Options of the Node control plane. */
export interface ServerOptions {
  host: string;
  port: number;
  dataDir: string;
  /** libSQL URL; default: the embedded file `<dataDir>/flotilla.db`. */
  databaseUrl?: string;
  databaseAuthToken?: string;
  config?: Partial<Config>;
  env?: Record<string, string | undefined>;
  logger?: Logger;
  /** Interval of the periodic controller tick (time-based transitions). */
  tickEveryMs?: number;
}

/** A running control plane. */
export interface RunningServer {
  url: string;
  deps: Deps;
  adminTokenPath: string;
  close(): Promise<void>;
}

/** Where the committed migrations are, from source (tsx) or from dist/. */
export function migrationsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'migrations', 'meta', '_journal.json'))) return join(dir, 'migrations');
    dir = dirname(dir);
  }
  throw new Error('cannot find the migrations folder');
}

/**
 * The master key for Secrets: FLOTILLA_SECRET_KEY, else `secret.key` in the data dir (generated on
 * first start, mode 0600). Refuses to start when stored Secrets are sealed under another key: a
 * wrong key must not go on to seal new values next to ones it cannot read.
 */
async function loadSecretBox(fromEnv: string | undefined, previous: string | undefined, keyPath: string, db: Db, closeDb: () => Promise<void> | void): Promise<SecretBox> {
  let text = fromEnv;
  if (!text) {
    if (!existsSync(keyPath)) writeFileSync(keyPath, `${newMasterKey()}\n`, { mode: 0o600 });
    chmodSync(keyPath, 0o600);
    text = readFileSync(keyPath, 'utf8');
  }
  const box = await SecretBox.fromKey(parseMasterKey(text), parsePreviousKeys(previous));
  const problem = await masterKeyProblem(db, box);
  if (problem) {
    await closeDb();
    throw new Error(`${problem}; refusing to start, nothing was changed: set FLOTILLA_SECRET_KEY to that key`);
  }
  return box;
}

/** Makes a pino logger writing JSON lines to stderr. */
export function nodeLogger(level = process.env.FLOTILLA_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { svc: 'flotilla' } }, pino.destination(2)) as unknown as Logger;
}

/** How much sooner than the server closes an idle connection its clients are told to. */
export const KEEP_ALIVE_MARGIN_MS = 5_000;

/**
 * Starts the control plane on Node: embedded libSQL (or a libSQL URL), migrations applied at start,
 * a lease-signing key and a bootstrap admin token created on first start.
 */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const env = opts.env ?? process.env;
  const config = configFromEnv(env, opts.config);
  const logger = opts.logger ?? nodeLogger();
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const metrics = new Metrics();
  const sync = env.FLOTILLA_DB_SYNC === 'normal' ? 'normal' : 'full';
  const { db, close: closeDb } = await openLibsql(opts.databaseUrl ?? `file:${join(dataDir, 'flotilla.db')}`, {
    authToken: opts.databaseAuthToken,
    metrics,
    sync,
    statementCache: env.FLOTILLA_DB_STATEMENT_CACHE !== 'off',
  });
  await migrateLibsql(db, migrationsDir());
  const now = Date.now();
  const cluster = await ensureCluster(db, now);
  const keys = new Keyring(db, config.leaseTtlMs + config.clockSkewMs, undefined, nodeLeaseSigner);
  await keys.ensure(now);
  const secrets = await loadSecretBox(env.FLOTILLA_SECRET_KEY, env.FLOTILLA_SECRET_KEY_PREVIOUS, join(dataDir, 'secret.key'), db, closeDb);

  // The bootstrap admin token: shown only through a 0600 file, never logged.
  const adminTokenPath = join(dataDir, 'admin.token');
  let adminToken: string;
  if (existsSync(adminTokenPath)) adminToken = readFileSync(adminTokenPath, 'utf8').trim();
  else {
    adminToken = API_PREFIX + randomToken(32);
    writeFileSync(adminTokenPath, `${adminToken}\n`, { mode: 0o600 });
  }
  chmodSync(adminTokenPath, 0o600);
  await ensureBootstrapToken(db, adminToken, now);

  const pendingWork = new Set<Promise<unknown>>();
  const deps: Deps = {
    db,
    config,
    logger,
    clock: Date.now,
    keys,
    cluster,
    secrets,
    notifier: createNotifier(),
    metrics,
    agentJwtVerifier: nodeSignatureVerifier,
    renewals: new RenewalGroup(db, Date.now, config.renewPeriodMs, config.leaseTtlMs, config.renewSpacingMs),
    defer: (p) => {
      const tracked = p.catch((e: Error) => logger.error({ err: { message: e.message } }, 'background work failed')).finally(() => pendingWork.delete(tracked));
      pendingWork.add(tracked);
    },
  };
  // Ticks: periodic ones for time-based transitions (lease expiry, finalization, deadlines), and
  // prompt ones when agents report status changes (readiness gates rollouts), coalesced: at most one
  // tick runs, and one more is queued behind it, however many reports arrive. A prompt tick waits
  // four times as long as the last tick took: a tick with work reads the cluster (libSQL's calls are
  // synchronous), and a fleet whose reports never stop (thousands of pods becoming ready) would
  // otherwise run ticks back to back and starve heartbeats; this way ticks take at most a fifth of
  // the event loop.
  let ticking = false;
  let again = false;
  let soon: NodeJS.Timeout | undefined;
  let lastTook = 0;
  let lastEnded = 0;
  const tick = () => {
    if (ticking) {
      again = true;
      return;
    }
    ticking = true;
    const started = performance.now();
    runTick(deps)
      .then((r) => {
        const ms = performance.now() - started;
        if (ms > config.slowTickMs) logger.warn({ ms: Math.round(ms), ...r }, 'slow controller tick');
        // Pods left over by the burst limit: the next tick comes as a prompt one would.
        if (r.deferred > 0) again = true;
      })
      .catch((e: Error) => logger.error({ err: { message: e.message } }, 'tick failed'))
      .finally(() => {
        ticking = false;
        lastEnded = performance.now();
        lastTook = lastEnded - started;
        if (again) {
          again = false;
          deps.kick?.();
        }
      });
  };
  let closed = false;
  deps.kick = () => {
    if (!closed)
      soon ??= setTimeout(
        () => {
          soon = undefined;
          tick();
        },
        Math.max(20, lastEnded + 4 * lastTook - performance.now()),
      );
  };
  const app = createApp(deps);
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  // Agents keep their connection between heartbeats (Node's default 5 s closed it before each
  // one: a TCP handshake per heartbeat, and a fleet reconnecting at once overflowed the accept
  // queue), and a burst of connections queues instead of being refused (Node's default backlog 511).
  server.keepAliveTimeout = config.heartbeatMs + 15_000;
  server.headersTimeout = server.keepAliveTimeout + 5_000;
  // Clients close an idle connection at the advertised `Keep-Alive: timeout` minus 1 s (Node's
  // agent, undici). Advertising exactly when the server closes leaves that 1 s as the only margin:
  // a request sent just before the server's timer fires, while its event loop is busy, meets a
  // closing socket (ECONNRESET; from 4,000 simulated agents on). Advertise 5 s less than the server
  // waits (what Node 24's keepAliveTimeoutBuffer does; this is Node 20): the advertised value is
  // per response, the socket timer the server's.
  const advertisedKeepAlive = server.keepAliveTimeout - KEEP_ALIVE_MARGIN_MS;
  server.prependListener('request', (_req, res) => {
    (res as unknown as { _keepAliveTimeout: number })._keepAliveTimeout = advertisedKeepAlive;
  });
  await new Promise<void>((res, rej) => {
    server.once('listening', () => res());
    server.once('error', rej);
    server.listen({ host: opts.host, port: opts.port, backlog: 4096 });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;

  const timer = setInterval(tick, opts.tickEveryMs ?? Math.max(500, Math.min(5000, config.leaseTtlMs / 6)));
  timer.unref();

  logger.info({ url, dataDir, clusterId: cluster.clusterId }, 'control plane listening');
  return {
    url,
    deps,
    adminTokenPath,
    async close() {
      clearInterval(timer);
      clearTimeout(soon);
      closed = true;
      await new Promise<void>((res) => {
        server.close(() => res());
        // Long-polls would hold close() for their whole wait: end idle and active sockets.
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await Promise.allSettled([...pendingWork]);
      await closeDb();
    },
  };
}

/** Ed25519 checks through node:crypto, synchronously: agents' JWTs are verified with it on Node. */
export const nodeSignatureVerifier: SignatureVerifier = (x) => {
  let key: ReturnType<typeof createPublicKey>;
  try {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  } catch {
    return () => false; // not a valid Ed25519 public key: nothing verifies against it
  }
  return (data, signature) => {
    try {
      return verify(null, data, key, signature);
    } catch {
      return false; // a malformed signature
    }
  };
};

/** Ed25519 through node:crypto, synchronously: the Keyring signs leases with it on Node. */
export const nodeLeaseSigner: LeaseSigner = (jwk) => {
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: jwk.d as string, x: jwk.x as string }, format: 'jwk' });
  return (data) => sign(null, data, key);
};
