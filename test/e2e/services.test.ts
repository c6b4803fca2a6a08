import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '../../shared/protocol.js';
import { execIn, requireDocker } from '../lib/docker.js';
import { runCli, startCli } from '../lib/proc.js';
import { waitFor } from '../lib/wait.js';
import { type Cluster, type NodeControlPlane, startNodeControlPlane } from './cluster.js';

// Services on a Node control plane with two CLI agents (each its own loopback address, as two
// machines would have) and the real Docker engine. All traffic stays on 127.0.0.0/8.
let docker: Docker;
let cp: NodeControlPlane;
let cluster: Cluster;
const EJECT_MS = 2000;
const NODE_IP = { 'svc-a': '127.0.0.2', 'svc-b': '127.0.0.3' } as const;
const PREFIX = { 'svc-a': '127.78', 'svc-b': '127.79' } as const;

beforeAll(async () => {
  docker = await requireDocker();
  cp = await startNodeControlPlane(docker, 'flotilla-services-');
  cluster = cp.cluster;
  const token = cluster.cli('token', 'create', '--uses', '2').trim();
  await Promise.all(
    (['svc-a', 'svc-b'] as const).map((n) => cluster.startAgent(n, token, { args: ['--host-ip', NODE_IP[n], '--service-ip-prefix', PREFIX[n]], env: { FLOTILLA_PROXY_EJECT_MS: String(EJECT_MS) } })),
  );
}, 90_000);

afterAll(async () => {
  await cp?.close();
});

// Each pod serves its own name, exits on SIGTERM, and is ready while /www/healthz exists.
const SERVER = ['sh', '-c', 'hostname > /www/index.html; trap "exit 0" TERM; httpd -f -p 80 -h /www & wait'];
const readiness = { httpGet: { path: '/healthz', port: 80 }, periodSeconds: 1, failureThreshold: 1 };

function file(name: string, doc: unknown): string {
  const f = join(cluster.tmp('flotilla-svc-'), `${name}.json`);
  writeFileSync(f, JSON.stringify(doc));
  return f;
}

function service(name: string, spec: Record<string, unknown>) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec };
}

/** One HTTP GET on a new connection (so the proxy balances each request). */
function get(host: string, port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => (res.statusCode === 200 ? resolve(body.trim()) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const endpoints = (name: string) => JSON.parse(cluster.cli('get', 'endpoints', name, '-o', 'json'));
const readyPods = (ep: any): string[] => ep.subsets.flatMap((s: any) => (s.addresses ?? []).map((a: any) => a.targetRef.name)).sort();
const svcAddress = (name: string, node: keyof typeof PREFIX) => JSON.parse(cluster.cli('get', 'services', name, '-o', 'json')).spec.clusterIP.replace(/^127\.77\./, `${PREFIX[node]}.`);

/**
 * An HTTP GET from inside a container, by busybox nc (Debian's static busybox wget crashes on name
 * lookups: static glibc cannot load NSS modules). The body's last line.
 */
async function httpIn(containerId: string, host: string): Promise<string> {
  const x = await execIn(docker, containerId, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\nHost: ${host}\\r\\n\\r\\n' | nc ${host} 8080`]);
  return x.out.trim().split('\n').pop()?.trim() ?? '';
}

async function webContainer(pod: string) {
  const all = await cluster.containers(true);
  const c = all.find((x) => x.Labels[LABELS.podName] === pod);
  if (!c) throw new Error(`no running container for ${pod}`);
  return c;
}

describe('services', () => {
  it('balances over the ready endpoints on both nodes, drops an unready one, and rides over a killed one', async () => {
    cluster.cli('apply', '-f', file('web', cluster.manifestDoc('web', 3, { spread: true, container: { command: SERVER, readinessProbe: readiness } })));
    cluster.cli('apply', '-f', file('web-svc', service('web', { type: 'NodePort', selector: { app: 'web' }, ports: [{ port: 8080, targetPort: 80 }] })));
    const three = await waitFor('3 ready endpoints', () => readyPods(endpoints('web')).length === 3 && endpoints('web'), 60_000, 300);
    const nodes = new Set(three.subsets.map((s: any) => s.addresses[0].nodeName));
    expect(nodes).toEqual(new Set(['svc-a', 'svc-b']));
    const table = cluster.cli('get', 'endpoints', 'web');
    expect(table).toMatch(/127\.0\.0\.2:\d+/);
    expect(table).toMatch(/127\.0\.0\.3:\d+/);
    const svc = JSON.parse(cluster.cli('get', 'services', 'web', '-o', 'json'));
    expect(svc.spec.clusterIP).toMatch(/^127\.77\.\d+\.\d+$/);
    const nodePort = svc.spec.ports[0].nodePort as number;
    expect(nodePort).toBeGreaterThanOrEqual(30000);
    expect(cluster.cli('get', 'services')).toMatch(new RegExp(`web\\s+NodePort\\s+127\\.77\\.\\d+\\.\\d+\\s+8080:${nodePort}/TCP\\s+3\\s+app=web`));

    // 300 requests through node A's proxy: every ready endpoint serves some, none fail.
    const addrA = svcAddress('web', 'svc-a');
    await waitFor("node A's proxy serving", () => get(addrA, 8080).catch(() => false), 20_000, 200);
    const served = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const who = await get(addrA, 8080);
      served.set(who, (served.get(who) ?? 0) + 1);
    }
    expect([...served.keys()].sort()).toEqual(readyPods(three));
    for (const n of served.values()) expect(n).toBeGreaterThanOrEqual(50);
    // The NodePort answers on node B's address too.
    expect(readyPods(three)).toContain(await waitFor('NodePort on node B', () => get(NODE_IP['svc-b'], nodePort).catch(() => false), 20_000, 200));

    // An external load balancer following the endpoints: a watch returns when they change.
    const rv = endpoints('web').metadata.resourceVersion;
    const watch = fetch(`${cluster.url}/v1/namespaces/default/services/web/endpoints?watch=1&resourceVersion=${encodeURIComponent(rv)}&timeoutSeconds=60`, {
      headers: { authorization: `Bearer ${cluster.token}` },
    }).then((r) => r.json() as Promise<any>);

    // Unready: remove one pod's readiness page; it leaves the endpoints and gets no request.
    const [unready, killed] = readyPods(three) as [string, string];
    await execIn(docker, (await webContainer(unready)).Id, ['busybox', 'rm', '/www/healthz']);
    const changed = await watch;
    expect(changed.metadata.resourceVersion).not.toBe(rv);
    expect(readyPods(changed)).not.toContain(unready);
    expect(changed.subsets.some((s: any) => s.notReadyAddresses?.[0]?.targetRef.name === unready)).toBe(true);
    // Once the proxy has the change (bounded), 100 requests never reach it.
    await waitFor(
      'proxy dropping the unready pod',
      async () => {
        for (let i = 0; i < 20; i++) if ((await get(addrA, 8080)) === unready) return false;
        return true;
      },
      20_000,
      100,
    );
    for (let i = 0; i < 100; i++) expect(await get(addrA, 8080)).not.toBe(unready);

    // Killed: requests may fail at most within the ejection window, and none after it.
    const killedAt = Date.now();
    await docker.getContainer((await webContainer(killed)).Id).kill();
    const failures: number[] = [];
    const until = killedAt + EJECT_MS * 3;
    let sent = 0;
    while (Date.now() < until && sent < 2000) {
      sent++;
      await get(addrA, 8080).catch(() => failures.push(Date.now() - killedAt));
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(sent).toBeGreaterThan(50);
    expect(failures.filter((t) => t > EJECT_MS + 500)).toEqual([]);
    for (let i = 0; i < 50; i++) await get(addrA, 8080);
  }, 180_000);

  it('lets a pod reach a service by name and by env vars, on a bridge and on the host network', async () => {
    const sleeper = { name: 'sh', image: 'local/busybox:1', command: ['sleep', '3600'] };
    cluster.cli('apply', '-f', file('client', cluster.manifestDoc('client', 1, { containers: [sleeper], nodeSelector: { 'kubernetes.io/hostname': 'svc-b' } })));
    cluster.cli('apply', '-f', file('hostnet', cluster.manifestDoc('hostnet', 1, { containers: [sleeper], pod: { hostNetwork: true }, nodeSelector: { 'kubernetes.io/hostname': 'svc-a' } })));
    const ready = readyPods(endpoints('web'));
    for (const app of ['client', 'hostnet']) {
      const pod = await waitFor(`${app} running`, () => cluster.pods().find((p) => p.metadata.labels.app === app && p.status.phase === 'Running'), 60_000, 300);
      const c = await webContainer(pod.metadata.name);
      for (const host of ['web', 'web.default', 'web.default.svc']) {
        const r = await waitFor(
          `${app}: GET http://${host}:8080/`,
          async () => {
            const x = await httpIn(c.Id, host);
            return ready.includes(x) && x;
          },
          20_000,
          300,
        );
        expect(ready).toContain(r);
      }
      const env = (await execIn(docker, c.Id, ['env'])).out;
      expect(env).toMatch(/^WEB_SERVICE_PORT=8080$/m);
      const host = /^WEB_SERVICE_HOST=(.+)$/m.exec(env)?.[1] as string;
      expect(host).toBeTruthy();
      if (app === 'hostnet') expect(host).toMatch(/^127\.78\./);
      expect(ready).toContain(await httpIn(c.Id, host));
    }
  }, 120_000);

  it('keeps every request through the service succeeding during a rolling update', async () => {
    const addrB = svcAddress('web', 'svc-b');
    await waitFor("node B's proxy", () => get(addrB, 8080).catch(() => false), 20_000, 200);
    const doc = cluster.manifestDoc('web', 3, { spread: true, image: 'local/busybox:2', container: { command: SERVER, readinessProbe: readiness } });
    (doc.spec as any).strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } };
    let on = true;
    let ok = 0;
    const failures: string[] = [];
    const loop = (async () => {
      for (let i = 0; on && i < 20_000; i++) {
        await get(addrB, 8080).then(
          () => ok++,
          (e) => failures.push((e as Error).message),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const p = startCli(['apply', '-f', file('web-v2', doc), '--wait', '--timeout', '120s'], cluster.env());
    const code = await p.exited;
    on = false;
    await loop;
    expect(code, p.out()).toBe(0);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(50);
  }, 180_000);

  it('says why a service has no endpoints, and refuses bad services with the field path', async () => {
    cluster.cli('apply', '-f', file('none', service('none', { selector: { app: 'nothing' }, ports: [{ port: 9090 }] })));
    const ep = endpoints('none');
    expect(ep.subsets).toEqual([]);
    expect(ep.message).toBe('the selector app=nothing matches no running pod in namespace default');
    const table = cluster.cli('get', 'endpoints', 'none');
    expect(table).toMatch(/none\s+<none>/);
    expect(table).toContain('matches no running pod');
    const bad = (spec: Record<string, unknown>) => runCli(['apply', '-f', file('bad', service('bad', spec))], cluster.env());
    let r = bad({
      selector: { app: 'x' },
      ports: [
        { name: 'http', port: 1 },
        { name: 'http', port: 2 },
      ],
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('spec.ports[1].name: duplicate port name "http"');
    r = bad({ selector: { app: 'x' }, ports: [{ port: 70000 }] });
    expect(r.stderr).toContain('spec.ports[0].port');
    r = bad({ type: 'NodePort', selector: { app: 'x' }, ports: [{ port: 1, nodePort: 80 }] });
    expect(r.stderr).toContain('spec.ports[0].nodePort');
    r = bad({ selector: { app: 'x' }, ports: [{ port: 8080 }] });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('port 8080 is already used by service default/web');
    expect(runCli(['get', 'services', 'bad'], cluster.env()).code).not.toBe(0);
    cluster.cli('delete', 'service', 'none');
    expect(runCli(['get', 'endpoints', 'none'], cluster.env()).code).not.toBe(0);
    // Deleting the service closes its proxies on every node.
    const addrA = svcAddress('web', 'svc-a');
    await get(addrA, 8080);
    cluster.cli('delete', 'service', 'web');
    await waitFor(
      'proxy closed',
      () =>
        get(addrA, 8080).then(
          () => false,
          (e) => /ECONNREFUSED/.test(String(e)),
        ),
      20_000,
      200,
    );
  }, 60_000);
});
