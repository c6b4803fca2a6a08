import { bodyLimit as honoBodyLimit } from 'hono/body-limit';
import { createMiddleware } from 'hono/factory';
import { tooLarge } from '../shared/errors.js';

/**
 * Rejects bodies over `maxSize` with 413. A declared Content-Length is checked from the header
 * alone: on @hono/node-server, touching `c.req.raw.body` (as Hono's bodyLimit does) builds a full
 * WHATWG Request per request, which dominated the cost of a heartbeat. Chunked bodies, which have
 * no length up front, go through Hono's streaming check.
 */
export function bodyLimit(maxSize: number) {
  const onError = () => {
    throw tooLarge(`request body exceeds ${maxSize} bytes`);
  };
  const streaming = honoBodyLimit({ maxSize, onError });
  return createMiddleware(async (c, next) => {
    const method = c.req.method;
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return next();
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      if (Number.parseInt(length, 10) > maxSize) onError();
      return next();
    }
    return streaming(c, next);
  });
}
