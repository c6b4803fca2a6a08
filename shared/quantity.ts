// Kubernetes resource quantities: CPU in cores or millicores ("0.5", "500m", 2), memory in bytes
// with decimal (k, M, G, T) or binary (Ki, Mi, Gi, Ti) suffixes ("128Mi", "1G", 1048576).

const MEMORY_SUFFIX: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** Millicores of a CPU quantity, or null if it is not one. */
export function parseCpu(q: string | number): number | null {
  if (typeof q === 'number') return Number.isFinite(q) && q >= 0 ? Math.round(q * 1000) : null;
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(q.trim());
  if (!m) return null;
  const n = Number(m[1]);
  return m[2] === 'm' ? Math.round(n) : Math.round(n * 1000);
}

/** Bytes of a memory quantity, or null if it is not one. */
export function parseMemory(q: string | number): number | null {
  if (typeof q === 'number') return Number.isFinite(q) && q >= 0 ? Math.round(q) : null;
  const m = /^(\d+(?:\.\d+)?)(?:e(\d+))?(k|Ki|[MGT]i?)?$/.exec(q.trim());
  if (!m) return null;
  const suffix = m[3] ?? '';
  const mult = MEMORY_SUFFIX[suffix];
  if (mult === undefined) return null;
  return Math.round(Number(m[1]) * 10 ** Number(m[2] ?? 0) * mult);
}

/** Formats millicores the way kubectl shows them ("500m", "2"). */
export function formatCpu(milli: number): string {
  return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
}

/** Formats bytes with the largest binary suffix that divides them, else in Mi with one decimal. */
export function formatMemory(bytes: number): string {
  for (const [s, m] of [
    ['Gi', 1024 ** 3],
    ['Mi', 1024 ** 2],
    ['Ki', 1024],
  ] as const)
    if (bytes >= m && bytes % m === 0) return `${bytes / m}${s}`;
  return bytes >= 1024 ** 2 ? `${(bytes / 1024 ** 2).toFixed(1)}Mi` : String(bytes);
}
