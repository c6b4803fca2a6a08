import { z } from 'zod';
import { parseDuration } from '../shared/duration.js';
import { parseCpu, parseMemory } from '../shared/quantity.js';

/** Timing and limits of the control plane. Every duration tests depend on comes from here. */
export interface Config {
  /** Lease lifetime; renewed by heartbeats every renewPeriodMs. */
  leaseTtlMs: number;
  /** At most one liveness+lease write per node per this period (the heartbeat economy). */
  renewPeriodMs: number;
  /** Heartbeat interval handed to agents (before jitter and fleet scaling). */
  heartbeatMs: number;
  /** How long a desired-state poll may wait for a change (0: answer at once, as on Workers). */
  pollWaitMs: number;
  /**
   * Without long-poll (Workers, or pollWaitMs 0): heartbeats carry the fresh desired version and agents poll on a
   * change; this is the longest an agent goes without polling all the same (a safety net).
   */
  pollIntervalMs: number;
  /** Margin added to a lease's expiry before its slot may be given to anyone else. */
  clockSkewMs: number;
  /** A node whose last renewal is older than this is NotReady. */
  nodeGraceMs: number;
  /** Minimum time between controller ticks piggybacked on requests. */
  tickIntervalMs: number;
  /** Largest request body accepted. */
  maxBodyBytes: number;
  /** Events older than this are pruned. */
  eventRetentionMs: number;
  /** Resources held back from every node's reported capacity (system daemons, the agent): millicores, bytes. */
  reservedCpu: number;
  reservedMemory: number;
  /** Default scheduler scoring (a workload may choose with the flotilla.dev/scoring annotation). */
  scoring: 'MostAllocated' | 'LeastAllocated';
  /** How often an endpoints watch (long-poll) re-reads the endpoints while it waits for a change. */
  endpointsPollMs: number;
  /** How long a `logs` request waits for the pod's node to start answering (504 after). */
  logWaitMs: number;
  /** How often a `logs` request looks for new chunks from the node. */
  logPollMs: number;
  /** How often a watch (long-poll on a list) looks for new changes while it waits. */
  watchPollMs: number;
  /** How long the change log behind watches is kept: a watch from an older resourceVersion gets 410. */
  watchRetentionMs: number;
  /** How often agents report resource use (`flotilla top`); handed to agents with their desired state. */
  metricsIntervalMs: number;
  /** Enrollments a client address may make: per second, and in a burst. */
  enrollRate: number;
  enrollBurst: number;
  /** Failed operator authentications (and refused enrollment tokens) a client address may make per minute before it gets 429s. */
  authFailuresPerMinute: number;
  /** A controller tick slower than this is logged (Node). */
  slowTickMs: number;
  /**
   * Pods one controller tick creates at most, over all workloads (0: no limit); the next ticks
   * create the rest, as Kubernetes' ReplicaSet controller does in bursts of 500. A tick commits in
   * one transaction, which blocks the event loop on Node while it is written.
   */
  tickBurst: number;
  /** Node: a group commit of lease renewals starts at least this long after the previous one (0: at once). */
  renewSpacingMs: number;
}

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((s, ctx) => {
      const ms = parseDuration(s);
      if (ms === null) {
        ctx.addIssue({ code: 'custom', message: `not a duration: ${s}` });
        return z.NEVER;
      }
      return ms;
    });

const quantity = (fallback: string, parse: (q: string) => number | null, what: string) =>
  z
    .string()
    .default(fallback)
    .transform((s, ctx) => {
      const v = parse(s);
      if (v === null) {
        ctx.addIssue({ code: 'custom', message: `not a ${what} quantity: ${s}` });
        return z.NEVER;
      }
      return v;
    });

const envSchema = z.object({
  FLOTILLA_LEASE_TTL: duration('30s'),
  FLOTILLA_HEARTBEAT_INTERVAL: z.string().optional(),
  FLOTILLA_POLL_WAIT: duration('25s'),
  FLOTILLA_POLL_INTERVAL: duration('5m'),
  FLOTILLA_CLOCK_SKEW: duration('5s'),
  FLOTILLA_NODE_GRACE: z.string().optional(),
  FLOTILLA_TICK_INTERVAL: duration('2s'),
  FLOTILLA_EVENT_RETENTION: duration('1h'),
  FLOTILLA_RESERVED_CPU: quantity('100m', parseCpu, 'CPU'),
  FLOTILLA_RESERVED_MEMORY: quantity('128Mi', parseMemory, 'memory'),
  FLOTILLA_SCHEDULER_SCORING: z.enum(['MostAllocated', 'LeastAllocated']).default('MostAllocated'),
  FLOTILLA_ENDPOINTS_POLL: duration('500ms'),
  FLOTILLA_LOG_WAIT: duration('15s'),
  FLOTILLA_LOG_POLL: duration('200ms'),
  FLOTILLA_WATCH_POLL: duration('500ms'),
  FLOTILLA_WATCH_RETENTION: duration('15m'),
  FLOTILLA_METRICS_INTERVAL: duration('30s'),
  FLOTILLA_ENROLL_RATE: z.coerce.number().positive().default(5),
  FLOTILLA_ENROLL_BURST: z.coerce.number().int().positive().default(100),
  FLOTILLA_AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().positive().default(30),
  FLOTILLA_SLOW_TICK: duration('1s'),
  FLOTILLA_TICK_BURST: z.coerce.number().int().nonnegative().default(500),
  FLOTILLA_RENEW_SPACING: duration('10ms'),
});

/** Builds the config from environment variables (strings), applying defaults. Throws on a bad value. */
export function configFromEnv(env: Record<string, string | undefined>, overrides: Partial<Config> = {}): Config {
  const r = envSchema.safeParse(env);
  if (!r.success) throw new Error(`invalid configuration: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const e = r.data;
  const leaseTtlMs = e.FLOTILLA_LEASE_TTL;
  const renewPeriodMs = Math.floor(leaseTtlMs / 3);
  const heartbeatMs = e.FLOTILLA_HEARTBEAT_INTERVAL ? (parseDuration(e.FLOTILLA_HEARTBEAT_INTERVAL) ?? NaN) : Math.floor(leaseTtlMs / 6);
  // Renewals come every TTL/3 to 5/12 TTL: a node silent for two thirds of the TTL plus the skew margin
  // has missed one, and is NotReady (its leases lapse at TTL; its `stop` pods move at TTL + skew).
  const nodeGraceMs = e.FLOTILLA_NODE_GRACE ? (parseDuration(e.FLOTILLA_NODE_GRACE) ?? NaN) : Math.floor((leaseTtlMs * 2) / 3) + e.FLOTILLA_CLOCK_SKEW;
  if (!Number.isFinite(heartbeatMs) || !Number.isFinite(nodeGraceMs)) throw new Error('invalid configuration: FLOTILLA_HEARTBEAT_INTERVAL / FLOTILLA_NODE_GRACE must be durations');
  const cfg: Config = {
    leaseTtlMs,
    renewPeriodMs,
    heartbeatMs,
    pollWaitMs: e.FLOTILLA_POLL_WAIT,
    pollIntervalMs: e.FLOTILLA_POLL_INTERVAL,
    clockSkewMs: e.FLOTILLA_CLOCK_SKEW,
    nodeGraceMs,
    tickIntervalMs: e.FLOTILLA_TICK_INTERVAL,
    maxBodyBytes: 3 * 1024 * 1024, // like the Kubernetes API server: room for a 1 MiB Secret in base64 and JSON
    eventRetentionMs: e.FLOTILLA_EVENT_RETENTION,
    reservedCpu: e.FLOTILLA_RESERVED_CPU,
    reservedMemory: e.FLOTILLA_RESERVED_MEMORY,
    scoring: e.FLOTILLA_SCHEDULER_SCORING,
    endpointsPollMs: e.FLOTILLA_ENDPOINTS_POLL,
    logWaitMs: e.FLOTILLA_LOG_WAIT,
    logPollMs: e.FLOTILLA_LOG_POLL,
    watchPollMs: e.FLOTILLA_WATCH_POLL,
    watchRetentionMs: e.FLOTILLA_WATCH_RETENTION,
    metricsIntervalMs: e.FLOTILLA_METRICS_INTERVAL,
    enrollRate: e.FLOTILLA_ENROLL_RATE,
    enrollBurst: e.FLOTILLA_ENROLL_BURST,
    authFailuresPerMinute: e.FLOTILLA_AUTH_FAILURES_PER_MINUTE,
    slowTickMs: e.FLOTILLA_SLOW_TICK,
    tickBurst: e.FLOTILLA_TICK_BURST,
    renewSpacingMs: e.FLOTILLA_RENEW_SPACING,
    ...overrides,
  };
  if (cfg.heartbeatMs > cfg.renewPeriodMs) throw new Error('invalid configuration: the heartbeat interval must not exceed a third of the lease TTL');
  return cfg;
}

/** Structured logger (pino on Node, JSON console lines on Workers). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: object): Logger;
  /** Whether entries of `level` are written (pino's method); absent means yes. */
  isLevelEnabled?(level: string): boolean;
}

/** A logger writing one JSON line per entry to the console: for Workers. */
export function consoleLogger(bindings: object = {}, minLevel: 'debug' | 'info' = 'info'): Logger {
  const emit = (level: string) => (obj: object, msg?: string) => {
    if (level === 'debug' && minLevel !== 'debug') return;
    console.log(JSON.stringify({ level, time: Date.now(), ...bindings, ...obj, msg }));
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (b) => consoleLogger({ ...bindings, ...b }, minLevel),
    isLevelEnabled: (level) => level !== 'debug' || minLevel === 'debug',
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error(o) {
    if (process.env.FLOTILLA_TEST_ERRORS) console.error(JSON.stringify(o));
  },
  child: () => silentLogger,
  isLevelEnabled: () => false,
};
