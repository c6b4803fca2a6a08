import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { parseLabelArgs } from '../shared/names.js';
import { CliError, type Target } from './api.js';

/** Where and as whom operator commands talk: flags, then environment, then ./.flotilla/admin.token. */
export function target(values: { server?: string; token?: string }): Target {
  const server = values.server ?? process.env.FLOTILLA_SERVER ?? 'http://127.0.0.1:8080';
  let token = values.token ?? process.env.FLOTILLA_TOKEN;
  if (!token) {
    try {
      token = readFileSync(join('.flotilla', 'admin.token'), 'utf8').trim();
    } catch {
      throw new CliError('no API token: pass --token or set FLOTILLA_TOKEN', 2);
    }
  }
  return { server, token };
}

const common = { server: { type: 'string' }, token: { type: 'string' }, namespace: { type: 'string', short: 'n' }, output: { type: 'string', short: 'o' } } as const;

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
