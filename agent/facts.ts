import os from 'node:os';
import type { NodeFacts } from '../shared/protocol.js';

/** The agent's version, reported in node facts. */
export const AGENT_VERSION = '0.1.0';

/** Facts about this machine, reported at enrollment and whenever they change. */
export function readFacts(dockerVersion: string, advertiseAddress?: string): NodeFacts {
  return {
    hostname: os.hostname().slice(0, 253),
    os: os.platform(),
    arch: os.arch(),
    cpus: os.cpus().length,
    memoryBytes: os.totalmem(),
    dockerVersion: dockerVersion.slice(0, 64),
    agentVersion: AGENT_VERSION,
    ...(advertiseAddress ? { advertiseAddress } : {}),
  };
}
