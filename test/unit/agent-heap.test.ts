import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { tuneHeapForSize } from '../../cli/agent-main.js';

describe("the agent's heap tuning (FLOTILLA_AGENT_OPTIMIZE_FOR_SIZE)", () => {
  it('is on by default and can be turned off', () => {
    expect(tuneHeapForSize({})).toBe(true);
    expect(tuneHeapForSize({ FLOTILLA_AGENT_OPTIMIZE_FOR_SIZE: '1' })).toBe(true);
    expect(tuneHeapForSize({ FLOTILLA_AGENT_OPTIMIZE_FOR_SIZE: '0' })).toBe(false);
  });

  it('refuses any other value: `flotilla agent` exits 1 with one line naming the variable, before enrolling', () => {
    // The compiled CLI (built by the global setup); the server address is never contacted.
    const r = spawnSync(process.execPath, ['dist/cli/main.js', 'agent', '--server', 'http://127.0.0.1:9', '--token', 'fle_x', '--data-dir', '/nonexistent/flotilla-agent'], {
      env: { ...process.env, FLOTILLA_AGENT_OPTIMIZE_FOR_SIZE: 'yes' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('FLOTILLA_AGENT_OPTIMIZE_FOR_SIZE must be 0 or 1, not "yes"');
  });
});
