import { beforeEach } from 'vitest';
import { liveProcs } from './proc.js';

// When a test fails, the tail of every process it still runs (control planes, agents) is printed:
// a CI failure must say what the components saw, not only what the assertion saw.
beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    for (const { label, out } of liveProcs.values()) {
      const tail = out().trimEnd().split('\n').slice(-40).join('\n');
      console.error(`--- output of \`${label}\` (last 40 lines) ---\n${tail || '(none)'}`);
    }
  });
});
