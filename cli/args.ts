import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { parseLabelArgs } from '../shared/names.js';
import { CliError, type Target } from './api.js';
import { selectContext } from './contexts.js';

/**
 * Where and as whom operator commands talk: --server/--token, then FLOTILLA_SERVER/FLOTILLA_TOKEN,
 * then the context (--context, FLOTILLA_CONTEXT or the current one of the config file), then
 * http://127.0.0.1:8080 with ./.flotilla/admin.token (what `flotilla server` writes).
 * A server given by flag or environment does not take a context's token meant for another server.
 */
export function target(values: { server?: string; token?: string; context?: string }): Target {
  const explicit = values.server ?? process.env.FLOTILLA_SERVER;
  const ctx = selectContext(values.context);
  const useCtx = ctx !== undefined && (explicit === undefined || values.context !== undefined || explicit === ctx.server);
  const server = explicit ?? (useCtx ? ctx?.server : undefined) ?? 'http://127.0.0.1:8080';
  let token = values.token ?? process.env.FLOTILLA_TOKEN ?? (useCtx ? ctx?.token : undefined);
  if (!token) {
    try {
      token = readFileSync(join('.flotilla', 'admin.token'), 'utf8').trim();
    } catch {
      throw new CliError('no API token: run flotilla login SERVER --token T, or pass --token / set FLOTILLA_TOKEN', 2);
    }
  }
  return { server, token };
}

/** The namespace a command works in: -n, else the context's, else default. */
export function namespaceOf(values: { namespace?: string; context?: string }): string {
  if (values.namespace) return values.namespace;
  try {
    return selectContext(values.context)?.namespace ?? 'default';
  } catch {
    return 'default';
  }
}

const common = {
  server: { type: 'string' },
  token: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  output: { type: 'string', short: 'o' },
} as const;

/** Parses a command's flags (plus the common ones); a bad flag is a usage error (exit 2). */
export function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  try {
    const config = { args, options: { ...common, ...options } as typeof common & O, allowPositionals: true as const, strict: true as const };
    return parseArgs(config);
  } catch (e) {
    throw new CliError(`${(e as Error).message.split('\n')[0]} (see flotilla --help)`, 2);
  }
}

/** Parses repeated `--label k=v` flags; a bad one is a usage error (exit 2). */
export function parseLabelsFlag(args: string[]): Record<string, string> {
  try {
    return parseLabelArgs(args);
  } catch (e) {
    throw new CliError((e as Error).message, 2);
  }
}
