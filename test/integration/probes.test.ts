import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeManager, type ProbeTarget, runProbe } from '../../agent/probes.js';
import type { ContainerSpec, PodSpec, Probe } from '../../shared/manifest.js';
import { requireDocker } from '../lib/docker.js';
import { waitFor } from '../lib/wait.js';

// The agent's prober against real endpoints: an HTTP server on 127.0.0.1 the test controls, a
// closed port, and a real busybox container for exec probes.
let docker: Docker;
let server: Server;
let port: number;
let healthy = true;
let container: Docker.Container;

beforeAll(async () => {
  docker = await requireDocker();
  server = createServer((req, res) => {
    res.statusCode = req.url === '/healthz' && healthy ? 200 : 503;
    res.end(req.headers['x-probe'] ?? '');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
  container = await docker.createContainer({ Image: 'local/busybox:1', Cmd: ['sleep', '600'], Labels: { 'dev.flotilla.test': 'probes' } });
  await container.start();
});

afterAll(async () => {
  server?.close();
  await container?.remove({ force: true }).catch(() => undefined);
});

const probe = (p: Partial<Probe>): Probe => ({ initialDelaySeconds: 0, periodSeconds: 1, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3, ...p }) as Probe;

function target(c: Partial<ContainerSpec>, id = 'c1'): ProbeTarget {
  const container = { name: 'web', image: 'x', ports: [{ containerPort: 80, protocol: 'TCP' }], ...c } as ContainerSpec;
  return {
    containerId: id,
    podId: 'p1',
    podName: 'pod-1',
    container,
    spec: { containers: [container] } as PodSpec,
    hostPorts: [{ containerPort: 80, protocol: 'TCP', hostIP: '127.0.0.1', hostPort: port }],
  };
}

function recorder() {
  const kills: string[] = [];
  const unhealthy: string[] = [];
  let changes = 0;
  return {
    kills,
    unhealthy,
    changes: () => changes,
    events: { kill: (_t: ProbeTarget, reason: string) => kills.push(reason), changed: () => changes++, unhealthy: (_t: ProbeTarget, kind: string, m: string) => unhealthy.push(`${kind}: ${m}`) },
  };
}

describe('runProbe', () => {
  it('httpGet passes on 2xx/3xx through the published port, with headers, and fails otherwise', async () => {
    healthy = true;
    expect(await runProbe(docker, target({}), probe({ httpGet: { path: '/healthz', port: 80, scheme: 'HTTP', httpHeaders: [{ name: 'x-probe', value: 'yes' }] } }))).toMatchObject({ ok: true });
    expect(await runProbe(docker, target({}), probe({ httpGet: { path: '/missing', port: 80, scheme: 'HTTP' } }))).toMatchObject({ ok: false, message: 'HTTP probe failed with statuscode: 503' });
  });

  it("httpGet sends one GET with Host, User-Agent and the probe's headers, and does not follow redirects", async () => {
    const seen: { method?: string; url?: string; headers: Record<string, unknown> }[] = [];
    const srv = createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      res.writeHead(req.url === '/moved' ? 302 : 200, { location: 'http://127.0.0.1:1/elsewhere' }).end('body that is not read');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const t = { ...target({}), hostPorts: [{ containerPort: 80, protocol: 'TCP' as const, hostIP: '0.0.0.0', hostPort: (srv.address() as { port: number }).port }] };
      const get = (path: string, httpHeaders?: { name: string; value: string }[]) =>
        runProbe(docker, t, probe({ httpGet: { path, port: 80, scheme: 'HTTP', ...(httpHeaders ? { httpHeaders } : {}) } }));
      expect(await get('ready?deep=1', [{ name: 'Authorization', value: 'Bearer s3cret' }])).toEqual({ ok: true, message: 'HTTP 200' });
      expect(seen[0]).toMatchObject({ method: 'GET', url: '/ready?deep=1', headers: { host: `127.0.0.1:${t.hostPorts[0]?.hostPort}`, authorization: 'Bearer s3cret', connection: 'close' } });
      expect(seen[0]?.headers['user-agent']).toMatch(/^flotilla-probe/);
      expect(await get('/moved')).toEqual({ ok: true, message: 'HTTP 302' });
      expect(seen.map((s) => s.url)).toEqual(['/ready?deep=1', '/moved']);
      await get('/', [{ name: 'Host', value: 'app.example' }]);
      expect(seen[2]?.headers.host).toBe('app.example');
      // Past apply's check (a workload stored before it), nothing is sent.
      expect(await get('/', [{ name: 'X', value: 'a\r\nX-Injected: 1' }])).toMatchObject({ ok: false, message: expect.stringMatching(/invalid header "X"/) });
      expect(seen).toHaveLength(3);
      // A path goes out percent-encoded, as a URL parser writes it: it cannot split the request.
      expect(await get('/a b\r\nX-Injected: 1#frag')).toEqual({ ok: true, message: 'HTTP 200' });
      expect(seen[3]?.url).toBe('/a%20b%0D%0AX-Injected:%201');
      expect(seen[3]?.headers['x-injected']).toBeUndefined();
    } finally {
      srv.close();
    }
  });

  it('httpGet judges the final status line: skips 1xx, fails on garbage, an early close and a silent server within its timeout', async () => {
    const replies: Record<string, string | null> = {
      '/hints': 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
      '/continue-fail': 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 500 Oops\r\n\r\n',
      '/split': 'HTTP/1.1 2',
      '/garbage': 'SSH-2.0-OpenSSH_9.6\r\n',
      '/close': '',
      '/silent': null,
    };
    const socks = new Set<Socket>();
    const srv = createNetServer((sock) => {
      socks.add(sock);
      sock.once('data', (d) => {
        const path = String(d).split(' ')[1] ?? '';
        const reply = replies[path];
        if (reply === null) return; // never answers
        if (path === '/split') {
          sock.write(reply ?? '');
          setTimeout(() => sock.end('00 OK\r\n\r\n'), 50);
          return;
        }
        sock.end(reply ?? 'HTTP/1.1 404 Not Found\r\n\r\n');
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const t = { ...target({}), hostPorts: [{ containerPort: 80, protocol: 'TCP' as const, hostIP: '127.0.0.1', hostPort: (srv.address() as { port: number }).port }] };
      const get = (path: string) => runProbe(docker, t, probe({ httpGet: { path, port: 80, scheme: 'HTTP' } }));
      expect(await get('/hints')).toEqual({ ok: true, message: 'HTTP 204' });
      expect(await get('/continue-fail')).toEqual({ ok: false, message: 'HTTP probe failed with statuscode: 500' });
      expect(await get('/split')).toEqual({ ok: true, message: 'HTTP 200' });
      expect((await get('/garbage')).message).toMatch(/malformed HTTP response "SSH-2.0/);
      expect((await get('/close')).message).toMatch(/connection closed before a response$/);
      const started = Date.now();
      expect((await get('/silent')).message).toMatch(/: timeout$/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(950);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      for (const s of socks) s.destroy();
      srv.close();
    }
  });

  it('tcpSocket passes on a listening port and fails on a closed one; an unpublished port fails with a reason', async () => {
    expect((await runProbe(docker, target({}), probe({ tcpSocket: { port: 80 } }))).ok).toBe(true);
    const closed = { ...target({}), hostPorts: [{ containerPort: 80, protocol: 'TCP' as const, hostIP: '127.0.0.1', hostPort: 1 }] };
    expect((await runProbe(docker, closed, probe({ tcpSocket: { port: 80 } }))).ok).toBe(false);
    expect(await runProbe(docker, target({}), probe({ tcpSocket: { port: 81 } }))).toEqual({ ok: false, message: 'port 81 is not published' });
  });

  it('exec runs inside the container: exit 0 passes, anything else fails with the output', async () => {
    const t = target({}, container.id);
    expect((await runProbe(docker, t, probe({ exec: { command: ['cat', '/www/healthz'] } }))).ok).toBe(true);
    const bad = await runProbe(docker, t, probe({ exec: { command: ['cat', '/nope'] } }));
    expect(bad.ok).toBe(false);
    expect(bad.message).toMatch(/exited with 1.*nope/);
  });
});

describe('ProbeManager', () => {
  it('readiness: not ready until the first success, unready after failureThreshold failures, ready again', async () => {
    healthy = false;
    const r = recorder();
    const m = new ProbeManager(docker, r.events, 0.1);
    m.sync([target({ readinessProbe: probe({ httpGet: { path: '/healthz', port: 80, scheme: 'HTTP' }, failureThreshold: 2 }) })]);
    expect(m.ready('c1')).toBe(false);
    await new Promise((res) => setTimeout(res, 400));
    expect(m.ready('c1')).toBe(false);
    healthy = true;
    await waitFor('ready', () => m.ready('c1'), 3000, 20);
    healthy = false;
    await waitFor('unready', () => !m.ready('c1'), 3000, 20);
    expect(r.kills).toEqual([]); // readiness never kills
    m.stopAll();
  });

  it('liveness: kills only after failureThreshold consecutive failures', async () => {
    healthy = true;
    const r = recorder();
    const m = new ProbeManager(docker, r.events, 0.1);
    m.sync([target({ livenessProbe: probe({ httpGet: { path: '/healthz', port: 80, scheme: 'HTTP' }, failureThreshold: 3 }) })]);
    await new Promise((res) => setTimeout(res, 400));
    expect(r.kills).toEqual([]);
    healthy = false;
    await waitFor('a kill', () => r.kills.length === 1, 3000, 20);
    expect(r.kills[0]).toMatch(/^liveness probe failed 3 times: HTTP probe failed with statuscode: 503/);
    expect(r.unhealthy.filter((u) => u.startsWith('liveness')).length).toBeGreaterThanOrEqual(3);
    m.stopAll();
  });

  it('startup holds liveness and readiness until it passes; a container gone stops its prober', async () => {
    healthy = false;
    const r = recorder();
    const m = new ProbeManager(docker, r.events, 0.1);
    const t = target({
      startupProbe: probe({ httpGet: { path: '/healthz', port: 80, scheme: 'HTTP' }, failureThreshold: 50 }),
      livenessProbe: probe({ httpGet: { path: '/healthz', port: 80, scheme: 'HTTP' }, failureThreshold: 1 }),
    });
    m.sync([t]);
    await new Promise((res) => setTimeout(res, 500));
    // liveness (threshold 1) would have killed it by now if it ran before startup passed
    expect([m.started('c1'), m.ready('c1'), r.kills.length]).toEqual([false, false, 0]);
    healthy = true;
    await waitFor('started', () => m.started('c1') && m.ready('c1'), 3000, 20);
    m.sync([]);
    healthy = false;
    await new Promise((res) => setTimeout(res, 400));
    expect(r.kills).toEqual([]);
    expect(m.ready('c1')).toBe(true); // no state left for a container that is gone
  });
});
