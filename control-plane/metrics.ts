/** Process-local counters, exposed at /metrics in the Prometheus text format. */
export class Metrics {
  private readonly counters = new Map<string, number>();

  /** Adds `n` to a counter. */
  inc(name: string, n = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + n);
  }

  /** Prometheus exposition text. */
  render(): string {
    return `${[...this.counters.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `# TYPE ${k} counter\n${k} ${v}`)
      .join('\n')}\n`;
  }
}

const WRITE = /^\s*(insert|update|delete|replace)\b/i;

/** True for statements that write (what the heartbeat economy counts). */
export function isWriteStatement(sql: string): boolean {
  return WRITE.test(sql);
}
