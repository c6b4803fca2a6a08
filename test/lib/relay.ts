import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP relay the test owns: an agent talks to the control plane through it, and `cut()`
 * severs the link (open connections destroyed, new ones dropped) while both ends keep running.
 */
export class Relay {
  private readonly sockets = new Set<Socket>();
  private cutOff = false;
  private readonly server: Server;
  port = 0;

  private constructor(targetPort: number) {
    this.server = createServer((client) => {
      if (this.cutOff) {
        client.destroy();
        return;
      }
      const upstream = connect({ host: '127.0.0.1', port: targetPort });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  static async start(targetPort: number): Promise<Relay> {
    const r = new Relay(targetPort);
    await new Promise<void>((res) => r.server.listen(0, '127.0.0.1', res));
    r.port = (r.server.address() as { port: number }).port;
    return r;
  }

  /** Severs the link: every open connection is destroyed and new ones are dropped. */
  cut(): void {
    this.cutOff = true;
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
