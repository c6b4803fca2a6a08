import http from 'node:http';

/** Percentile of sorted samples (nearest rank). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** A request the generators send: method, path, headers, body. */
export interface Req {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Socket inactivity timeout (default 10 s); long-polls need more. */
  timeoutMs?: number;
}

/** A keep-alive HTTP client to one loopback server. */
/**
 * Sends a setup request again while it is answered 503 with Retry-After, at most 5 more times (from
 * 200 ms, doubling): `wrangler dev`'s proxy answers so a write it could not hand to the Worker
 * (cloudflare/workers-sdk#14641), and the CLI and the agent send such requests again too.
 */
export async function againWhileUnavailable<T extends { status: number; retryAfter: boolean }>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const res = await send();
    if (res.status !== 503 || !res.retryAfter || attempt >= 5) return res;
    await new Promise((done) => setTimeout(done, 200 * 2 ** attempt));
  }
}

export class Client {
  private readonly agent: http.Agent;
  constructor(
    private readonly port: number,
    maxSockets = 256,
  ) {
    // `timeout` set, so that idle sockets close at the server's `Keep-Alive: timeout` hint minus 1 s
    // as the real agent's fetch (undici) does: Node 20's agent applies the hint only when it is
    // shorter than `timeout`, and without one keeps idle sockets until the server closes them,
    // racing the server's timer (ECONNRESET). Requests set their own timeout while they run.
    this.agent = new http.Agent({ keepAlive: true, maxSockets, timeout: 600_000 });
  }

  /** Sends one request; resolves with status and latency in ms (the body is read and dropped). */
  send(r: Req): Promise<{ status: number; ms: number }> {
    return this.request(r, false);
  }

  /** Sends one request; resolves with status, latency in ms, headers and the body as text. */
  fetch(r: Req): Promise<{ status: number; ms: number; body: string; headers: http.IncomingHttpHeaders }> {
    return this.request(r, true) as Promise<{ status: number; ms: number; body: string; headers: http.IncomingHttpHeaders }>;
  }

  private request(r: Req, keep: boolean): Promise<{ status: number; ms: number; body?: string; headers?: http.IncomingHttpHeaders }> {
    const t0 = performance.now();
    return new Promise((resolve) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.port,
          method: r.method,
          path: r.path,
          headers: { ...(r.headers ?? {}), ...(r.body ? { 'content-length': Buffer.byteLength(r.body) } : {}) },
          agent: this.agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          if (keep) res.on('data', (d: Buffer) => chunks.push(d));
          else res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, ...(keep ? { body: Buffer.concat(chunks).toString(), headers: res.headers } : {}) }));
        },
      );
      // A request this client gave up on says so (destroying it would report ECONNRESET).
      let timedOut = false;
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: 0, ms: performance.now() - t0, ...(keep ? { body: timedOut ? 'timeout' : (e.code ?? e.message), headers: {} } : {}) }));
      req.setTimeout(r.timeoutMs ?? 10_000, () => {
        timedOut = true;
        req.destroy();
      });
      if (r.body) req.write(r.body);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Result of a load step. */
export interface StepResult {
  offered: number;
  achieved: number;
  p50: number;
  p99: number;
  errors: number;
  dropped: number;
}

/** Closed loop: `concurrency` requests always in flight for `seconds`; the highest rate the server gives. */
export async function closedLoop(c: Client, next: () => Req | Promise<Req>, concurrency: number, seconds: number): Promise<StepResult> {
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const r = await c.send(await next());
      if (r.status >= 200 && r.status < 300) lat.push(r.ms);
      else errors++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { offered: NaN, achieved: lat.length / elapsed, p50: percentile(lat, 50), p99: percentile(lat, 99), errors, dropped: 0 };
}

/**
 * Open loop: sends at a fixed `rate` for `seconds` whatever the latency (no coordinated omission),
 * with at most `maxOutstanding` in flight; what cannot be sent counts as dropped.
 */
export async function openLoop(c: Client, next: () => Req | Promise<Req>, rate: number, seconds: number, maxOutstanding = 2000): Promise<StepResult> {
  const lat: number[] = [];
  let errors = 0;
  const statuses = new Map<number, number>();
  let dropped = 0;
  let sent = 0;
  let outstanding = 0;
  const inflight: Promise<void>[] = [];
  const t0 = performance.now();
  const total = Math.round(rate * seconds);
  while (sent + dropped < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    while (sent + dropped < due) {
      if (outstanding >= maxOutstanding) {
        dropped++;
        continue;
      }
      outstanding++;
      sent++;
      const req = await next();
      inflight.push(
        c.send(req).then((r) => {
          outstanding--;
          if (r.status >= 200 && r.status < 300) lat.push(r.ms);
          else {
            errors++;
            statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          }
        }),
      );
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  if (errors > 0) console.log(`    errors by status (0: connection failed): ${[...statuses].map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  await Promise.all(inflight);
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { offered: rate, achieved: lat.length / elapsed, p50: percentile(lat, 50), p99: percentile(lat, 99), errors, dropped };
}
