import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { type CliProc, startBenchControlPlane, until } from './procs.js';
import { HTTPD, IMAGES, median, swarmServiceCreate, withSwarm } from './rollout.js';

// Side by side with Docker Swarm on the same engine and image, behind the same readiness gate (an
// HTTP check every second): converge 1 / 10 / 30 replicas from nothing, and recover a replica whose
// container was `docker kill`ed. Both are timed from the engine and the API the same way: from the
// request (or the kill) until exactly N containers of the workload run and are ready, the killed one
// not among them. (The rolling update of 10 is `npm run bench:rollout`.)

export interface SwarmOptions {
  sizes: number[];
  runs: number;
  recoverRuns: number;
  recoverReplicas: number;
}
export const QUICK: SwarmOptions = { sizes: [1], runs: 1, recoverRuns: 1, recoverReplicas: 2 };
export const FULL: SwarmOptions = { sizes: [1, 10, 30], runs: 3, recoverRuns: 3, recoverReplicas: 3 };

export interface SwarmRow {
  what: string;
  flotillaMs: number[];
  swarmMs: number[];
  flotilla: number;
  swarm: number;
  ratio: number;
}

/** What both sides are asked to do; `ready` says whether N ready containers run, the excluded one not among them. */
interface Side {
  name: string;
  create(replicas: number): Promise<void>;
  remove(): Promise<void>;
  ready(replicas: number, exclude?: string): Promise<boolean>;
  containers(): Promise<string[]>;
}

async function measure(side: Side, o: SwarmOptions, log: (s: string) => void): Promise<{ converge: Map<number, number[]>; recover: number[] }> {
  const converge = new Map<number, number[]>();
  for (const n of o.sizes) {
    const xs: number[] = [];
    for (let run = 0; run < o.runs; run++) {
      const t0 = performance.now();
      await side.create(n);
      await until(`${side.name}: ${n} ready`, () => side.ready(n), 300_000, 100);
      xs.push(performance.now() - t0);
      log(`  ${side.name}: ${n} replica(s) converged in ${((xs.at(-1) as number) / 1000).toFixed(2)} s`);
      await side.remove();
    }
    converge.set(n, xs);
  }
  const recover: number[] = [];
  await side.create(o.recoverReplicas);
  await until(`${side.name}: ${o.recoverReplicas} ready`, () => side.ready(o.recoverReplicas), 300_000, 100);
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  // Each run kills a replica that has not failed before (a first failure, not a crash loop).
  const original = new Set(await side.containers());
  for (let run = 0; run < o.recoverRuns; run++) {
    const victim = (await side.containers()).find((id) => original.has(id));
    if (!victim) throw new Error(`${side.name}: no replica left that was not killed before (recoverRuns > replicas?)`);
    original.delete(victim);
    const t0 = performance.now();
    await docker.getContainer(victim).kill();
    await until(`${side.name}: recovered`, () => side.ready(o.recoverReplicas, victim), 300_000, 100);
    recover.push(performance.now() - t0);
    log(`  ${side.name}: killed replica replaced and ready in ${((recover.at(-1) as number) / 1000).toFixed(2)} s`);
  }
  await side.remove();
  return { converge, recover };
}

function swarmSide(docker: Docker): Side {
  const name = `flotilla-bench-converge-${process.pid}`;
  const mine = async (all = false) => docker.listContainers({ all, filters: { label: [`com.docker.swarm.service.name=${name}`] } });
  return {
    name: 'swarm',
    async create(replicas) {
      execFileSync('docker', swarmServiceCreate(name, replicas), { stdio: 'ignore' });
    },
    async remove() {
      execFileSync('docker', ['service', 'rm', name], { stdio: 'ignore' });
      await until('the swarm tasks to go', async () => (await mine(true)).length === 0, 120_000, 200);
    },
    async ready(replicas, exclude) {
      const cs = (await mine()).filter((c) => c.Id !== exclude && c.State === 'running');
      return cs.length === replicas && cs.every((c) => c.Status.includes('(healthy)'));
    },
    async containers() {
      return (await mine()).map((c) => c.Id);
    },
  };
}

async function flotillaSide(docker: Docker, dir: string): Promise<Side & { stop(): Promise<void> }> {
  const cp = await startBenchControlPlane(dir, { FLOTILLA_LOG_LEVEL: 'warn' });
  let agent: CliProc | undefined;
  let nodeId = '';
  try {
    const started = await cp.startAgent('bench-converge');
    agent = started.proc;
    nodeId = started.id;
  } catch (e) {
    await cp.server.stop();
    throw e;
  }
  const mine = async (all = false) => docker.listContainers({ all, filters: { label: ['dev.flotilla.workload=conv', `dev.flotilla.node=${nodeId}`] } });
  const manifest = (replicas: number) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'conv' },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'conv' } },
      template: {
        metadata: { labels: { app: 'conv' } },
        spec: {
          containers: [
            {
              name: 'web',
              image: IMAGES[0],
              command: HTTPD,
              ports: [{ containerPort: 80 }],
              resources: { requests: { cpu: '10m', memory: '16Mi' } },
              readinessProbe: { httpGet: { path: '/', port: 80 }, periodSeconds: 1, failureThreshold: 1 },
            },
          ],
        },
      },
    },
  });
  return {
    name: 'flotilla',
    async create(replicas) {
      await cp.api('PUT', '/v1/namespaces/default/deployments/conv', manifest(replicas));
    },
    async remove() {
      await cp.api('DELETE', '/v1/namespaces/default/deployments/conv');
      await until('the pods to go', async () => (await mine(true)).length === 0 && ((await cp.api('GET', '/v1/namespaces/default/pods')).items as unknown[]).length === 0, 120_000, 200);
    },
    async ready(replicas, exclude) {
      const cs = (await mine()).filter((c) => c.Id !== exclude && c.State === 'running');
      if (cs.length !== replicas) return false;
      const pods = ((await cp.api('GET', '/v1/namespaces/default/pods')).items as any[]).filter((p) => p.status.phase !== 'Terminating');
      // After a kill: the pod has seen the restart (its container status is the new container's).
      const ids = new Set(cs.map((c) => c.Id));
      return (
        pods.length === replicas &&
        pods.every(
          (p) =>
            p.status.conditions.some((c: any) => c.type === 'Ready' && c.status === 'True') &&
            (p.status.containerStatuses ?? []).every((s: any) => !exclude || ids.has(String(s.containerID ?? '').replace(/^docker:\/\//, ''))),
        )
      );
    },
    async containers() {
      return (await mine()).map((c) => c.Id);
    },
    async stop() {
      if (agent) await agent.stop();
      await cp.server.stop();
      for (const c of await docker.listContainers({ all: true, filters: { label: [`dev.flotilla.node=${nodeId}`] } })) await docker.getContainer(c.Id).remove({ force: true });
    },
  };
}

export async function benchSwarm(o: SwarmOptions, log: (s: string) => void): Promise<SwarmRow[]> {
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  await docker.getImage(IMAGES[0]).inspect(); // a clear error when the test image is missing
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-swarm-'));
  let fl: Awaited<ReturnType<typeof measure>>;
  const side = await flotillaSide(docker, dir);
  try {
    fl = await measure(side, o, log);
  } finally {
    await side.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const sw = await withSwarm(() => measure(swarmSide(docker), o, log));
  const row = (what: string, a: number[], b: number[]): SwarmRow => ({ what, flotillaMs: a, swarmMs: b, flotilla: median(a), swarm: median(b), ratio: median(a) / median(b) });
  return [
    ...o.sizes.map((n) => row(`converge ${n} replica${n === 1 ? '' : 's'}`, fl.converge.get(n) ?? [], sw.converge.get(n) ?? [])),
    row(`recover a killed replica (of ${o.recoverReplicas})`, fl.recover, sw.recover),
  ];
}
