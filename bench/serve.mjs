// Servers the benchmarks measure, started as separate (CPU-pinned) processes, from compiled JS
// (dist/, what `npm start` runs; bench/run.ts builds it first):
//   serve.mjs hello PORT          hello world on the same Hono + @hono/node-server stack (the baseline)
//   serve.mjs cp PORT DATA_DIR    the Flotilla control plane on Node with the embedded libSQL file
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { nodeLogger, startServer } from '../dist/control-plane/entry/node.js';

const [mode, port, dataDir] = process.argv.slice(2);
if (mode === 'hello') {
  const app = new Hono();
  app.get('/', (c) => c.text('hello'));
  serve({ fetch: app.fetch, hostname: '127.0.0.1', port: Number(port) }, () => console.log('ready'));
} else if (mode === 'cp') {
  // A simulated fleet enrolls from one address; a real one comes from many: no per-address enrollment limit here.
  const s = await startServer({
    host: '127.0.0.1',
    port: Number(port),
    dataDir,
    logger: nodeLogger('warn'),
    env: { FLOTILLA_ENROLL_RATE: '1000000', FLOTILLA_ENROLL_BURST: '1000000', ...process.env },
  });
  // Event-loop stalls, reported once a second when over 50 ms: what shows up as tail latency.
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  setInterval(() => {
    const max = h.max / 1e6;
    if (max > 50) console.error(`${new Date().toISOString()} event loop stalled up to ${max.toFixed(0)} ms in the last second`);
    h.reset();
  }, 1000).unref();
  // BENCH_GC_LOG=1: garbage-collection time every 10 s (collections, total and longest pause).
  if (process.env.BENCH_GC_LOG) {
    let n = 0;
    let total = 0;
    let max = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        n++;
        total += e.duration;
        max = Math.max(max, e.duration);
      }
    }).observe({ entryTypes: ['gc'] });
    setInterval(() => {
      console.error(`gc: ${n} collections, ${total.toFixed(0)} ms in the last 10 s, longest ${max.toFixed(1)} ms`);
      n = total = max = 0;
    }, 10_000).unref();
  }
  // SIGUSR2 starts a CPU profile, the next SIGUSR2 writes it to $BENCH_PROFILE (steady state only).
  let session = null;
  process.on('SIGUSR2', async () => {
    if (!session) {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    } else {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(process.env.BENCH_PROFILE ?? 'bench.cpuprofile', JSON.stringify(profile));
      session.disconnect();
      session = null;
    }
  });
  console.log(`ready ${s.url}`);
  process.on('SIGTERM', () => void s.close().then(() => process.exit(0)));
} else {
  console.error('usage: serve.mjs hello PORT | cp PORT DATA_DIR');
  process.exit(2);
}
