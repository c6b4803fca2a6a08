import { isProblem, problemLine } from '../shared/errors.js';

/** An error the CLI prints as one line and exits non-zero with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Where and as whom operator commands talk to the control plane. */
export interface Target {
  server: string;
  token: string;
}

/**
 * A request answered "come back later" (429, or 503 with Retry-After) is sent again up to RETRIES
 * more times while the waits add up to at most RETRY_BUDGET_MS; a longer wait is left to the user
 * (the error line says when). The waits double from a base (200 ms; FLOTILLA_CLI_RETRY_BASE_MS)
 * even when Retry-After is 0: `wrangler dev` answers a write its proxy could not deliver to the
 * worker with 503 and Retry-After: 0 (it retries only GET and HEAD itself).
 */
export const RETRIES = 5;
const RETRY_BUDGET_MS = 15_000;

/**
 * The wait a response asks for before the same request is sent again, or undefined when it is not
 * to be retried: 429 or 503 carrying Retry-After (seconds or an HTTP date), as Kubernetes' client
 * does. A 503 without it (Secrets without the master key) is a lasting state, not a retry.
 */
function retryWaitMs(res: Response, attempt: number, now = Date.now()): number | undefined {
  if (res.status !== 429 && res.status !== 503) return undefined;
  const header = res.headers.get('retry-after');
  if (header === null) return undefined;
  const seconds = /^\d+$/.test(header.trim()) ? Number(header.trim()) * 1000 : Date.parse(header) - now;
  const asked = Number.isFinite(seconds) ? Math.max(0, seconds) : 0;
  const base = Number(process.env.FLOTILLA_CLI_RETRY_BASE_MS) || 200;
  return Math.max(asked, base * 2 ** attempt);
}

/** Sends one request, again while the answer says to come back later (within RETRIES and RETRY_BUDGET_MS). */
async function send(t: Target, path: string, init: RequestInit, timeoutMs?: number): Promise<{ res: Response; tries: number }> {
  let waited = 0;
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    try {
      res = await fetch(new URL(path, t.server), { ...init, ...(timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {}) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      throw new CliError(`cannot reach the control plane at ${t.server}${cause ? ` (${cause})` : ''}: is it running? (--server or FLOTILLA_SERVER)`);
    }
    const wait = attempt < RETRIES ? retryWaitMs(res, attempt) : undefined;
    if (wait === undefined || waited + wait > RETRY_BUDGET_MS) return { res, tries: attempt + 1 };
    await res.body?.cancel();
    await new Promise((r) => setTimeout(r, wait));
    waited += wait;
  }
}

/** A thin client of the HTTP API; every failure becomes one readable CliError line. */
export async function call<T>(t: Target, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: T; headers: Headers }> {
  const { res, tries } = await send(
    t,
    path,
    {
      method,
      headers: { authorization: `Bearer ${t.token}`, ...(body !== undefined ? { 'content-type': contentType } : {}) },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    },
    60_000,
  );
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    /* keep text */
  }
  if (!res.ok) {
    if (isProblem(parsed)) throw new CliError(problemLine(parsed));
    throw new CliError(`${method} ${path} failed: ${res.status} ${res.statusText}${tries > 1 ? ` (sent ${tries} times)` : ''}`);
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

/**
 * Streams a text response to `out` as it arrives (`logs`, `logs -f`); a problem document becomes
 * one CliError line. `timeoutMs` bounds the whole request (none for following).
 */
export async function streamText(t: Target, path: string, out: (s: string) => void, timeoutMs?: number): Promise<void> {
  // identity: a compressed stream arrives in blocks, not line by line (`logs -f`).
  const { res, tries } = await send(t, path, { headers: { authorization: `Bearer ${t.token}`, 'accept-encoding': 'identity' } }, timeoutMs);
  if (!res.ok) {
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* keep text */
    }
    if (isProblem(parsed)) throw new CliError(problemLine(parsed));
    throw new CliError(`GET ${path} failed: ${res.status} ${res.statusText}${tries > 1 ? ` (sent ${tries} times)` : ''}`);
  }
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) out(decoder.decode(chunk, { stream: true }));
  out(decoder.decode());
}
