import type Docker from 'dockerode';
import type { LogRequest } from '../shared/protocol.js';

/** Where chunks go: resolves false once nobody reads any more (stop). */
export type ChunkSink = (chunk: { seq: number; data: string; done?: boolean; error?: string }) => Promise<boolean>;

/** Splits Docker's multiplexed log stream (8-byte frame headers, no TTY) into the text of its frames. */
export class LogDemuxer {
  private buf: Buffer = Buffer.alloc(0);

  push(data: Buffer): string {
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    const out: Buffer[] = [];
    while (this.buf.length >= 8) {
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + size) break;
      out.push(this.buf.subarray(8, 8 + size));
      this.buf = this.buf.subarray(8 + size);
    }
    return Buffer.concat(out).toString('utf8');
  }
}

const CHUNK_BYTES = 32 * 1024;

/**
 * Reads a container's log from the engine and sends it in chunks of at most 32 KiB (every 250 ms
 * while following), up to the request's byte limit. While following with nothing new, an empty
 * chunk every `keepAliveMs` asks whether the reader is still there; the stream stops when it is not,
 * when the container's log ends, or at the limit.
 */
export async function streamLog(docker: Docker, containerId: string, req: LogRequest, send: ChunkSink, keepAliveMs = 5000): Promise<void> {
  let seq = 0;
  let sent = 0;
  const opts = {
    stdout: true,
    stderr: true,
    timestamps: false,
    ...(req.tailLines !== undefined ? { tail: req.tailLines } : {}),
    ...(req.sinceSeconds !== undefined ? { since: Math.floor(Date.now() / 1000) - req.sinceSeconds } : {}),
  };
  const demux = new LogDemuxer();
  const container = docker.getContainer(containerId);
  if (!req.follow) {
    const all = demux.push((await container.logs({ ...opts, follow: false })) as unknown as Buffer);
    const text = truncate(all, req.limitBytes);
    for (let i = 0; i < text.length; i += CHUNK_BYTES) if (!(await send({ seq: seq++, data: text.slice(i, i + CHUNK_BYTES) }))) return;
    await send({ seq: seq++, data: '', done: true });
    return;
  }
  const stream = (await container.logs({ ...opts, follow: true })) as unknown as NodeJS.ReadableStream & { destroy(): void };
  let pending = '';
  let open = true;
  let lastSend = Date.now();
  let ended = false;
  const flush = async (done = false) => {
    if (!open) return;
    const data = pending;
    pending = '';
    if (data === '' && !done && Date.now() - lastSend < keepAliveMs) return;
    lastSend = Date.now();
    open = await send({ seq: seq++, data, ...(done ? { done: true } : {}) }).catch(() => false);
    if (!open) stream.destroy();
  };
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => void flush(), 250);
    const finish = () => {
      if (ended) return;
      ended = true;
      clearInterval(timer);
      void flush(true).finally(resolve);
    };
    stream.on('data', (d: Buffer) => {
      const text = demux.push(d);
      const room = req.limitBytes - sent;
      const take = truncate(text, room);
      sent += Buffer.byteLength(take);
      pending += take;
      if (pending.length >= CHUNK_BYTES) void flush();
      if (sent >= req.limitBytes) {
        stream.destroy();
        finish();
      }
    });
    stream.on('end', finish);
    stream.on('close', finish);
    stream.on('error', finish);
  });
}

function truncate(text: string, bytes: number): string {
  if (bytes <= 0) return '';
  const b = Buffer.from(text);
  return b.length <= bytes ? text : b.subarray(0, bytes).toString('utf8');
}
