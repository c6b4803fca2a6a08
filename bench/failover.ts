import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { type CliProc, startBenchControlPlane, until } from './procs.js';

// Node loss to replacement running: a Node control plane and two real agents (compiled CLI) on the
// Docker engine; the agent holding the pod is killed with SIGKILL and its containers removed (the
// machine is gone). Measured until the replacement answers HTTP on its published port, against
// (lease TTL + a bare `docker run` of the same image until it answers), measured in the same run.

export interface FailoverOptions {
  ttl: string;
  skew: string;
  runs: number;
}
export const QUICK: FailoverOptions = { ttl: '10s', skew: '1s', runs: 1 };
export const FULL: FailoverOptions = { ttl: '30s', skew: '5s', runs: 3 };

export interface FailoverResult {
  ttlMs: number;
  skewMs: number;
  runs: Array<{ failoverMs: number; detectMs: number }>;
  dockerRunMs: number;
  failoverMs: number;
  ratio: number;
}

async function answers(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
  return res.ok;
}

/** A bare `docker run -d -p 127.0.0.1::80` of the test image, until it answers HTTP. */
async function bareDockerRun(docker: Docker): Promise<number> {
  const t0 = performance.now();
  const c = await docker.createContainer({
    Image: 'local/busybox:1',
    Cmd: ['httpd', '-f', '-p', '80', '-h', '/www'],
    ExposedPorts: { '80/tcp': {} },
    HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
  });
  try {
    await c.start();
    const info = await c.inspect();
    const port = Number(info.NetworkSettings.Ports['80/tcp']?.[0]?.HostPort);
    await until('bare container to answer', () => answers(port), 10_000, 10);
    return performance.now() - t0;
  } finally {
    await c.remove({ force: true });
  }
}

export async function benchFailover(o: FailoverOptions, log: (s: string) => void): Promise<FailoverResult> {
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  await docker.getImage('local/busybox:1').inspect(); // fails with a clear error when the image is missing
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-failover-'));
  const env = { FLOTILLA_LEASE_TTL: o.ttl, FLOTILLA_CLOCK_SKEW: o.skew, FLOTILLA_LOG_LEVEL: 'warn' };
  const cp = await startBenchControlPlane(dir, env);
  const { api } = cp;
  const agents: Array<{ name: string; proc: CliProc; id: string }> = [];
  try {
    const startAgent = async (name: string) => {
      const a = await cp.startAgent(name);
      agents.push(a);
      return a;
    };
    await startAgent('fo-0');
    await startAgent('fo-1');
    const dockerRuns: number[] = [];
    for (let i = 0; i < 3; i++) dockerRuns.push(await bareDockerRun(docker));
    const dockerRunMs = dockerRuns.sort((a, b) => a - b)[1] as number;
    const manifest = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'fo' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'fo' } },
        template: {
          metadata: { labels: { app: 'fo' } },
          spec: { containers: [{ name: 'web', image: 'local/busybox:1', command: ['httpd', '-f', '-p', '80', '-h', '/www'], ports: [{ containerPort: 80 }] }] },
        },
      },
    };
    await api('PUT', '/v1/namespaces/default/deployments/fo', manifest);
    const runs: FailoverResult['runs'] = [];
    const ttlMs = Number(o.ttl.replace('s', '')) * 1000;
    for (let run = 0; run < o.runs; run++) {
      const running = async () => {
        const pods = (await api('GET', '/v1/namespaces/default/pods')).items as any[];
        const p = pods.find((x) => x.status.phase === 'Running' && x.status.hostPorts.length > 0 && x.metadata.deletionTimestamp === undefined);
        return p && (await answers(p.status.hostPorts[0].hostPort)) ? p : undefined;
      };
      const pod = await until('the pod to run', running, 60_000, 100);
      const victim = agents.find((a) => a.name === pod.spec.nodeName) as (typeof agents)[number];
      // Kill at a random point of the renewal cycle, as a real failure would.
      await new Promise((r) => setTimeout(r, Math.random() * (ttlMs / 3)));
      const t0 = Date.now();
      victim.proc.child.kill('SIGKILL');
      for (const c of await docker.listContainers({ all: true, filters: { label: [`dev.flotilla.node=${victim.id}`] } })) await docker.getContainer(c.Id).remove({ force: true });
      let detectMs = 0;
      await until(
        'the replacement to answer',
        async () => {
          const pods = (await api('GET', '/v1/namespaces/default/pods')).items as any[];
          const p = pods.find((x) => x.spec.nodeName !== victim.name);
          if (p && !detectMs) detectMs = Date.now() - t0;
          return p && p.status.phase === 'Running' && p.status.hostPorts.length > 0 && (await answers(p.status.hostPorts[0].hostPort));
        },
        ttlMs * 3 + 60_000,
        50,
      );
      const failoverMs = Date.now() - t0;
      runs.push({ failoverMs, detectMs });
      log(`  run ${run + 1}: node lost -> replacement answering in ${(failoverMs / 1000).toFixed(2)} s (rescheduled after ${(detectMs / 1000).toFixed(2)} s)`);
      // bring a replacement node in for the next run
      agents.splice(agents.indexOf(victim), 1);
      if (run + 1 < o.runs) await startAgent(`fo-${run + 2}`);
    }
    const sorted = runs.map((r) => r.failoverMs).sort((a, b) => a - b);
    const failoverMs = sorted[Math.floor(sorted.length / 2)] as number;
    const ratio = failoverMs / (ttlMs + dockerRunMs);
    return { ttlMs, skewMs: Number(o.skew.replace('s', '')) * 1000, runs, dockerRunMs, failoverMs, ratio };
  } finally {
    for (const a of agents) await a.proc.stop();
    await cp.server.stop();
    for (const c of await docker.listContainers({ all: true, filters: { label: ['dev.flotilla.managed=true'] } }))
      if (agents.some((a) => c.Labels['dev.flotilla.node'] === a.id) || c.Labels['dev.flotilla.workload'] === 'fo') await docker.getContainer(c.Id).remove({ force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
