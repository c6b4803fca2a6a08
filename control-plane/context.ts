import type { SecretBox } from '../shared/secretbox.js';
import type { SignatureVerifier } from './auth/agent.js';
import type { AgentNode, NodeDirectory } from './auth/node-directory.js';
import type { Config, Logger } from './config.js';
import type { Keyring } from './keys.js';
import type { Metrics } from './metrics.js';
import type { RateLimiter } from './ratelimit.js';
import type { RenewalGroup } from './renewals.js';
import type { Db } from './store/db.js';
import type { ClusterInfo } from './store/meta.js';

/** Wakes long-polls waiting on a node's desired state (in-process; Node only). */
export interface Notifier {
  notify(nodeIds: Iterable<string>): void;
  wait(nodeId: string, ms: number, signal?: AbortSignal): Promise<void>;
}

/** Everything the app needs, passed in: nothing is a module singleton. */
export interface Deps {
  db: Db;
  config: Config;
  logger: Logger;
  /** Milliseconds since the epoch; tests pass a controllable clock. */
  clock: () => number;
  keys: Keyring;
  cluster: ClusterInfo;
  /** Seals Secrets at rest (the master key); absent when none is configured (Secrets are then refused). */
  secrets?: SecretBox;
  /** Why Secrets are unavailable although a key is configured (Workers: a wrong master key); shown in 503s and /healthz. */
  secretsProblem?: string;
  notifier?: Notifier;
  /** The agent hot path's node cache; createApp makes one when none is passed. */
  directory?: NodeDirectory;
  /** Group commit of lease renewals (Node); without it each renewal is its own statement. */
  renewals?: RenewalGroup;
  /** Per-address rate limits (enrollment, failed authentication); createApp makes them from the config. */
  limits?: { enroll: RateLimiter; authFailures: RateLimiter };
  /** Checks agents' JWT signatures synchronously (node:crypto on Node); without it jose's WebCrypto path (Workers). */
  agentJwtVerifier?: SignatureVerifier;
  /** Process-local counters (requests, heartbeats, DB writes). */
  metrics?: Metrics;
  /** Runs work after the response (Workers: ctx.waitUntil; Node: fire and forget with logging). */
  defer?: (p: Promise<unknown>) => void;
  /**
   * Asks for a controller tick soon (a pod's status changed). A single-process runtime (Node)
   * coalesces these into back-to-back ticks; without it, ticks piggyback on requests under a
   * DB-held rate limit (maybeTick).
   */
  kick?: () => void;
}

/** Who is calling: an operator token, or an enrolled node. */
export type Principal = { kind: 'operator'; tokenId: string; name: string; scope: 'admin' | 'deploy' | 'read'; namespaces: string[] | null } | { kind: 'node'; nodeId: string; nodeName: string };

/** Hono environment of the app. */
export interface AppEnv {
  Variables: {
    deps: Deps;
    requestId: string;
    log: Logger;
    principal: Principal;
    /** The calling node, on agent routes. */
    node: AgentNode;
    /** A page a list route may read in SQL (set by the list middleware when there is no label selector). */
    listPage?: { limit?: number; after?: readonly [string, string] };
    /** Set by a list route that read its page in SQL: the page's last key, and how many rows follow it. */
    listPaged?: { last?: readonly [string, string]; remaining: number };
  };
}
