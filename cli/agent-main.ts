import pino from 'pino';
import { Agent, EnrollmentRefused } from '../agent/agent.js';
import type { Logger } from '../control-plane/config.js';
import { CliError } from './api.js';
import { agentTimings, untilSignal } from './signals.js';

// `flotilla agent` loads only the agent (and pino): none of the control plane's modules (Hono,
// drizzle, the libSQL native client), which would cost a device memory for nothing.

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
  const logger = pino({ level: process.env.FLOTILLA_LOG_LEVEL ?? 'info', base: { svc: 'flotilla' } }, pino.destination(2)) as unknown as Logger;
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
