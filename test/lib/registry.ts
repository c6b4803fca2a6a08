import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait.js';

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A real CNCF distribution registry (Debian's docker-registry) on 127.0.0.1, which Docker trusts as insecure. */
export async function startRegistry(): Promise<{ host: string; stop(): void }> {
  try {
    execFileSync('which', ['docker-registry'], { stdio: 'ignore' });
  } catch {
    throw new Error('docker-registry is not installed: apt-get install -y docker-registry (bash .ci/run does this)');
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-registry-'));
  writeFileSync(join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const proc: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  const host = `127.0.0.1:${port}`;
  await waitFor('the registry to answer', async () => (await fetch(`http://${host}/v2/`)).ok, 15_000);
  return {
    host,
    stop() {
      proc.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
