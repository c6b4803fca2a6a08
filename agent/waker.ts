/** A sleep that can be cut short: loops wait on it, other loops wake them. */
export class Waker {
  private wakeFn: (() => void) | null = null;
  private pending = false;

  /** Sleeps up to `ms`, or until `wake()` (also a wake that came while not sleeping). */
  sleep(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.wakeFn = null;
        resolve();
      }
      this.wakeFn = done;
    });
  }

  /** Wakes the sleeper now, or makes its next sleep return at once. */
  wake(): void {
    if (this.wakeFn) this.wakeFn();
    else this.pending = true;
  }
}

/** Capped exponential back-off with full jitter: attempt 0 -> up to base, doubling to cap. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
  return Math.floor(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * A retry delay that leaves room for more attempts before a deadline `deadlineInMs` from now (the
 * first held lease's stop point; Infinity: none): at most half the time left, at least `floorMs`.
 * Past the deadline the delay stands.
 */
export function retryBefore(delayMs: number, deadlineInMs: number, floorMs: number): number {
  if (!(deadlineInMs > 0)) return delayMs;
  return Math.min(delayMs, Math.max(floorMs, Math.floor(deadlineInMs / 2)));
}
