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

/**
 * A real CNCF distribution registry (Debian's docker-registry) on 127.0.0.1, which Docker trusts as
 * insecure; with `login`, it requires that user and password (htpasswd, bcrypt).
 */
export async function startRegistry(login?: { user: string; password: string }): Promise<{ host: string; stop(): void }> {
  for (const [bin, pkg] of [['docker-registry', 'docker-registry'], ...(login ? [['htpasswd', 'apache2-utils']] : [])] as const) {
    try {
      execFileSync('which', [bin], { stdio: 'ignore' });
    } catch {
      throw new Error(`${bin} is not installed: apt-get install -y ${pkg} (bash .ci/run does this)`);
    }
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-registry-'));
  let auth = '';
  if (login) {
    writeFileSync(join(dir, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', login.user, login.password], { encoding: 'utf8' }));
    auth = `auth:\n  htpasswd:\n    realm: flotilla-test\n    path: ${dir}/htpasswd\n`;
  }
  writeFileSync(join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`);
  const proc: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  const host = `127.0.0.1:${port}`;
  // With a login required, /v2/ answers 401 once it serves.
  await waitFor('the registry to answer', async () => (await fetch(`http://${host}/v2/`).catch(() => null))?.status === (login ? 401 : 200), 15_000);
  return {
    host,
    stop() {
      proc.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
