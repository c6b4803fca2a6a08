import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { waitFor } from './wait.js';

/** Environment for CLI processes in tests: short durations everywhere. */
export const FAST_ENV = {
  FLOTILLA_LEASE_TTL: '10s',
  FLOTILLA_POLL_WAIT: '5s',
  FLOTILLA_CLOCK_SKEW: '1s',
  FLOTILLA_RECONCILE_MS: '300',
  FLOTILLA_RESTART_BACKOFF_MS: '500',
  FLOTILLA_RETRY_BASE_MS: '200',
  FLOTILLA_RETRY_CAP_MS: '2000',
  FLOTILLA_STOP_TIMEOUT_S: '1',
  FLOTILLA_LOG_LEVEL: 'warn',
};

/** A long-running process with its output collected. */
export interface Proc {
  child: ChildProcess;
  out: () => string;
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Processes started by this test file and still running: their output is printed when a test fails (test/lib/on-failure.ts). */
export const liveProcs = new Map<ChildProcess, { label: string; out: () => string }>();

/** Starts a process, collecting stdout and stderr. */
export function start(cmd: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => (buf += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (buf += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  liveProcs.set(child, {
    label: args
      .map((a) => (a === CLI ? 'cli/main' : a))
      .join(' ')
      .slice(0, 100),
    out: () => buf,
  });
  void exited.then(() => liveProcs.delete(child));
  return {
    child,
    out: () => buf,
    waitForOutput: (re, timeoutMs = 60_000) => waitFor(`output matching ${re} (got: ${buf.slice(-500)})`, () => buf.match(re), timeoutMs, 100),
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/**
 * The flotilla CLI as it ships: compiled to dist/ by the global setup (test/lib/global-setup.ts) at
 * the start of every run, so it is never stale (and starts in a third of the time tsx takes: tests
 * run it hundreds of times).
 */
export const CLI = resolve('dist/cli/main.js');

/** Starts the flotilla CLI. */
export function startCli(args: string[], env: Record<string, string> = {}): Proc {
  return start(process.execPath, [CLI, ...args], { ...FAST_ENV, ...env });
}

/** Runs the flotilla CLI to completion. */
export function runCli(args: string[], env: Record<string, string> = {}, input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...FAST_ENV, ...env },
    encoding: 'utf8',
    timeout: 60_000,
    ...(input !== undefined ? { input } : {}),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
