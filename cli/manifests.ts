import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CliError } from './api.js';

/** Kind names and short forms the CLI accepts, as API plurals. */
export const KIND_ALIASES: Record<string, string> = {
  namespace: 'namespaces',
  namespaces: 'namespaces',
  ns: 'namespaces',
  node: 'nodes',
  nodes: 'nodes',
  no: 'nodes',
  deployment: 'deployments',
  deployments: 'deployments',
  deploy: 'deployments',
  'deployment.apps': 'deployments',
  daemonset: 'daemonsets',
  daemonsets: 'daemonsets',
  ds: 'daemonsets',
  'daemonset.apps': 'daemonsets',
  pod: 'pods',
  pods: 'pods',
  po: 'pods',
  event: 'events',
  events: 'events',
  ev: 'events',
  secret: 'secrets',
  secrets: 'secrets',
  configmap: 'configmaps',
  configmaps: 'configmaps',
  cm: 'configmaps',
  service: 'services',
  services: 'services',
  svc: 'services',
  endpoints: 'endpoints',
  ep: 'endpoints',
  persistentvolumeclaim: 'persistentvolumeclaims',
  persistentvolumeclaims: 'persistentvolumeclaims',
  pvc: 'persistentvolumeclaims',
};

/** Reads a file (or standard input for `-`) of YAML or JSON documents, unwrapping `kind: List`. */
export function readManifests(file: string): Array<Record<string, unknown>> {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const docs = parseAllDocuments(text);
  const out: Array<Record<string, unknown>> = [];
  for (const [i, d] of (Array.isArray(docs) ? docs : [docs]).entries()) {
    if (d.errors.length > 0) throw new CliError(`${file}: document ${i + 1}: ${d.errors[0]?.message.split('\n')[0]}`);
    const v = d.toJS({ maxAliasCount: 50 }) as unknown;
    if (v === null || v === undefined) continue;
    const items = typeof v === 'object' && !Array.isArray(v) && (v as { kind?: string }).kind === 'List' ? ((v as { items?: unknown[] }).items ?? []) : [v];
    for (const it of items) {
      if (typeof it !== 'object' || it === null || Array.isArray(it)) throw new CliError(`${file}: document ${i + 1} is not an object`);
      out.push(it as Record<string, unknown>);
    }
  }
  if (out.length === 0) throw new CliError(`${file}: no manifests found`);
  return out;
}

/** The API path a manifest is applied to, and how the CLI names it (`deployment.apps/web`). */
export function pathFor(doc: Record<string, unknown>, nsFlag: string | undefined): { path: string; label: string } {
  const kind = String(doc.kind ?? '');
  const meta = (doc.metadata ?? {}) as { name?: string; namespace?: string };
  const name = encodeURIComponent(String(meta.name ?? ''));
  const ns = encodeURIComponent(meta.namespace ?? nsFlag ?? 'default');
  if (kind === 'Deployment') return { path: `/v1/namespaces/${ns}/deployments/${name}`, label: `deployment.apps/${meta.name}` };
  if (kind === 'DaemonSet') return { path: `/v1/namespaces/${ns}/daemonsets/${name}`, label: `daemonset.apps/${meta.name}` };
  if (kind === 'Namespace') return { path: `/v1/namespaces/${name}`, label: `namespace/${meta.name}` };
  if (kind === 'Secret') return { path: `/v1/namespaces/${ns}/secrets/${name}`, label: `secret/${meta.name}` };
  if (kind === 'ConfigMap') return { path: `/v1/namespaces/${ns}/configmaps/${name}`, label: `configmap/${meta.name}` };
  if (kind === 'Service') return { path: `/v1/namespaces/${ns}/services/${name}`, label: `service/${meta.name}` };
  if (kind === 'PersistentVolumeClaim') return { path: `/v1/namespaces/${ns}/persistentvolumeclaims/${name}`, label: `persistentvolumeclaim/${meta.name}` };
  throw new CliError(`unknown or unsupported kind "${kind}" (supported: Deployment, DaemonSet, Namespace, Secret, ConfigMap, Service, PersistentVolumeClaim)`);
}

/**
 * The manifests of `-f`: a file, standard input (`-`), or a directory's .yaml, .yml and .json files
 * in name order (with `recursive`, its subdirectories' too), as kubectl apply -f DIR.
 */
export function readManifestFiles(path: string, recursive: boolean): Array<Record<string, unknown>> {
  if (path === '-') return readManifests(path);
  let dir = false;
  try {
    dir = statSync(path).isDirectory();
  } catch (e) {
    throw new CliError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!dir) return readManifests(path);
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (recursive) walk(p);
      } else if (/\.(ya?ml|json)$/.test(e.name)) files.push(p);
    }
  };
  walk(path);
  if (files.length === 0) throw new CliError(`${path}: no .yaml, .yml or .json files${recursive ? '' : ' (-R for subdirectories)'}`);
  return files.flatMap((f) => readManifests(f));
}
