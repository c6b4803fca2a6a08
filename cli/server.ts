import { join } from 'node:path';
import { Agent, EnrollmentRefused } from '../agent/agent.js';
import { loadIdentity } from '../agent/identity.js';
import { connectDocker } from '../agent/runtime.js';
import { nodeLogger, startServer } from '../control-plane/entry/node.js';
import { createEnrollmentToken } from '../control-plane/store/tokens.js';
import { CliError } from './api.js';

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
  });
}

/** Agent timings from the environment (tests use short ones). */
function agentTimings() {
  const n = (v: string | undefined) => (v ? Number(v) : undefined);
  return {
    reconcileMs: n(process.env.FLOTILLA_RECONCILE_MS),
    restartBackoffMs: n(process.env.FLOTILLA_RESTART_BACKOFF_MS),
    retryBaseMs: n(process.env.FLOTILLA_RETRY_BASE_MS),
    retryCapMs: n(process.env.FLOTILLA_RETRY_CAP_MS),
    stopTimeoutSec: n(process.env.FLOTILLA_STOP_TIMEOUT_S),
    firstPollWaitMs: n(process.env.FLOTILLA_FIRST_POLL_WAIT_MS),
    prePullWaitMs: n(process.env.FLOTILLA_PREPULL_WAIT_MS),
    proxyEjectMs: n(process.env.FLOTILLA_PROXY_EJECT_MS),
  };
}

/** `flotilla server`: the control plane on Node, plus a local agent when a Docker engine is reachable. */
export async function runServer(o: { host: string; port: number; dataDir: string; agent: boolean }): Promise<number> {
  const logger = nodeLogger();
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer({ host: o.host, port: o.port, dataDir: o.dataDir, logger });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new CliError(`port ${o.port} on ${o.host} is already in use (use --port)`);
    throw e;
  }
  console.error(`flotilla control plane on ${server.url}; admin token in ${server.adminTokenPath}`);
  let agent: Agent | null = null;
  if (o.agent) {
    const docker = connectDocker(process.env.DOCKER_HOST);
    const reachable = await docker.version().then(
      () => true,
      () => false,
    );
    if (!reachable) console.error('no Docker engine reachable: serving the control plane alone (start dockerd, or pass --no-agent to silence this)');
    else {
      const dataDir = join(o.dataDir, 'agent');
      let token: string | undefined;
      if (!loadIdentity(dataDir)) token = (await createEnrollmentToken(server.deps.db, { maxUses: 1, ttlMs: 300_000, labels: { 'flotilla.dev/local': 'true' }, now: Date.now() })).token;
      agent = await Agent.start({ server: server.url, dataDir, token, logger: logger.child({ svc: 'agent' }), ...agentTimings() });
      console.error(`local agent "${agent.name}" running`);
    }
  }
  await untilSignal();
  await agent?.stop();
  await server.close();
  return 0;
}

/** `flotilla agent`: enroll (first run) and run until a signal. */
export async function runAgent(o: {
  server: string;
  token?: string;
  dataDir: string;
  name?: string;
  labels: Record<string, string>;
  dockerHost?: string;
  hostIp?: string;
  advertiseAddress?: string;
  allowedHostPaths?: string[];
  serviceIpPrefix?: string;
}): Promise<number> {
  const logger = nodeLogger();
  let agent: Agent;
  try {
    agent = await Agent.start({ ...o, logger, ...agentTimings() });
  } catch (e) {
    if (e instanceof EnrollmentRefused) throw new CliError(e.message);
    throw new CliError((e as Error).message);
  }
  console.error(`agent "${agent.name}" running against ${o.server}`);
  await untilSignal();
  await agent.stop();
  return 0;
}
