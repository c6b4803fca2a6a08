import { connect, createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ServiceProxy } from '../../agent/proxy.js';
import { silentLogger } from '../../control-plane/config.js';
import type { ServiceState } from '../../shared/protocol.js';

// The service proxy with real sockets on 127.0.0.1: backends answer their own name.
const servers: Server[] = [];
let proxy: ServiceProxy | undefined;

afterEach(async () => {
  await proxy?.close();
  for (const s of servers.splice(0)) s.close();
});

async function backend(name: string, holdMs = 0): Promise<number> {
  const s = createServer((c) => {
    setTimeout(() => c.end(name), holdMs);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as { port: number }).port;
}

function ask(port: number, host = '127.77.200.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const c = connect({ host, port });
    c.on('data', (d) => {
      out += d;
    });
    c.on('end', () => resolve(out));
    c.on('error', reject);
  });
}

function svc(ports: number[], balance: ServiceState['balance'] = 'round-robin'): ServiceState {
  return { namespace: 'ns', name: 'web', clusterIP: '127.77.200.1', type: 'ClusterIP', balance, ports: [{ port: 18181, endpoints: ports.map((port) => ({ ip: '127.0.0.1', port })) }] };
}

describe('service proxy', () => {
  it('spreads new connections round robin over the endpoints', async () => {
    const a = await backend('a');
    const b = await backend('b');
    proxy = new ServiceProxy({ logger: silentLogger, ejectMs: 1000, connectTimeoutMs: 500 });
    await proxy.update([svc([a, b])], new Map(), '127.0.0.1');
    const got: string[] = [];
    for (let i = 0; i < 10; i++) got.push(await ask(18181));
    expect(got.filter((x) => x === 'a')).toHaveLength(5);
    expect(got.filter((x) => x === 'b')).toHaveLength(5);
  });

  it('ejects an endpoint that refuses connections and retries the next, so no client fails', async () => {
    const a = await backend('a');
    const dead = await backend('dead');
    servers.pop()?.close();
    proxy = new ServiceProxy({ logger: silentLogger, ejectMs: 60_000, connectTimeoutMs: 500 });
    await proxy.update([svc([dead, a])], new Map(), '127.0.0.1');
    for (let i = 0; i < 10; i++) expect(await ask(18181)).toBe('a');
  });

  it('sends new connections to the endpoint with the fewest open ones (least connections)', async () => {
    const slow = await backend('slow', 400);
    const fast = await backend('fast');
    proxy = new ServiceProxy({ logger: silentLogger, ejectMs: 1000, connectTimeoutMs: 500 });
    await proxy.update([svc([slow, fast], 'least-connections')], new Map(), '127.0.0.1');
    const held = [ask(18181), ask(18181)]; // one to each
    await new Promise((r) => setTimeout(r, 100));
    // The slow endpoint still holds a connection: the next ones all go to the fast one.
    // (A pause after each: a connection counts until both of its sides are closed.)
    for (let i = 0; i < 4; i++) {
      expect(await ask(18181)).toBe('fast');
      await new Promise((r) => setTimeout(r, 30));
    }
    expect((await Promise.all(held)).sort()).toEqual(['fast', 'slow']);
  });

  it('closes a connection at once when the service has no endpoints, and stops listening when the service goes', async () => {
    proxy = new ServiceProxy({ logger: silentLogger, ejectMs: 1000, connectTimeoutMs: 500 });
    await proxy.update([svc([])], new Map(), '127.0.0.1');
    expect(await ask(18181).catch((e) => String(e))).toMatch(/^$|ECONNRESET/);
    await proxy.update([], new Map(), '127.0.0.1');
    expect(proxy.listening()).toEqual([]);
    await expect(ask(18181)).rejects.toThrow(/ECONNREFUSED/);
  });
});
