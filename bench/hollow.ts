import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { againWhileUnavailable } from './load.js';

/** A simulated agent: its own Ed25519 key, enrolled over the real protocol, signing its own JWTs. */
export interface Hollow {
  nodeId: string;
  audience: string;
  jwt(): Promise<string>;
}

export async function enrollHollow(port: number, token: string, name: string): Promise<Hollow> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const facts = { hostname: name, os: 'linux', arch: 'x64', cpus: 4, memoryBytes: 4 * 2 ** 30, dockerVersion: 'hollow', agentVersion: 'hollow' };
  const request = JSON.stringify({ token, name, publicKey: await exportJWK(publicKey), facts });
  const res = await againWhileUnavailable(async () => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/agent/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: request });
    return { status: r.status, retryAfter: r.headers.has('retry-after'), text: await r.text() };
  });
  if (res.status !== 201) throw new Error(`enroll ${name}: ${res.status} ${res.text}`);
  const body = JSON.parse(res.text) as { nodeId: string; audience: string };
  // Like a real agent, a JWT is reused for 30 s; the phase is random, as in a fleet whose agents
  // started at different times (otherwise every token of the fleet expires in the same second).
  const phase = Math.random() * 30_000;
  let cached: { token: string; at: number } | null = null;
  return {
    ...body,
    async jwt() {
      const now = Date.now();
      if (cached && now - cached.at < 30_000) return cached.token;
      const iat = Math.floor(now / 1000);
      const t = await new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA' })
        .setSubject(body.nodeId)
        .setAudience(body.audience)
        .setIssuedAt(iat)
        .setExpirationTime(iat + 60)
        .sign(privateKey);
      cached = { token: t, at: cached ? now : now - phase };
      return t;
    },
  };
}

/** A counter of the control plane's /metrics; NaN when a saturated server does not answer (5 tries). */
export async function metric(port: number, admin: string, name: string): Promise<number> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${admin}` }, signal: AbortSignal.timeout(30_000) });
      const m = new RegExp(`^${name} (\\d+)`, 'm').exec(await res.text());
      return m ? Number(m[1]) : 0;
    } catch {
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  return Number.NaN;
}

/** A desired pod as a hollow agent gives it back: what a fake runtime reports once it started it, Running and Ready. */
export function runningReport(p: { id: string; epoch: number; spec: { containers: Array<{ name: string; image: string }> } }) {
  const startedAt = new Date().toISOString();
  return {
    podId: p.id,
    epoch: p.epoch,
    phase: 'Running',
    ready: true,
    containers: p.spec.containers.map((c) => ({
      name: c.name,
      containerId: `hollow-${p.id}-${c.name}`,
      image: c.image,
      state: 'running',
      restartCount: 0,
      startedAt,
      hostPorts: [],
      ready: true,
      started: true,
    })),
  };
}
