/** What a pod does when its lease lapses: `stop` frees the slot for elsewhere, `keep` stays up offline. */
export type DisconnectPolicy = 'stop' | 'keep';

/** The claims of a lease JWS: the signed right of one node to run one pod slot at one epoch. */
export interface LeaseClaims {
  iss: string;
  aud: string; // the node id
  sub: string; // the pod id
  node: string;
  pod: string;
  ns: string;
  workload: string;
  rev: number;
  digest: string;
  epoch: number;
  policy: DisconnectPolicy;
  iat: number;
  exp: number;
}

/** What the agent expects of a lease before it runs anything under it. */
export interface LeaseExpectation {
  issuer: string;
  nodeId: string;
  podId: string;
  specDigest: string;
  /** Highest epoch already seen for this pod; a lower one is a stale (fenced) lease. */
  minEpoch: number;
  nowSeconds: number;
}

/** Result of checking a lease: ok, or why not. */
export type LeaseCheck = { ok: true } | { ok: false; reason: string };

/** Checks verified lease claims against what the agent expects. Pure: signature checks happen before. */
export function checkLeaseClaims(c: Partial<LeaseClaims>, e: LeaseExpectation): LeaseCheck {
  if (c.iss !== e.issuer) return { ok: false, reason: `issuer ${String(c.iss)} is not ${e.issuer}` };
  if (c.node !== e.nodeId || c.aud !== e.nodeId) return { ok: false, reason: 'lease is for another node' };
  if (c.pod !== e.podId || c.sub !== e.podId) return { ok: false, reason: 'lease is for another pod' };
  if (c.digest !== e.specDigest) return { ok: false, reason: 'spec digest does not match the lease' };
  if (typeof c.epoch !== 'number' || !Number.isInteger(c.epoch)) return { ok: false, reason: 'lease has no epoch' };
  if (c.epoch < e.minEpoch) return { ok: false, reason: `stale lease: epoch ${c.epoch} < ${e.minEpoch}` };
  if (typeof c.exp !== 'number' || c.exp <= e.nowSeconds) return { ok: false, reason: 'lease expired' };
  if (c.policy !== 'stop' && c.policy !== 'keep') return { ok: false, reason: 'lease has no disconnect policy' };
  return { ok: true };
}
