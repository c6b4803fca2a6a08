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

/** A thin client of the HTTP API; every failure becomes one readable CliError line. */
export async function call<T>(t: Target, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: T; headers: Headers }> {
  let res: Response;
  try {
    res = await fetch(new URL(path, t.server), {
      method,
      headers: { authorization: `Bearer ${t.token}`, ...(body !== undefined ? { 'content-type': contentType } : {}) },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code;
    throw new CliError(`cannot reach the control plane at ${t.server}${cause ? ` (${cause})` : ''}: is it running? (--server or FLOTILLA_SERVER)`);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    /* keep text */
  }
  if (!res.ok) {
    if (isProblem(parsed)) throw new CliError(problemLine(parsed));
    throw new CliError(`${method} ${path} failed: ${res.status} ${res.statusText}`);
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

/**
 * Streams a text response to `out` as it arrives (`logs`, `logs -f`); a problem document becomes
 * one CliError line. `timeoutMs` bounds the whole request (none for following).
 */
export async function streamText(t: Target, path: string, out: (s: string) => void, timeoutMs?: number): Promise<void> {
  let res: Response;
  try {
    // identity: a compressed stream arrives in blocks, not line by line (`logs -f`).
    res = await fetch(new URL(path, t.server), {
      headers: { authorization: `Bearer ${t.token}`, 'accept-encoding': 'identity' },
      ...(timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code;
    throw new CliError(`cannot reach the control plane at ${t.server}${cause ? ` (${cause})` : ''}: is it running? (--server or FLOTILLA_SERVER)`);
  }
  if (!res.ok) {
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* keep text */
    }
    if (isProblem(parsed)) throw new CliError(problemLine(parsed));
    throw new CliError(`GET ${path} failed: ${res.status} ${res.statusText}`);
  }
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) out(decoder.decode(chunk, { stream: true }));
  out(decoder.decode());
}
