import { describe, expect, it } from 'vitest';
import { backoffMs, retryBefore } from '../../agent/waker.js';

// A deterministic stand-in for Math.random: the jitter's extremes and points between.
function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

describe('agent retries', () => {
  it('backs off exponentially with jitter up to the cap', () => {
    expect(backoffMs(0, 1000, 30_000, () => 0)).toBe(500);
    expect(backoffMs(0, 1000, 30_000, () => 0.999)).toBe(999);
    expect(backoffMs(3, 1000, 30_000, () => 0)).toBe(4000);
    expect(backoffMs(10, 1000, 30_000, () => 0.999)).toBeLessThan(30_000);
    expect(backoffMs(10, 1000, 30_000, () => 0)).toBe(15_000);
  });

  it('never sleeps past half the time left before a lease would be lost, nor less than the floor', () => {
    expect(retryBefore(16_000, 10_000, 1000)).toBe(5000);
    expect(retryBefore(2000, 10_000, 1000)).toBe(2000);
    expect(retryBefore(16_000, 1500, 1000)).toBe(1000);
    expect(retryBefore(16_000, Number.POSITIVE_INFINITY, 1000)).toBe(16_000); // no lease held
    expect(retryBefore(16_000, -5, 1000)).toBe(16_000); // already past: nothing to save
  });

  it('after an outage that ends at least two floors before the deadline, the next attempt comes before it', () => {
    const base = 1000;
    const cap = 30_000;
    const firstAfter = (deadline: number, outageEnd: number, random: () => number, bounded: boolean) => {
      let t = 0;
      for (let failures = 0; t < outageEnd; failures++) {
        const b = backoffMs(failures, base, cap, random);
        t += bounded ? retryBefore(b, deadline - t, base) : b;
      }
      return t;
    };
    let unboundedLate = 0;
    for (let seed = 1; seed <= 200; seed++)
      for (const deadline of [6000, 12_000, 25_000, 60_000])
        for (let outageEnd = 500; outageEnd <= deadline - 2 * base; outageEnd += 500) {
          expect(firstAfter(deadline, outageEnd, seeded(seed), true)).toBeLessThan(deadline);
          if (firstAfter(deadline, outageEnd, seeded(seed), false) >= deadline) unboundedLate++;
        }
    // Plain back-off sleeps through many of these deadlines: what the bound is for.
    expect(unboundedLate).toBeGreaterThan(100);
  });
});
