import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';

// The service proxy's cost: the same HTTP client (fixed concurrency, fixed duration) against one
// endpoint directly and through the agent's L4 proxy (agent/proxy.ts, in its own process), in the
// same run, alternating rounds. Two client modes: keep-alive connections (the proxy's per-byte
// cost) and a new connection per request (its per-connection cost: accept, pick, connect).
// Everything on 127.0.0.1.

export interface ProxyOptions {
  seconds: number;
  rounds: number;
  concurrency: number;
}
export const QUICK: ProxyOptions = { seconds: 2, rounds: 1, concurrency: 16 };
export const FULL: ProxyOptions = { seconds: 10, rounds: 3, concurrency: 32 };

export interface ProxyModeResult {
  mode: 'keep-alive' | 'new connection';
  directRps: number;
  proxyRps: number;
  ratio: number;
  directP99Ms: number;
  proxyP99Ms: number;
  addedP99Ms: number;
}
export type ProxyResult = ProxyModeResult[];

const BACKEND = `require('http').createServer((q, s) => s.end('hello\\n')).listen(0, '127.0.0.1', function () { console.log('port ' + this.address().port); });`;

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

function waitLine(p: ChildProcess, re: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}: ${buf}`)), 30_000);
    p.stdout?.on('data', (d) => {
      buf += d;
      const m = re.exec(buf);
      if (m) {
        clearTimeout(t);
        resolve(m);
      }
    });
    p.stderr?.on('data', (d) => {
      buf += d;
    });
    p.once('exit', (c) => reject(new Error(`exited ${c}: ${buf}`)));
  });
}

/** `concurrency` loops of GETs for `seconds`: requests/s and p99 latency (ms). */
async function load(port: number, o: ProxyOptions, keepAlive: boolean): Promise<{ rps: number; p99: number }> {
  const agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: o.concurrency }) : undefined;
  const lat: number[] = [];
  const end = Date.now() + o.seconds * 1000;
  let errors = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port, path: '/', agent: agent ?? false }, (res) => {
        res.resume();
        res.on('end', () => {
          lat.push(performance.now() - t0);
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });
  const start = performance.now();
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  const secs = (performance.now() - start) / 1000;
  agent?.destroy();
  if (errors > lat.length / 100) throw new Error(`${errors} failed requests (of ${lat.length + errors})`);
  lat.sort((a, b) => a - b);
  return { rps: lat.length / secs, p99: lat[Math.floor(lat.length * 0.99)] ?? 0 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export async function benchProxy(o: ProxyOptions, log: (s: string) => void): Promise<ProxyResult> {
  const backend = spawn(process.execPath, ['-e', BACKEND], { stdio: ['ignore', 'pipe', 'pipe'] });
  const procs: ChildProcess[] = [backend];
  try {
    const backendPort = Number((await waitLine(backend, /port (\d+)/))[1]);
    const proxyPort = await freePort();
    const proxy = spawn(process.execPath, ['--import', 'tsx', 'bench/proxy-server.ts', `127.0.0.1:${proxyPort}`, `127.0.0.1:${backendPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(proxy);
    await waitLine(proxy, /ready/);
    const out: ProxyResult = [];
    for (const keepAlive of [true, false]) {
      const mode = keepAlive ? 'keep-alive' : 'new connection';
      await load(backendPort, { ...o, seconds: 0.5 }, keepAlive); // warm-up
      await load(proxyPort, { ...o, seconds: 0.5 }, keepAlive);
      const d: { rps: number; p99: number }[] = [];
      const p: { rps: number; p99: number }[] = [];
      for (let r = 0; r < o.rounds; r++) {
        d.push(await load(backendPort, o, keepAlive));
        p.push(await load(proxyPort, o, keepAlive));
        log(`  ${mode} round ${r + 1}: direct ${Math.round(d[r]?.rps ?? 0)} req/s p99 ${d[r]?.p99.toFixed(2)} ms; proxy ${Math.round(p[r]?.rps ?? 0)} req/s p99 ${p[r]?.p99.toFixed(2)} ms`);
      }
      const directRps = median(d.map((x) => x.rps));
      const proxyRps = median(p.map((x) => x.rps));
      const directP99Ms = median(d.map((x) => x.p99));
      const proxyP99Ms = median(p.map((x) => x.p99));
      out.push({ mode, directRps, proxyRps, ratio: proxyRps / directRps, directP99Ms, proxyP99Ms, addedP99Ms: proxyP99Ms - directP99Ms });
    }
    return out;
  } finally {
    for (const p of procs) p.kill('SIGTERM');
  }
}
