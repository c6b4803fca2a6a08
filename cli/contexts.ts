import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError } from './api.js';

/** A saved cluster: where it is, the operator token, and the default namespace. */
export interface Context {
  server: string;
  token: string;
  namespace?: string;
}

/** The CLI's config file (like a kubeconfig): named contexts and the current one. Mode 0600. */
export interface CliConfig {
  currentContext?: string;
  contexts: Record<string, Context>;
}

/** Where the config lives: $FLOTILLA_CONFIG, else $XDG_CONFIG_HOME/flotilla/config.json, else ~/.config/flotilla/config.json. */
export function configPath(): string {
  if (process.env.FLOTILLA_CONFIG) return process.env.FLOTILLA_CONFIG;
  return join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'flotilla', 'config.json');
}

export function readConfig(): CliConfig {
  const p = configPath();
  if (!existsSync(p)) return { contexts: {} };
  try {
    const v = JSON.parse(readFileSync(p, 'utf8')) as CliConfig;
    if (typeof v !== 'object' || v === null || typeof v.contexts !== 'object') throw new Error('no "contexts" object');
    return v;
  } catch (e) {
    throw new CliError(`cannot read the config file ${p}: ${(e as Error).message} (fix or remove it)`);
  }
}

/** Writes the config atomically, readable by its owner only (it holds tokens). */
export function writeConfig(c: CliConfig): void {
  const p = configPath();
  mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
  const tmp = `${p}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(c, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, p);
}

/** The context to use: the one named (--context), else the current one; undefined when there is none. */
export function selectContext(name: string | undefined): (Context & { name: string }) | undefined {
  const c = readConfig();
  const n = name ?? process.env.FLOTILLA_CONTEXT ?? c.currentContext;
  if (n === undefined) return undefined;
  const ctx = c.contexts[n];
  if (!ctx) {
    if (name !== undefined || process.env.FLOTILLA_CONTEXT) throw new CliError(`no context "${n}" in ${configPath()} (see flotilla config get-contexts)`, 2);
    return undefined;
  }
  return { ...ctx, name: n };
}

/** A context name from a server URL: its host and port (`127.0.0.1-8080`). */
export function contextNameFor(server: string): string {
  try {
    const u = new URL(server);
    return `${u.hostname}${u.port ? `-${u.port}` : ''}`.replace(/[^A-Za-z0-9_.-]/g, '-');
  } catch {
    throw new CliError(`not a server URL: "${server}" (like http://127.0.0.1:8080)`, 2);
  }
}
