import { describe, expect, it } from 'vitest';
import { NodeDirectory } from '../../control-plane/auth/node-directory.js';

describe('NodeDirectory: verified agent tokens', () => {
  it('keeps every unexpired token of a fleet that replaces its tokens every 30 s, within its bound, for hours', () => {
    // 60 agents, each signing a 60 s token every 30 s, against a bound of 500 tokens: the fleet
    // never has more than 120 live tokens, but issues 7,200 over the hour.
    const max = 500;
    const dir = new NodeDirectory(1000, max);
    const agents = 60;
    const current = new Map<number, string>();
    let largest = 0;
    for (let t = 0; t <= 3_600_000; t += 1000) {
      for (let a = 0; a < agents; a++) {
        // Agent a renews at its own phase, every 30 s.
        if ((t / 1000 + a) % 30 !== 0 && current.has(a)) continue;
        const iat = Math.floor(t / 1000);
        const token = `agent-${a}-${iat}`;
        dir.rememberToken(token, `node-${a}`, iat + 60, t);
        current.set(a, token);
      }
      largest = Math.max(largest, dir.rememberedTokens);
      // Every agent's token in use is still known as verified: none is checked again before it expires.
      for (const [a, token] of current) expect(dir.verifiedSubject(token, t)).toBe(`node-${a}`);
    }
    expect(largest).toBeLessThanOrEqual(max);
  });

  it('forgets a token at its expiry, and the map sheds expired tokens as it grows', () => {
    const dir = new NodeDirectory(1000, 100_000);
    dir.rememberToken('old', 'n1', 10, 0);
    expect(dir.verifiedSubject('old', 9_999)).toBe('n1');
    expect(dir.verifiedSubject('old', 10_000)).toBeUndefined();
    for (let i = 0; i < 5000; i++) dir.rememberToken(`t${i}`, 'n2', 20 + Math.floor(i / 1000), 19_000 + i);
    // Each sweep drops what has expired by then ('old', then each second's thousand in turn): the
    // map holds about one second's tokens, not the 5,001 remembered.
    expect(dir.rememberedTokens).toBeLessThanOrEqual(1024);
    expect(dir.verifiedSubject('t4999', 23_999)).toBe('n2');
  });
});
