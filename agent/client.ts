import { type CryptoKey, SignJWT } from 'jose';
import { isProblem, problemLine } from '../shared/errors.js';
import type { DesiredState, EnrollRequest, EnrollResponse, HeartbeatRequest, HeartbeatResponse, MetricsReport } from '../shared/protocol.js';

/** An HTTP failure from the control plane, with the problem document's one-line reason. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiFailure';
  }
}

async function failure(res: Response): Promise<ApiFailure> {
  const text = await res.text();
  let msg = `${res.status} ${res.statusText}`;
  try {
    const p: unknown = JSON.parse(text);
    if (isProblem(p)) msg = problemLine(p);
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiFailure(res.status, msg);
}

/** Enrolls with a token (no other credentials exist yet). */
export async function enroll(server: string, req: EnrollRequest, timeoutMs = 15_000): Promise<EnrollResponse> {
  const res = await fetch(new URL('/v1/agent/enroll', server), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(req), signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as EnrollResponse;
}

/** The agent's authenticated client: every request carries a short-lived JWT signed by the node key. */
export class AgentClient {
  private jwt: { token: string; at: number } | null = null;

  constructor(
    private readonly server: string,
    private readonly nodeId: string,
    private readonly audience: string,
    private readonly key: CryptoKey,
  ) {}

  private async bearer(): Promise<string> {
    const now = Date.now();
    if (this.jwt && now - this.jwt.at < 30_000) return this.jwt.token;
    const iat = Math.floor(now / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
      .setSubject(this.nodeId)
      .setIssuer(this.nodeId)
      .setAudience(this.audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 60)
      .sign(this.key);
    this.jwt = { token, at: now };
    return token;
  }

  /** Fetches desired state; null when unchanged since `etag` (304). Waits server-side when long-polling. */
  async desired(etag: string | null, timeoutMs: number, signal?: AbortSignal): Promise<{ state: DesiredState; etag: string } | null> {
    const headers: Record<string, string> = { authorization: `Bearer ${await this.bearer()}` };
    if (etag) headers['if-none-match'] = etag;
    const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
    const res = await fetch(new URL('/v1/agent/desired', this.server), { headers, signal: AbortSignal.any(signals) });
    if (res.status === 304) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok) throw await failure(res);
    return { state: (await res.json()) as DesiredState, etag: res.headers.get('etag') ?? '' };
  }

  /** Sends a heartbeat (with any changed statuses and events). */
  async heartbeat(body: HeartbeatRequest, timeoutMs = 15_000): Promise<HeartbeatResponse> {
    const res = await fetch(new URL('/v1/agent/heartbeat', this.server), {
      method: 'POST',
      headers: { authorization: `Bearer ${await this.bearer()}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw await failure(res);
    return (await res.json()) as HeartbeatResponse;
  }

  /** Uploads one chunk of a container's log for an operator's request; false when nobody reads it any more. */
  async logChunk(id: string, chunk: { seq: number; data: string; done?: boolean; error?: string }, timeoutMs = 15_000): Promise<boolean> {
    const res = await fetch(new URL(`/v1/agent/logs/${encodeURIComponent(id)}`, this.server), {
      method: 'POST',
      headers: { authorization: `Bearer ${await this.bearer()}`, 'content-type': 'application/json' },
      body: JSON.stringify(chunk),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw await failure(res);
    return !((await res.json()) as { closed: boolean }).closed;
  }

  /** Reports the Docker volumes of released claims that this node removed. */
  async volumesRemoved(volumes: string[], timeoutMs = 15_000): Promise<void> {
    const res = await fetch(new URL('/v1/agent/volumes/removed', this.server), {
      method: 'POST',
      headers: { authorization: `Bearer ${await this.bearer()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ volumes }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw await failure(res);
  }

  /** Reports the node's and its pods' resource use. */
  async metrics(report: MetricsReport, timeoutMs = 15_000): Promise<void> {
    const res = await fetch(new URL('/v1/agent/metrics', this.server), {
      method: 'POST',
      headers: { authorization: `Bearer ${await this.bearer()}`, 'content-type': 'application/json' },
      body: JSON.stringify(report),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw await failure(res);
  }

  /** The control plane's lease-verification keys. */
  /** The encrypted Secrets and ConfigMaps of one of this node's pods (a JWE only this node can open). */
  async podConfig(podId: string, timeoutMs = 15_000): Promise<{ jwe: string; versions: Record<string, number>; missing: { kind: string; name: string }[] }> {
    const res = await fetch(new URL(`/v1/agent/pods/${encodeURIComponent(podId)}/config`, this.server), {
      headers: { authorization: `Bearer ${await this.bearer()}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw await failure(res);
    return (await res.json()) as { jwe: string; versions: Record<string, number>; missing: { kind: string; name: string }[] };
  }

  async jwks(timeoutMs = 15_000): Promise<{ keys: unknown[] }> {
    const res = await fetch(new URL('/.well-known/jwks.json', this.server), { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw await failure(res);
    return (await res.json()) as { keys: unknown[] };
  }
}
