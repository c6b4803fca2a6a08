import { execFileSync } from 'node:child_process';

// Compiles the CLI and builds the local test images once per run. Tests that need Docker check for it themselves and
// fail with instructions; this only prepares images when an engine is there.
export default function setup(): void {
  // CLI processes in tests run the compiled CLI (test/lib/proc.ts): build it from this tree first.
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit', timeout: 300_000 });
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    return;
  }
  execFileSync('bash', ['test/images/build.sh'], { stdio: 'inherit', timeout: 120_000 });
}
