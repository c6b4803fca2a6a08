import { execFileSync } from 'node:child_process';

// Builds the local test images once per run. Tests that need Docker check for it themselves and
// fail with instructions; this only prepares images when an engine is there.
export default function setup(): void {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    return;
  }
  execFileSync('bash', ['test/images/build.sh'], { stdio: 'inherit', timeout: 120_000 });
}
