import { setFlagsFromString } from 'node:v8';
import pino from 'pino';
import { Agent, EnrollmentRefused } from '../agent/agent.js';
import type { Logger } from '../control-plane/config.js';
import { CliError } from './api.js';
import { agentTimings, untilSignal } from './signals.js';

// `flotilla agent` loads only the agent (and pino): none of the control plane's modules (Hono,
// drizzle, the libSQL native client), which would cost a device memory for nothing.

/**
 * The agent's V8 heap is tuned for size, not speed (`FLOTILLA_AGENT_OPTIMIZE_FOR_SIZE`, default 1):
 * V8 then grows the old generation conservatively over the live objects instead of letting garbage
 * pile up between major collections. The agent is idle almost all the time, so the extra collections
 * cost nothing a device notices; measured, its heap stays at ~20 MB instead of ~26 MB (bench/FINDINGS.md).
 * Set here, after start, it still takes effect: V8 consults it whenever it sizes the heap (measured).
 */
export function tuneHeapForSize(env: Record<string, string | undefined> = process.env): boolean {
  const v = env.FLOTILLA_AGENT_OPTIMIZE_FOR_SIZE ?? '1';
  if (v !== '0' && v !== '1') throw new CliError(`FLOTILLA_AGENT_OPTIMIZE_FOR_SIZE must be 0 or 1, not "${v}"`);
  if (v === '1') setFlagsFromString('--optimize-for-size');
  return v === '1';
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
  tuneHeapForSize();
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
