import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CliError, call, RETRIES, streamText } from '../../cli/api.js';

// The CLI's client against a real HTTP server on loopback that answers as `wrangler dev` does when
// its proxy cannot hand a write to the worker (503, Retry-After: 0), or as a rate limit does (429).
type Answer = { status: number; headers?: Record<string, string>; body?: string };

let server: Server;
let url: string;
let script: Answer[] = [];
let seen: { method: string; path: string; body: string; auth: string }[] = [];

beforeAll(async () => {
  process.env.FLOTILLA_CLI_RETRY_BASE_MS = '10';
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', path: req.url ?? '', body, auth: req.headers.authorization ?? '' });
      const a = script.shift() ?? { status: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' };
      res.writeHead(a.status, a.headers);
      res.end(a.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  delete process.env.FLOTILLA_CLI_RETRY_BASE_MS;
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  script = [];
  seen = [];
});

const restarted: Answer = { status: 503, headers: { 'retry-after': '0', 'content-type': 'text/plain' }, body: 'Your worker restarted mid-request.' };
const problem = (status: number, detail: string, headers: Record<string, string> = {}): Answer => ({
  status,
  headers: { 'content-type': 'application/problem+json', ...headers },
  body: JSON.stringify({ type: 'about:blank', title: 'x', status, detail }),
});

describe('the CLI client and "come back later" answers', () => {
  it('sends a write again, unchanged, after 503 with Retry-After, and returns the answer that followed', async () => {
    script = [restarted, restarted];
    const doc = { kind: 'Deployment', metadata: { name: 'web' } };
    const r = await call<{ ok: boolean }>({ server: url, token: 'flo_t' }, 'PUT', '/v1/namespaces/default/deployments/web', doc);
    expect(r.body).toEqual({ ok: true });
    expect(seen).toHaveLength(3);
    for (const s of seen) expect(s).toEqual({ method: 'PUT', path: '/v1/namespaces/default/deployments/web', body: JSON.stringify(doc), auth: 'Bearer flo_t' });
  });

  it('does not send again a 503 without Retry-After (a lasting state), and says what came back', async () => {
    script = [problem(503, 'Secrets need the master key')];
    await expect(call({ server: url, token: 't' }, 'PUT', '/v1/namespaces/default/secrets/s', {})).rejects.toThrow(new CliError('Secrets need the master key'));
    expect(seen).toHaveLength(1);
  });

  it('gives up after its retries and says how many times it sent the request', async () => {
    script = Array.from({ length: RETRIES + 3 }, () => restarted);
    await expect(call({ server: url, token: 't' }, 'DELETE', '/v1/namespaces/default/deployments/web')).rejects.toThrow(
      `DELETE /v1/namespaces/default/deployments/web failed: 503 Service Unavailable (sent ${RETRIES + 1} times)`,
    );
    expect(seen).toHaveLength(RETRIES + 1);
  });

  it('leaves a long Retry-After to the user with the problem line instead of hanging', async () => {
    script = [problem(429, 'too many failed logins; retry in 60 s', { 'retry-after': '60' })];
    await expect(call({ server: url, token: 't' }, 'GET', '/v1/nodes')).rejects.toThrow('too many failed logins; retry in 60 s');
    expect(seen).toHaveLength(1);
  });

  it('a streamed read (logs) also comes back after a short 429', async () => {
    script = [problem(429, 'node already serves 16 log requests', { 'retry-after': '0' }), { status: 200, headers: { 'content-type': 'text/plain' }, body: 'line 1\nline 2\n' }];
    let out = '';
    await streamText({ server: url, token: 't' }, '/v1/namespaces/default/pods/p/log', (s) => {
      out += s;
    });
    expect(out).toBe('line 1\nline 2\n');
    expect(seen).toHaveLength(2);
  });
});
