import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../control-plane/config.js';
import type { ServiceState } from '../shared/protocol.js';

/** Options of a node's service proxy. */
export interface ProxyOptions {
  logger: Logger;
  /** How long an endpoint whose connect failed gets no new connections (then it is tried again). */
  ejectMs: number;
  /** Connect timeout towards an endpoint (a silent endpoint counts as failed). */
  connectTimeoutMs: number;
  /**
   * The first two octets service addresses get on this node (default 127.77, as stored). Several
   * agents sharing one host (tests) each use their own, since each proxies on its own addresses.
   */
  ipPrefix?: string;
}

interface Endpoint {
  ip: string;
  port: number;
}

/** One service port: where new connections go, and what the proxy knows of each endpoint. */
class Backend {
  endpoints: Endpoint[] = [];
  balance: ServiceState['balance'] = 'round-robin';
  private next = 0;
  readonly active = new Map<string, number>();
  readonly ejectedUntil = new Map<string, number>();

  constructor(readonly label: string) {}

  /** Endpoints to try for a new connection, best first: healthy ones in balancing order, then ejected ones as a last resort. */
  order(now: number): Endpoint[] {
    const eps = this.endpoints;
    if (eps.length === 0) return [];
    const healthy = eps.filter((e) => (this.ejectedUntil.get(key(e)) ?? 0) <= now);
    const ejected = eps.filter((e) => (this.ejectedUntil.get(key(e)) ?? 0) > now);
    let ordered: Endpoint[];
    if (this.balance === 'least-connections') {
      const start = this.next++;
      // Ties broken by rotation, so equal loads still spread.
      ordered = healthy
        .map((e, i) => ({ e, i: (i - start + healthy.length * 1000) % healthy.length }))
        .sort((a, b) => (this.active.get(key(a.e)) ?? 0) - (this.active.get(key(b.e)) ?? 0) || a.i - b.i)
        .map((x) => x.e);
    } else {
      const start = healthy.length > 0 ? this.next++ % healthy.length : 0;
      ordered = [...healthy.slice(start), ...healthy.slice(0, start)];
    }
    return [...ordered, ...ejected.sort((a, b) => (this.ejectedUntil.get(key(a)) ?? 0) - (this.ejectedUntil.get(key(b)) ?? 0))];
  }
}

const key = (e: Endpoint) => `${e.ip}:${e.port}`;

/**
 * The data plane of a node: an L4 (TCP) proxy for the services of the namespaces it runs pods of.
 * For every service port it listens on the service's address (127.77.x.y, for host processes and
 * hostNetwork pods), on the gateway of the namespace's network on this node (for the namespace's
 * pods, which reach it by name through their hosts file), and for NodePort services on the node's
 * address. Each new connection goes to a ready endpoint (round robin or least connections); an
 * endpoint whose connect fails is ejected for `ejectMs` and the connection is retried on the next
 * one, so a client sees a failure only when no endpoint accepts.
 */
export class ServiceProxy {
  private readonly listeners = new Map<string, { server: Server; backend: Backend; failed?: string }>();
  private readonly backends = new Map<string, Backend>();
  private readonly sockets = new Set<Socket>();

  constructor(private readonly opts: ProxyOptions) {}

  /** The address a stored service address maps to on this node. */
  localIp(clusterIp: string): string {
    return this.opts.ipPrefix ? clusterIp.replace(/^127\.77\./, `${this.opts.ipPrefix}.`) : clusterIp;
  }

  /**
   * Follows the services this node should proxy. `gateways`: namespace -> gateway address of its
   * network here; `nodeIp`: where NodePorts listen. Listeners are opened and closed to match;
   * endpoints change in place (open connections are left alone).
   */
  async update(services: readonly ServiceState[], gateways: ReadonlyMap<string, string>, nodeIp: string): Promise<void> {
    const want = new Map<string, Backend>();
    for (const s of services) {
      for (const p of s.ports) {
        const id = `${s.namespace}/${s.name}:${p.name ?? p.port}`;
        let b = this.backends.get(id);
        if (!b) {
          b = new Backend(id);
          this.backends.set(id, b);
        }
        b.endpoints = p.endpoints;
        b.balance = s.balance;
        const keep = new Set(p.endpoints.map(key));
        for (const k of [...b.ejectedUntil.keys()]) if (!keep.has(k)) b.ejectedUntil.delete(k);
        want.set(`${this.localIp(s.clusterIP)}:${p.port}`, b);
        const gw = gateways.get(s.namespace);
        if (gw) want.set(`${gw}:${p.port}`, b);
        if (s.type === 'NodePort' && p.nodePort) want.set(`${nodeIp}:${p.nodePort}`, b);
      }
    }
    for (const b of [...this.backends.keys()]) if (![...want.values()].some((w) => w.label === b)) this.backends.delete(b);
    for (const [addr, l] of [...this.listeners]) {
      const w = want.get(addr);
      if (w && !l.failed) l.backend = w;
      else {
        this.listeners.delete(addr);
        l.server.close();
      }
    }
    const opening: Promise<void>[] = [];
    for (const [addr, backend] of want) if (!this.listeners.has(addr)) opening.push(this.listen(addr, backend));
    await Promise.all(opening);
  }

  /** Listening addresses and the service port each serves (for status and tests). */
  listening(): { address: string; service: string; endpoints: number }[] {
    return [...this.listeners.entries()].filter(([, l]) => !l.failed).map(([address, l]) => ({ address, service: l.backend.label, endpoints: l.backend.endpoints.length }));
  }

  private listen(addr: string, backend: Backend): Promise<void> {
    const i = addr.lastIndexOf(':');
    const host = addr.slice(0, i);
    const port = Number(addr.slice(i + 1));
    // Half-open: a client that shuts down its sending side (nc, HTTP/1.0 clients) still gets the answer.
    const entry: { server: Server; backend: Backend; failed?: string } = { server: createServer({ allowHalfOpen: true }), backend };
    entry.server.on('connection', (client) => this.handle(client, entry.backend));
    this.listeners.set(addr, entry);
    return new Promise((resolve) => {
      entry.server.once('error', (e) => {
        // Someone else holds the address (another agent on this host, a host process): reported, retried on the next update.
        entry.failed = (e as Error).message;
        this.opts.logger.warn({ address: addr, service: backend.label, err: entry.failed }, 'service proxy cannot listen');
        resolve();
      });
      entry.server.listen({ host, port }, () => resolve());
    });
  }

  private handle(client: Socket, backend: Backend): void {
    this.sockets.add(client);
    client.setNoDelay(true);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => undefined);
    client.pause();
    const candidates = backend.order(Date.now());
    const attempt = (i: number) => {
      const ep = candidates[i];
      if (!ep || client.destroyed) {
        client.destroy();
        return;
      }
      const k = key(ep);
      const upstream = connect({ host: ep.ip, port: ep.port, allowHalfOpen: true, noDelay: true });
      // Counted from the pick, so connections being opened count too (least connections).
      backend.active.set(k, (backend.active.get(k) ?? 0) + 1);
      const release = () => backend.active.set(k, Math.max(0, (backend.active.get(k) ?? 1) - 1));
      let connected = false;
      const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), this.opts.connectTimeoutMs);
      upstream.once('connect', () => {
        connected = true;
        clearTimeout(timer);
        backend.ejectedUntil.delete(k);
        this.sockets.add(upstream);
        upstream.pipe(client);
        client.pipe(upstream);
        client.resume();
      });
      upstream.on('error', () => {
        clearTimeout(timer);
        if (!connected) {
          release();
          backend.ejectedUntil.set(k, Date.now() + this.opts.ejectMs);
          this.opts.logger.debug({ service: backend.label, endpoint: k }, 'endpoint refused a connection; ejected');
          upstream.destroy();
          attempt(i + 1);
        } else client.destroy();
      });
      upstream.on('close', () => {
        if (!connected) return;
        this.sockets.delete(upstream);
        release();
        client.destroy();
      });
      client.once('close', () => {
        if (connected) upstream.destroy();
      });
    };
    attempt(0);
  }

  /** Closes every listener and open connection. */
  async close(): Promise<void> {
    for (const [, l] of this.listeners) l.server.close();
    this.listeners.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}
