import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newMasterKey } from '../../shared/secretbox.js';
import { execIn, nodeContainers, requireDocker } from '../lib/docker.js';
import { type Proc, runCli, start, startCli } from '../lib/proc.js';
import { freePort } from '../lib/registry.js';
import { waitFor } from '../lib/wait.js';
import { Cluster } from './cluster.js';

// The same app under `wrangler dev` (workerd) with a local D1 database, and a real agent.
const TOKEN = `flo_${'w'.repeat(40)}`;
const SECRET_KEY = newMasterKey();
let docker: Docker;
let worker: Proc;
let cluster: Cluster;
let state: string;
let port: number;

/** `wrangler dev` on the test's port and D1 state, with this Secrets master key. */
function startWorker(secretKey: string): Proc {
  const wrangler = join('node_modules', '.bin', 'wrangler');
  const vars = [`FLOTILLA_BOOTSTRAP_TOKEN:${TOKEN}`, 'FLOTILLA_LEASE_TTL:6s', 'FLOTILLA_CLOCK_SKEW:1s', 'FLOTILLA_TICK_INTERVAL:500ms', `FLOTILLA_SECRET_KEY:${secretKey}`];
  return start(wrangler, ['dev', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', state, '--test-scheduled', ...vars.flatMap((v) => ['--var', v])], { CI: 'true' });
}

beforeAll(async () => {
  docker = await requireDocker();
  state = mkdtempSync(join(tmpdir(), 'flotilla-wrangler-'));
  const wrangler = join('node_modules', '.bin', 'wrangler');
  execFileSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', state], { stdio: 'ignore', env: { ...process.env, CI: 'true' }, timeout: 120_000 });
  port = await freePort();
  worker = startWorker(SECRET_KEY);
  const url = `http://127.0.0.1:${port}`;
  await waitFor('wrangler dev to serve /healthz', async () => (await fetch(`${url}/healthz`)).ok, 90_000, 500);
  cluster = new Cluster(url, TOKEN, docker);
}, 180_000);

afterAll(async () => {
  await cluster?.close();
  await worker?.stop();
  if (state) rmSync(state, { recursive: true, force: true });
});

describe('Worker control plane (wrangler dev, local D1) with one agent', () => {
  it('enrolls an agent, runs a deployment, and removes it on delete', async () => {
    const token = cluster.cli('token', 'create', '--uses', '1').trim();
    await cluster.startAgent('worker-edge', token);
    const web = cluster.manifest('wweb', 2);
    expect(cluster.cli('apply', '-f', web).trim()).toBe('deployment.apps/wweb created');
    const pods = await cluster.waitRunning(2);
    expect(pods.every((p) => p.spec.nodeName === 'worker-edge')).toBe(true);
    expect(cluster.cli('delete', 'deployment', 'wweb').trim()).toBe('deployment.apps/wweb deleted');
    await waitFor('no containers left', async () => (await cluster.containers()).length === 0, 30_000);
    await waitFor('no pods left', () => cluster.pods().length === 0, 15_000);
    // The worker logs JSON lines, and the bootstrap token never appears in them.
    expect(worker.out()).toMatch(/"runtime":"worker"/);
    expect(worker.out()).not.toContain(TOKEN);
  });

  it('rolls a Deployment from v1 to v2 health-gated, never below the replicas Ready; rollout status follows it', async () => {
    const readinessProbe = { httpGet: { path: '/', port: 80 }, periodSeconds: 1, failureThreshold: 1 };
    const file = (image: string) => {
      const f = cluster.manifest('wroll', 2, { image, nodeSelector: { 'kubernetes.io/hostname': 'worker-edge' }, container: { readinessProbe } });
      const doc = JSON.parse(readFileSync(f, 'utf8'));
      doc.spec.strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } };
      writeFileSync(f, JSON.stringify(doc));
      return f;
    };
    const live = () => cluster.pods().filter((p) => p.metadata.labels.app === 'wroll' && p.status.phase !== 'Terminating');
    const ready = (p: any) => p.status.conditions.find((c: any) => c.type === 'Ready')?.status === 'True';
    const serving = async (body: string) => {
      const pods = live();
      if (pods.length !== 2 || !pods.every(ready)) return false;
      for (const p of pods) if ((await (await fetch(`http://127.0.0.1:${p.status.hostPorts[0].hostPort}/`)).text()) !== body) return false;
      return true;
    };
    cluster.cli('apply', '-f', file('local/busybox:1'));
    await waitFor('wroll v1 serving', () => serving('v1\n'), 60_000, 300);
    let minReady = Infinity;
    let on = true;
    const sample = (async () => {
      while (on) {
        minReady = Math.min(minReady, live().filter(ready).length);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    cluster.cli('apply', '-f', file('local/busybox:2'));
    const status = startCli(['rollout', 'status', 'deployment/wroll', '--timeout', '60s'], cluster.env());
    expect(await status.exited, status.out()).toBe(0);
    on = false;
    await sample;
    expect(status.out()).toMatch(/deployment "wroll" successfully rolled out \(revision 2\)/);
    await waitFor('wroll v2 serving', () => serving('v2\n'), 30_000, 300);
    expect(minReady).toBeGreaterThanOrEqual(2);
    const dep = JSON.parse(cluster.cli('get', 'deployment', 'wroll', '-o', 'json'));
    expect(dep.status.rollout).toMatchObject({ revision: 2, state: 'Complete', stableRevision: 2 });
    cluster.cli('delete', 'deployment', 'wroll');
  }, 150_000);

  it('seals a Secret in D1 and delivers it, encrypted to the node, as env and as a file', async () => {
    const value = 'worker-secret-value-77';
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-wsec-'));
    const sf = join(dir, 'secret.json');
    writeFileSync(sf, JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'wdb' }, stringData: { password: value } }));
    expect(cluster.cli('apply', '-f', sf).trim()).toBe('secret/wdb created');
    const f = cluster.manifest('wsec', 1, {
      nodeSelector: { 'kubernetes.io/hostname': 'worker-edge' },
      pod: { volumes: [{ name: 'c', secret: { secretName: 'wdb' } }] },
      container: { env: [{ name: 'PW', valueFrom: { secretKeyRef: { name: 'wdb', key: 'password' } } }], volumeMounts: [{ name: 'c', mountPath: '/etc/c' }] },
    });
    cluster.cli('apply', '-f', f);
    const ctr = await waitFor('the wsec container', async () => (await cluster.containers(true)).find((c) => c.Labels['dev.flotilla.workload'] === 'wsec'), 60_000, 300);
    const exec = async (cmd: string[]) => (await execIn(docker, ctr.Id, cmd)).out;
    expect(await exec(['sh', '-c', 'echo $PW'])).toBe(`${value}\n`);
    expect(await exec(['cat', '/etc/c/password'])).toBe(value);
    const listed = cluster.cli('get', 'secrets');
    expect(listed).toMatch(/wdb\s+Opaque\s+password \(22B\)\s+1\s+deployment\/wsec/);
    expect(listed).not.toContain(value);
    expect(worker.out()).not.toContain(value);
    cluster.cli('delete', 'deployment', 'wsec');
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('logs and logs -f of a real container through the Worker; watches, label selectors and dry runs on D1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-wlogs-'));
    const f = join(dir, 'talk.json');
    const talker = { name: 'out', image: 'local/busybox:1', command: ['sh', '-c', 'trap "exit 0" TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done'] };
    writeFileSync(f, JSON.stringify(cluster.manifestDoc('wtalk', 1, { nodeSelector: { 'kubernetes.io/hostname': 'worker-edge' }, containers: [talker] })));
    const rv = JSON.parse(cluster.cli('get', 'pods', '-o', 'json')).metadata.resourceVersion as string;
    cluster.cli('apply', '-f', f);
    const pod = (await waitFor('wtalk running', () => cluster.pods().find((p) => p.metadata.labels.app === 'wtalk' && p.status.phase === 'Running'), 60_000, 300)).metadata.name as string;
    await new Promise((r) => setTimeout(r, 1500));
    const nums = (out: string) => [...out.matchAll(/^line (\d+)$/gm)].map((m) => Number(m[1]));
    // The agent learns of the request at its next heartbeat (no long-poll on Workers), within FLOTILLA_LOG_WAIT.
    const tail = nums(cluster.cli('logs', pod, '--tail', '3'));
    expect(tail).toHaveLength(3);
    expect(tail).toEqual([tail[0], (tail[0] as number) + 1, (tail[0] as number) + 2]);
    const follow = startCli(['logs', pod, '-f', '--tail', '1'], cluster.env());
    await follow.waitForOutput(/^line \d+$/m, 30_000);
    const first = nums(follow.out())[0] as number;
    await waitFor('5 more lines', () => (nums(follow.out()).at(-1) ?? 0) >= first + 5, 30_000, 200);
    const seen = nums(follow.out());
    expect(seen).toEqual(seen.map((_, i) => first + i));
    await follow.stop();
    // A watch from before the apply sees the pod added, through D1's change log.
    const w = JSON.parse(
      execFileSync(
        process.execPath,
        [
          '-e',
          `fetch(${JSON.stringify(`${cluster.url}/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dwtalk&timeoutSeconds=5&resourceVersion=${rv}`)}, { headers: { authorization: 'Bearer ${TOKEN}' } }).then(r => r.text()).then(t => process.stdout.write(t))`,
        ],
        { encoding: 'utf8' },
      ),
    );
    expect(w.items.some((e: { type: string; object: { metadata: { name: string } } }) => e.type === 'ADDED' && e.object.metadata.name === pod)).toBe(true);
    expect(cluster.cli('get', 'pods', '-l', 'app=wtalk', '-o', 'name').trim()).toBe(`pod/${pod}`);
    writeFileSync(f, JSON.stringify(cluster.manifestDoc('wtalk', 2, { nodeSelector: { 'kubernetes.io/hostname': 'worker-edge' }, containers: [talker] })));
    expect(cluster.cli('apply', '-f', f, '--dry-run=server')).toContain('~ spec.replicas: 1 -> 2');
    expect(JSON.parse(cluster.cli('get', 'deployment', 'wtalk', '-o', 'json')).spec.replicas).toBe(1);
    cluster.cli('delete', 'deployment', 'wtalk');
    rmSync(dir, { recursive: true, force: true });
  }, 150_000);

  it('reschedules the pods of a lost node; the Cron Trigger handler runs the controllers', async () => {
    const token = cluster.cli('token', 'create', '--uses', '2').trim();
    await Promise.all([cluster.startAgent('wk-a', token), cluster.startAgent('wk-b', token)]);
    const agentA = cluster.agents.find((a) => a.out().includes('agent "wk-a" running')) as Proc;
    const idA = cluster.nodeIdOf.get('wk-a') as string;
    cluster.cli(
      'apply',
      '-f',
      cluster.manifest('wlost', 1, {
        pod: {
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['wk-a', 'wk-b'] }] }] },
            },
          },
        },
      }),
    );
    await waitFor('wlost running on one node', () => cluster.pods().filter((p) => p.metadata.labels.app === 'wlost' && p.status.phase === 'Running').length === 1, 60_000, 300);
    const on = cluster.pods().find((p) => p.metadata.labels.app === 'wlost' && p.status.phase === 'Running');
    const victim = on.spec.nodeName === 'wk-a' ? agentA : (cluster.agents.find((a) => a.out().includes('agent "wk-b" running')) as Proc);
    const victimId = on.spec.nodeName === 'wk-a' ? idA : (cluster.nodeIdOf.get('wk-b') as string);
    victim.child.kill('SIGKILL');
    for (const c of await nodeContainers(docker, victimId)) await docker.getContainer(c.Id).remove({ force: true });
    const survivor = on.spec.nodeName === 'wk-a' ? 'wk-b' : 'wk-a';
    await waitFor(
      `wlost rescheduled onto ${survivor}`,
      async () => {
        await fetch(`${cluster.url}/__scheduled?cron=*+*+*+*+*`);
        return cluster.pods().some((p) => p.metadata.labels.app === 'wlost' && p.spec.nodeName === survivor && p.status.phase === 'Running');
      },
      60_000,
      500,
    );
    expect(worker.out()).toMatch(/scheduled tick/);
    cluster.cli('delete', 'deployment', 'wlost');
  }, 150_000);

  it('with a wrong master key, Secrets are refused with the reason, /healthz says so and nothing stored changes; workloads keep working', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-wkey-'));
    const sf = join(dir, 'secret.json');
    writeFileSync(sf, JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'wkey' }, stringData: { token: 'first-value' } }));
    cluster.cli('apply', '-f', sf);
    const stored = () => JSON.parse(cluster.cli('get', 'secrets', 'wkey', '-o', 'json'));
    const before = stored();
    await worker.stop();
    worker = startWorker(newMasterKey());
    const health = await waitFor('wrangler dev to answer /healthz', async () => (await fetch(`${cluster.url}/healthz`).catch(() => null)) ?? false, 90_000, 500);
    expect(health.status).toBe(503);
    expect((await health.json()).problems[0]).toMatch(/^the secret master key \(key id [0-9a-f]+\) is not the key the stored secrets are sealed under \(key id [0-9a-f]+\)$/);
    writeFileSync(sf, JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'wkey' }, stringData: { token: 'second-value' } }));
    const r = runCli(['apply', '-f', sf], cluster.env());
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/not the key the stored secrets are sealed under .*nothing was changed; set FLOTILLA_SECRET_KEY to that key/);
    expect(stored()).toEqual(before);
    await worker.waitForOutput(/Secrets are refused until FLOTILLA_SECRET_KEY is set to that key/, 15_000);
    // The rest of the control plane answers.
    expect(JSON.parse(cluster.cli('get', 'nodes', '-o', 'json')).items).toBeInstanceOf(Array);
    rmSync(dir, { recursive: true, force: true });
  }, 150_000);
});
