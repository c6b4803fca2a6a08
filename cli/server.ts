import { join } from 'node:path';
import { Agent } from '../agent/agent.js';
import { loadIdentity } from '../agent/identity.js';
import { connectDocker } from '../agent/runtime.js';
import { nodeLogger, startServer } from '../control-plane/entry/node.js';
import { createEnrollmentToken } from '../control-plane/store/tokens.js';
import { CliError } from './api.js';
import { agentTimings, untilSignal } from './signals.js';

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
