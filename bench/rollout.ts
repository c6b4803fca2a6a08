import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { type CliProc, startBenchControlPlane, until } from './procs.js';

// A rolling update of N replicas, one at a time behind the same readiness gate, on the same Docker
// engine and images: Flotilla (Node control plane, one real agent) next to Docker Swarm
// (`docker service update --update-parallelism 1 --update-order start-first`). Both are timed the
// same way, from the engine: from the update request until exactly N containers of the new image run
// and are ready, and no old one runs.

export interface RolloutOptions {
  replicas: number;
  runs: number;
}
export const QUICK: RolloutOptions = { replicas: 3, runs: 1 };
export const FULL: RolloutOptions = { replicas: 10, runs: 3 };

export interface RolloutResult {
  replicas: number;
  flotillaMs: number[];
  swarmMs: number[];
  /** Medians, and Flotilla / Swarm. */
  flotilla: number;
  swarm: number;
  ratio: number;
}

export const IMAGES = ['local/busybox:1', 'local/busybox:2'] as const;
// A server that exits on SIGTERM, as real services do (busybox httpd as PID 1 ignores it, and
// every stop would then wait out the 10 s grace period in both systems).
export const HTTPD = ['sh', '-c', 'trap "exit 0" TERM; httpd -f -p 80 -h /www & wait'];

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Runs `fn` with Docker Swarm active on this engine: initialised for it (and left again) unless it already was. */
export async function withSwarm<T>(fn: () => Promise<T>): Promise<T> {
  const state = execFileSync('docker', ['info', '--format', '{{.Swarm.LocalNodeState}}'], { encoding: 'utf8' }).trim();
  const ours = state !== 'active';
  if (ours) execFileSync('docker', ['swarm', 'init', '--advertise-addr', '127.0.0.1'], { stdio: 'ignore' });
  try {
    return await fn();
  } finally {
    if (ours) execFileSync('docker', ['swarm', 'leave', '--force'], { stdio: 'ignore' });
  }
}

/**
 * `docker service create` arguments for `replicas` of the busybox httpd behind a health check
 * every second (the same gate as Flotilla's readiness probe in these benchmarks), plus `extra`.
 */
export function swarmServiceCreate(name: string, replicas: number, extra: string[] = []): string[] {
  return [
    'service',
    'create',
    '--quiet',
    '--detach',
    '--name',
    name,
    '--replicas',
    String(replicas),
    '--no-resolve-image',
    '--health-cmd',
    'wget -q -O /dev/null http://127.0.0.1/',
    '--health-interval',
    '1s',
    '--health-retries',
    '1',
    '--health-start-period',
    '0s',
    ...extra,
    IMAGES[0],
    ...HTTPD,
  ];
}

/** Rolling updates of a Swarm service (Swarm must be active). */
async function swarmRollouts(docker: Docker, o: RolloutOptions, log: (s: string) => void): Promise<number[]> {
  const name = `flotilla-bench-${process.pid}`;
  try {
    execFileSync('docker', swarmServiceCreate(name, o.replicas, ['--update-parallelism', '1', '--update-delay', '0s', '--update-monitor', '100ms', '--update-order', 'start-first']), {
      stdio: 'ignore',
    });
    const converged = (image: string) => async () => {
      const cs = await docker.listContainers({ filters: { label: [`com.docker.swarm.service.name=${name}`] } });
      return cs.length === o.replicas && cs.every((c) => c.Image.startsWith(image) && c.Status.includes('(healthy)'));
    };
    await until('the swarm service to run', converged(IMAGES[0]), 120_000, 100);
    const out: number[] = [];
    for (let run = 0; run < o.runs; run++) {
      const image = IMAGES[(run + 1) % 2] as string;
      const t0 = performance.now();
      execFileSync('docker', ['service', 'update', '--quiet', '--detach', '--no-resolve-image', '--image', image, name], { stdio: 'ignore' });
      await until(`swarm rolled to ${image}`, converged(image), 300_000, 100);
      out.push(performance.now() - t0);
      log(`  swarm run ${run + 1}: ${o.replicas} replicas to ${image} in ${((out.at(-1) as number) / 1000).toFixed(2)} s`);
    }
    return out;
  } finally {
    execFileSync('docker', ['service', 'rm', name], { stdio: 'ignore' });
    await until('the swarm tasks to go', async () => (await docker.listContainers({ all: true, filters: { label: [`com.docker.swarm.service.name=${name}`] } })).length === 0, 60_000, 200);
  }
}

/** Flotilla: a Node control plane and one agent (compiled CLI, default timings). */
async function flotillaRollouts(docker: Docker, o: RolloutOptions, log: (s: string) => void): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-rollout-'));
  const env = { FLOTILLA_LOG_LEVEL: 'warn' };
  const cp = await startBenchControlPlane(dir, env);
  const { api } = cp;
  let agent: CliProc | undefined;
  let nodeId = '';
  try {
    const started = await cp.startAgent('bench-roll');
    agent = started.proc;
    nodeId = started.id;
    const manifest = (image: string) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'roll' },
      spec: {
        replicas: o.replicas,
        selector: { matchLabels: { app: 'roll' } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        template: {
          metadata: { labels: { app: 'roll' } },
          spec: {
            containers: [
              {
                name: 'web',
                image,
                command: HTTPD,
                ports: [{ containerPort: 80 }],
                readinessProbe: { httpGet: { path: '/', port: 80 }, periodSeconds: 1, failureThreshold: 1 },
              },
            ],
          },
        },
      },
    });
    const converged = (image: string) => async () => {
      const cs = await docker.listContainers({ filters: { label: ['dev.flotilla.workload=roll', `dev.flotilla.node=${nodeId}`] } });
      if (cs.length !== o.replicas || !cs.every((c) => c.Image === image)) return false;
      const pods = ((await api('GET', '/v1/namespaces/default/pods')).items as any[]).filter((p) => p.status.phase !== 'Terminating');
      return pods.length === o.replicas && pods.every((p) => p.status.conditions.some((c: any) => c.type === 'Ready' && c.status === 'True'));
    };
    await api('PUT', '/v1/namespaces/default/deployments/roll', manifest(IMAGES[0]));
    await until('the deployment to run', converged(IMAGES[0]), 120_000, 100);
    const out: number[] = [];
    for (let run = 0; run < o.runs; run++) {
      const image = IMAGES[(run + 1) % 2] as string;
      const t0 = performance.now();
      await api('PUT', '/v1/namespaces/default/deployments/roll', manifest(image));
      await until(`flotilla rolled to ${image}`, converged(image), 300_000, 100);
      out.push(performance.now() - t0);
      log(`  flotilla run ${run + 1}: ${o.replicas} replicas to ${image} in ${((out.at(-1) as number) / 1000).toFixed(2)} s`);
      if (process.env.BENCH_TRACE) {
        const evs = (await api('GET', '/v1/namespaces/default/events')).items as any[];
        for (const e of evs) log(`    ${e.lastTimestamp ?? e.at} ${e.involvedObject?.name ?? ''} ${e.reason} ${e.message}`);
      }
    }
    return out;
  } finally {
    if (agent) await agent.stop();
    await cp.server.stop();
    for (const c of await docker.listContainers({ all: true, filters: { label: [`dev.flotilla.node=${nodeId}`] } })) await docker.getContainer(c.Id).remove({ force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchRollout(o: RolloutOptions, log: (s: string) => void): Promise<RolloutResult> {
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  for (const i of IMAGES) await docker.getImage(i).inspect(); // a clear error when the test images are missing
  const flotillaMs = await flotillaRollouts(docker, o, log);
  const swarmMs = await withSwarm(() => swarmRollouts(docker, o, log));
  const flotilla = median(flotillaMs);
  const swarm = median(swarmMs);
  return { replicas: o.replicas, flotillaMs, swarmMs, flotilla, swarm, ratio: flotilla / swarm };
}
