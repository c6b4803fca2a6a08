import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { type CliProc, startBenchControlPlane, until } from './procs.js';

// apply -> container running, against a bare `docker run -d` on the same engine, same run.
// Flotilla: a Node control plane and one real agent (compiled CLI, default timings); each sample
// applies a new one-replica Deployment of an image already on the engine and waits for the engine's
// `start` event of its container. Phases come from clocks on one machine: the apply request (API,
// which also schedules: the tick runs inside it), the pod's Scheduled event, the engine's `create`
// event (between them: the node is told, fetches its desired state, verifies the lease, finds the
// image present: pull skipped), and `start`. Baseline: `docker run -d` (the CLI, as a user types it)
// of the same image and command, from the spawn to the same `start` event.

export interface DeployOptions {
  samples: number;
}
export const QUICK: DeployOptions = { samples: 5 };
export const FULL: DeployOptions = { samples: 40 };

export interface DeployResult {
  samples: number;
  flotilla: { p50: number; p99: number };
  docker: { p50: number; p99: number };
  phases: { api: number; schedule: number; notify: number; createStart: number };
  ratioP50: number;
  ratioP99: number;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
};

/** Engine events (create, start) by container name, with their times in ms since the epoch. */
async function engineEvents(docker: Docker): Promise<{ at(name: string, action: string): number | undefined; stop(): void }> {
  const seen = new Map<string, number>();
  const stream = (await docker.getEvents({ filters: { type: ['container'], event: ['create', 'start'] } })) as NodeJS.ReadableStream & { destroy(): void };
  let buf = '';
  stream.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
      try {
        const e = JSON.parse(line) as { Action: string; timeNano: number; Actor: { Attributes: { name: string } } };
        seen.set(`${e.Actor.Attributes.name}/${e.Action}`, e.timeNano / 1e6);
      } catch {
        /* partial */
      }
    }
  });
  return { at: (name, action) => seen.get(`${name}/${action}`), stop: () => stream.destroy() };
}

export async function benchDeploy(o: DeployOptions, log: (s: string) => void): Promise<DeployResult> {
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  await docker.getImage('local/busybox:1').inspect(); // a clear error when the image is missing
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-deploy-'));
  const env = { FLOTILLA_LOG_LEVEL: 'warn' };
  const cp = await startBenchControlPlane(dir, env);
  const { api } = cp;
  let agent: CliProc | undefined;
  const events = await engineEvents(docker);
  try {
    const started = await cp.startAgent('deploy-0');
    agent = started.proc;
    const nodeId = started.id;
    // Exits at once on SIGTERM (a bare httpd as PID 1 ignores it and waits out the stop timeout).
    const cmd = ['sh', '-c', 'trap "exit 0" TERM; httpd -f -p 80 -h /www & wait'];
    const flotilla: number[] = [];
    const bare: number[] = [];
    const phases = { api: [] as number[], schedule: [] as number[], notify: [] as number[], createStart: [] as number[] };
    // Warm-up: one of each (first container on a fresh engine and agent is slower for both).
    for (let i = -1; i < o.samples; i++) {
      // Flotilla
      const name = `dep${i + 1}`;
      const manifest = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: name } },
          template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'web', image: 'local/busybox:1', imagePullPolicy: 'IfNotPresent', command: cmd }] } },
        },
      };
      const t0 = Date.now();
      await api('PUT', `/v1/namespaces/default/deployments/${name}`, manifest);
      const tApi = Date.now();
      const pod = await until('pod placed', async () => ((await api('GET', '/v1/namespaces/default/pods')).items as any[]).find((p) => p.metadata.labels.app === name && p.spec.nodeName), 30_000, 20);
      const ctr = await until(
        'container started',
        async () => {
          const list = await docker.listContainers({ all: true, filters: { label: [`dev.flotilla.node=${nodeId}`, `dev.flotilla.workload=${name}`] } });
          const c = list[0];
          const n = c?.Names[0]?.replace(/^\//, '');
          return n && events.at(n, 'start') ? n : undefined;
        },
        30_000,
        10,
      );
      const evs = (await api('GET', `/v1/namespaces/default/events?kind=Pod&name=${encodeURIComponent(pod.metadata.name)}`)).items as Array<{ reason: string; lastTimestamp: string }>;
      const scheduled = Date.parse(evs.find((e) => e.reason === 'Scheduled')?.lastTimestamp ?? '') || tApi;
      const created = events.at(ctr, 'create') as number;
      const started = events.at(ctr, 'start') as number;
      // Baseline: docker run -d of the same image and command.
      const bname = `flotilla-bench-bare-${i + 1}-${process.pid}`;
      const b0 = Date.now();
      await new Promise<void>((resolve, reject) => {
        const p = spawn('docker', ['run', '-d', '--name', bname, '--label', 'flotilla-bench=deploy', 'local/busybox:1', ...cmd], { stdio: 'ignore' });
        p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker run exited ${code}`))));
      });
      const bStarted = await until('bare start event', () => events.at(bname, 'start'), 10_000, 5);
      if (i >= 0) {
        flotilla.push(started - t0);
        bare.push(bStarted - b0);
        phases.api.push(tApi - t0);
        phases.schedule.push(Math.max(0, scheduled - t0));
        phases.notify.push(created - Math.max(scheduled, tApi));
        phases.createStart.push(started - created);
      }
      await api('DELETE', `/v1/namespaces/default/deployments/${name}`);
      await docker.getContainer(bname).remove({ force: true });
      // The next sample starts on an idle node: a stop still in progress would hold up the agent's
      // next reconcile pass (bench/FINDINGS.md).
      await until('the sample removed', async () => (await docker.listContainers({ all: true, filters: { label: [`dev.flotilla.workload=${name}`] } })).length === 0, 60_000, 50);
    }
    const median = (xs: number[]) => pct(xs, 50);
    const r: DeployResult = {
      samples: o.samples,
      flotilla: { p50: pct(flotilla, 50), p99: pct(flotilla, 99) },
      docker: { p50: pct(bare, 50), p99: pct(bare, 99) },
      phases: { api: median(phases.api), schedule: median(phases.schedule), notify: median(phases.notify), createStart: median(phases.createStart) },
      ratioP50: pct(flotilla, 50) / pct(bare, 50),
      ratioP99: pct(flotilla, 99) / pct(bare, 99),
    };
    log(
      `  apply -> running p50 ${r.flotilla.p50.toFixed(0)} ms, p99 ${r.flotilla.p99.toFixed(0)} ms; docker run -d p50 ${r.docker.p50.toFixed(0)} ms, p99 ${r.docker.p99.toFixed(0)} ms; phases (median): API+schedule ${r.phases.api.toFixed(0)} ms (scheduled at ${r.phases.schedule.toFixed(0)} ms), node told + desired + lease + image check ${r.phases.notify.toFixed(0)} ms, create+start ${r.phases.createStart.toFixed(0)} ms`,
    );
    return r;
  } finally {
    events.stop();
    await agent?.stop();
    await cp.server.stop();
    for (const c of await docker.listContainers({ all: true, filters: { label: ['flotilla-bench=deploy'] } })) await docker.getContainer(c.Id).remove({ force: true });
    for (const c of await docker.listContainers({ all: true, filters: { label: ['dev.flotilla.managed=true'] } }))
      if (/^dep\d+$/.test(c.Labels['dev.flotilla.workload'] ?? '')) await docker.getContainer(c.Id).remove({ force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
