import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// The agent as it ships (the compiled tree the global setup builds), in a fresh Node process: the
// module cache of a test worker is shared with other test files, a child's is its own.
function inChild(script: string): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out.trim().split('\n').at(-1) as string) as Record<string, unknown>;
}

const LOADED = `const { createRequire } = await import('node:module');
const require = createRequire(import.meta.url);
const loaded = (re) => Object.keys(require.cache).some((k) => re.test(k));`;

describe("the agent's Docker client", () => {
  it('does not load the SSH transport or the BuildKit session until they are used; then they are the real modules', () => {
    const r = inChild(`${LOADED}
      const { DockerRuntime } = await import('./dist/agent/runtime.js');
      const { DEFERRED, loadDeferred } = await import('./dist/agent/lean-docker.js');
      const before = { ssh2: loaded(/node_modules\\/ssh2\\//), grpc: loaded(/node_modules\\/@grpc\\//), runtime: typeof DockerRuntime };
      // docker-modem's SSH transport, called as it would be for DOCKER_HOST=ssh://: an HTTP agent, no connection yet.
      const ssh = require(DEFERRED.ssh);
      const agent = ssh({ host: '127.0.0.1', port: 1, username: 'nobody' });
      const session = loadDeferred(DEFERRED.session);
      console.log(JSON.stringify({ before, sshAgent: typeof agent.createConnection, ssh2: loaded(/node_modules\\/ssh2\\//), grpc: loaded(/node_modules\\/@grpc\\//), session: session.name }));`);
    expect(r.before).toEqual({ ssh2: false, grpc: false, runtime: 'function' });
    expect(r.sshAgent).toBe('function');
    expect(r.ssh2).toBe(true);
    expect(r.grpc).toBe(true);
    expect(r.session).toBe('withSession');
  });
});
