import type { Context } from 'hono';
import { FlotillaError } from '../shared/errors.js';

/**
 * Token buckets by key (a client address), in this process: `rate` tokens a second up to `burst`.
 * Bounded: beyond `maxKeys` the least recently used keys are forgotten (they start full again).
 * On Workers each isolate keeps its own buckets, so a limit there is per isolate, best effort; put
 * Cloudflare's rate limiting rules in front for a global one (docs/operations.md).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {}

  private bucket(key: string, now: number) {
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-inserted below: most recently used last
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
      b.at = now;
    } else b = { tokens: this.burst, at: now };
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    return b;
  }

  /** Seconds until a token is available (0: one is there now). */
  wait(key: string, now: number): number {
    const b = this.bucket(key, now);
    return b.tokens >= 1 ? 0 : Math.ceil((1 - b.tokens) / this.rate);
  }

  /** Takes a token if there is one; else the seconds to wait. */
  take(key: string, now: number): number {
    const b = this.bucket(key, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / this.rate);
  }
}

/** 429 with Retry-After (set by the error handler from `retryAfter`). */
export class TooManyRequests extends FlotillaError {
  constructor(
    message: string,
    readonly retryAfter: number,
  ) {
    super('too-many-requests', 429, message);
  }
}

/** The client's address: Cloudflare's header on Workers, the socket's peer on Node; 'unknown' otherwise. */
export function clientAddress(c: Context): string {
  const cf = c.req.header('cf-connecting-ip');
  if (cf) return cf;
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress ?? 'unknown';
}
