import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { type CliProc, procSample, startBenchControlPlane, stopChild, until } from './procs.js';

// The agent's footprint: RSS and CPU of a real agent (compiled CLI, default timings) managing 10
// containers with liveness and readiness probes, sampled from /proc over a window, against an idle
// Node process with one timer sampled over the same window (the floor of any Node program).
// Both run with the environment the shipped systemd unit gives the agent (its Environment= lines),
// so the figure is the agent as deployed.

/** The `Environment=` lines of docs/systemd/flotilla-agent.service. */
export function unitEnvironment(path = 'docs/systemd/flotilla-agent.service'): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of readFileSync(path, 'utf8').matchAll(/^Environment=([A-Za-z_][A-Za-z0-9_]*)=(.*)$/gm)) env[m[1] as string] = (m[2] as string).trim();
  return env;
}

export interface AgentBenchOptions {
  windowSeconds: number;
  containers: number;
}
export const QUICK: AgentBenchOptions = { windowSeconds: 10, containers: 10 };
export const FULL: AgentBenchOptions = { windowSeconds: 600, containers: 10 };

export interface AgentBenchResult {
  windowSeconds: number;
  containers: number;
  agentRssMb: { avg: number; max: number };
  idleRssMb: { avg: number; max: number };
  agentCpuPercent: number;
  idleCpuPercent: number;
  rssRatio: number;
  /** The systemd unit's environment both processes ran with. */
  unitEnv?: Record<string, string>;
}

/** RSS (bytes) and CPU time (s) of a process. */
function sample(pid: number): { rss: number; cpu: number } {
  const { rss, cpuMs } = procSample(pid);
  return { rss, cpu: cpuMs / 1000 };
}

export async function benchAgent(o: AgentBenchOptions, log: (s: string) => void): Promise<AgentBenchResult> {
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  await docker.getImage('local/busybox:1').inspect();
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-agent-'));
  const env = { FLOTILLA_LOG_LEVEL: 'warn' };
  const unitEnv = unitEnvironment();
  const cp = await startBenchControlPlane(dir, env);
  const { api } = cp;
  let agent: CliProc | undefined;
  let idle: ChildProcess | undefined;
  try {
    const footprint = (await cp.startAgent('footprint', unitEnv)).proc;
    agent = footprint;
    const probe = { httpGet: { path: '/', port: 80 }, periodSeconds: 10 };
    await api('PUT', '/v1/namespaces/default/deployments/footprint', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'footprint' },
      spec: {
        replicas: o.containers,
        selector: { matchLabels: { app: 'footprint' } },
        template: {
          metadata: { labels: { app: 'footprint' } },
          spec: {
            containers: [
              {
                name: 'web',
                image: 'local/busybox:1',
                command: ['httpd', '-f', '-p', '80', '-h', '/www'],
                ports: [{ containerPort: 80 }],
                livenessProbe: probe,
                readinessProbe: probe,
                resources: { requests: { cpu: '10m', memory: '8Mi' } },
              },
            ],
          },
        },
      },
    });
    await until(
      'all pods Ready',
      async () =>
        ((await api('GET', '/v1/namespaces/default/pods')).items as any[]).filter((p) => p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True')).length === o.containers,
      120_000,
      500,
    );
    // The floor: an idle Node process with one timer, over the same window.
    idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore', env: { ...process.env, ...unitEnv } });
    await new Promise((r) => setTimeout(r, 2000)); // both settled
    const apid = footprint.child.pid as number;
    const ipid = idle.pid as number;
    const a0 = sample(apid);
    const i0 = sample(ipid);
    const t0 = Date.now();
    const aRss: number[] = [];
    const iRss: number[] = [];
    while (Date.now() - t0 < o.windowSeconds * 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      aRss.push(sample(apid).rss);
      iRss.push(sample(ipid).rss);
    }
    const secs = (Date.now() - t0) / 1000;
    const a1 = sample(apid);
    const i1 = sample(ipid);
    const mb = (b: number) => b / 2 ** 20;
    const avg = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const r: AgentBenchResult = {
      windowSeconds: Math.round(secs),
      containers: o.containers,
      agentRssMb: { avg: mb(avg(aRss)), max: mb(Math.max(...aRss)) },
      idleRssMb: { avg: mb(avg(iRss)), max: mb(Math.max(...iRss)) },
      agentCpuPercent: ((a1.cpu - a0.cpu) / secs) * 100,
      idleCpuPercent: ((i1.cpu - i0.cpu) / secs) * 100,
      rssRatio: avg(aRss) / avg(iRss),
      unitEnv,
    };
    log(
      `  agent with ${o.containers} probed containers over ${r.windowSeconds} s: RSS avg ${r.agentRssMb.avg.toFixed(1)} MB (max ${r.agentRssMb.max.toFixed(1)}), CPU ${r.agentCpuPercent.toFixed(2)} % of a core; idle Node: RSS ${r.idleRssMb.avg.toFixed(1)} MB, CPU ${r.idleCpuPercent.toFixed(2)} %; both with the systemd unit's environment: ${envText(unitEnv)}`,
    );
    return r;
  } finally {
    if (idle) await stopChild(idle);
    await agent?.stop(); // first: a running agent would bring the containers back
    await cp.server.stop();
    await removeFootprint(docker);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function removeFootprint(docker: Docker): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: ['dev.flotilla.workload=footprint'] } })) await docker.getContainer(c.Id).remove({ force: true });
}

/** `K=V K2=V2`, or `none`. */
export function envText(env: Record<string, string> | undefined): string {
  const kv = Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`);
  return kv.length > 0 ? kv.join(' ') : 'none';
}
