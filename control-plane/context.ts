import type { Config, Logger } from './config.js';
import type { Keyring } from './keys.js';
import type { Db } from './store/db.js';
import type { ClusterInfo } from './store/meta.js';
import type { NodeRow } from './store/nodes.js';

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
  notifier?: Notifier;
  /** Runs work after the response (Workers: ctx.waitUntil; Node: fire and forget with logging). */
  defer?: (p: Promise<unknown>) => void;
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
    /** The calling node's row, on agent routes. */
    node: NodeRow;
  };
}
