import type { Context } from 'hono';
import { parseAllDocuments } from 'yaml';
import { invalid, malformed, unsupportedMedia } from '../shared/errors.js';

const JSON_TYPES = ['application/json', 'application/merge-patch+json'];
const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];

/** Reads a JSON or YAML request body as one document; 415 for other types, 400 if it does not parse. */
export async function readDocument(c: Context): Promise<unknown> {
  const docs = await readDocuments(c);
  if (docs.length !== 1) throw malformed(`expected exactly one document, got ${docs.length}`);
  return docs[0];
}

/** Reads a JSON body, or a YAML body with one or more documents. */
export async function readDocuments(c: Context): Promise<unknown[]> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  const text = await c.req.text();
  if (JSON_TYPES.includes(type)) {
    try {
      const v: unknown = JSON.parse(text);
      return Array.isArray(v) ? v : [v];
    } catch (e) {
      throw malformed(`malformed JSON: ${(e as Error).message}`);
    }
  }
  if (YAML_TYPES.includes(type)) {
    const docs = parseAllDocuments(text);
    const list = Array.isArray(docs) ? docs : [docs];
    const out: unknown[] = [];
    for (const d of list) {
      if (d.errors.length > 0) throw malformed(`malformed YAML: ${d.errors[0]?.message.split('\n')[0]}`);
      const v = d.toJS({ maxAliasCount: 50 });
      if (v !== null && v !== undefined) out.push(v);
    }
    return out;
  }
  throw unsupportedMedia(`unsupported content type "${type || '(none)'}"; send application/json or application/yaml`);
}

/** An optional integer query parameter in [min, max]; 422 naming the parameter otherwise. */
export function intParam(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw invalid(`${name} must be an integer from ${min} to ${max}`, [{ path: name, message: `must be ${min}-${max}` }]);
  return n;
}

/** Reads a JSON body (agent protocol and small operator requests). */
export async function readJson(c: Context): Promise<unknown> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type !== 'application/json') throw unsupportedMedia(`unsupported content type "${type || '(none)'}"; send application/json`);
  try {
    return JSON.parse(await c.req.text());
  } catch (e) {
    throw malformed(`malformed JSON: ${(e as Error).message}`);
  }
}
