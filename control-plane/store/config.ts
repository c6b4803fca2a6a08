import { and, eq, inArray } from 'drizzle-orm';
import { conflict } from '../../shared/errors.js';
import { type ConfigMapManifest, referencedNames, type SecretManifest, secretValues } from '../../shared/manifest.js';
import { type Sealed, type SecretBox, toBase64 } from '../../shared/secretbox.js';
import type { Db } from './db.js';
import { insertEvent } from './events.js';
import { configObjects } from './schema.js';
import { ensureNamespace, isUniqueViolation } from './workloads.js';

/** A stored Secret or ConfigMap row. */
export type ConfigRow = typeof configObjects.$inferSelect;
export type ConfigKind = ConfigRow['kind'];

/** A Secret's or ConfigMap's values: base64 for Secrets, text for ConfigMaps. */
export type ConfigValues = Record<string, string>;

const aad = (namespace: string, kind: ConfigKind, name: string) => `${namespace}/${kind}/${name}`;

/** The plain values of a stored row (decrypted for a Secret). */
export async function valuesOf(row: ConfigRow, box: SecretBox | undefined): Promise<ConfigValues> {
  if (row.kind === 'ConfigMap') return JSON.parse(row.data) as ConfigValues;
  if (!box) throw new Error('secrets need a master key (FLOTILLA_SECRET_KEY)');
  const plain = await box.open(JSON.parse(row.data) as Sealed, aad(row.namespace, row.kind, row.name));
  return JSON.parse(new TextDecoder().decode(plain)) as ConfigValues;
}

function sameValues(a: ConfigValues, b: ConfigValues): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/**
 * Creates or updates a Secret or ConfigMap (apply semantics): unchanged when the values, type,
 * labels and annotations are the same (a Secret is compared after decrypting the stored one);
 * otherwise the version goes up. Conditional on the version read, retried on a concurrent change.
 */
export async function applyConfig(
  db: Db,
  m: SecretManifest | ConfigMapManifest,
  namespace: string,
  box: SecretBox | undefined,
  now: number,
  source: string,
): Promise<{ row: ConfigRow; outcome: 'created' | 'configured' | 'unchanged'; valuesChanged: boolean }> {
  const kind = m.kind;
  const name = m.metadata.name;
  let values: ConfigValues;
  let type: string;
  let keys: { key: string; size: number }[];
  if (m.kind === 'Secret') {
    const bytes = secretValues(m);
    values = Object.fromEntries(Object.entries(bytes).map(([k, v]) => [k, toBase64(v)]));
    keys = Object.entries(bytes).map(([key, v]) => ({ key, size: v.length }));
    type = m.type;
    if (!box) throw new Error('secrets need a master key (FLOTILLA_SECRET_KEY)');
  } else {
    values = m.data;
    keys = Object.entries(m.data).map(([key, v]) => ({ key, size: new TextEncoder().encode(v).length }));
    type = '';
  }
  keys.sort((a, b) => (a.key < b.key ? -1 : 1));
  const labels = m.metadata.labels ?? {};
  const annotations = m.metadata.annotations ?? {};
  const seal = async () =>
    kind === 'Secret'
      ? { data: JSON.stringify(await (box as SecretBox).seal(new TextEncoder().encode(JSON.stringify(values)), aad(namespace, kind, name))), kid: (box as SecretBox).kid }
      : { data: JSON.stringify(values), kid: null };
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await getConfig(db, namespace, kind, name);
    if (!existing) {
      const row: ConfigRow = { id: crypto.randomUUID(), namespace, kind, name, type, labels, annotations, keys, ...(await seal()), version: 1, createdAt: now, updatedAt: now };
      try {
        await db.batch([
          ensureNamespace(db, namespace, now),
          db.insert(configObjects).values(row),
          insertEvent(db, { namespace, kind, name, type: 'Normal', reason: 'Created', message: `created by ${source} (${keys.length} keys)`, source: 'api', at: now }),
        ]);
        return { row, outcome: 'created', valuesChanged: true };
      } catch (e) {
        if (isUniqueViolation(e)) continue;
        throw e;
      }
    }
    const same = existing.type === type && sameValues(await valuesOf(existing, box), values);
    if (same && JSON.stringify(existing.labels) === JSON.stringify(labels) && JSON.stringify(existing.annotations) === JSON.stringify(annotations))
      return { row: existing, outcome: 'unchanged', valuesChanged: false };
    const version = same ? existing.version : existing.version + 1;
    const updated = { type, labels, annotations, keys, ...(same ? {} : await seal()), version, updatedAt: now };
    const [res] = await db.batch([
      db
        .update(configObjects)
        .set(updated)
        .where(and(eq(configObjects.id, existing.id), eq(configObjects.version, existing.version), eq(configObjects.updatedAt, existing.updatedAt)))
        .returning({ id: configObjects.id }),
      insertEvent(db, {
        namespace,
        kind,
        name,
        type: 'Normal',
        reason: same ? 'Updated' : 'NewVersion',
        message: same ? `metadata updated by ${source}` : `version ${version} by ${source}`,
        source: 'api',
        at: now,
      }),
    ]);
    if ((res as unknown[]).length === 1) return { row: { ...existing, ...updated }, outcome: 'configured', valuesChanged: !same };
  }
  throw conflict(`${kind.toLowerCase()} ${namespace}/${name} is being changed concurrently; try again`);
}

/** One Secret or ConfigMap. */
export function getConfig(db: Db, namespace: string, kind: ConfigKind, name: string): Promise<ConfigRow | undefined> {
  return db
    .select()
    .from(configObjects)
    .where(and(eq(configObjects.namespace, namespace), eq(configObjects.kind, kind), eq(configObjects.name, name)))
    .get();
}

/** Secrets or ConfigMaps of one namespace (or all). */
export function listConfig(db: Db, kind: ConfigKind, namespace?: string): Promise<ConfigRow[]> {
  const conds = [eq(configObjects.kind, kind)];
  if (namespace !== undefined) conds.push(eq(configObjects.namespace, namespace));
  return db
    .select()
    .from(configObjects)
    .where(and(...conds))
    .orderBy(configObjects.namespace, configObjects.name)
    .all();
}

/** Deletes a Secret or ConfigMap. */
export async function deleteConfig(db: Db, row: ConfigRow, now: number, source: string): Promise<boolean> {
  const [res] = await db.batch([
    db.delete(configObjects).where(eq(configObjects.id, row.id)).returning({ id: configObjects.id }),
    insertEvent(db, { namespace: row.namespace, kind: row.kind, name: row.name, type: 'Normal', reason: 'Deleted', message: `deleted by ${source}`, source: 'api', at: now }),
  ]);
  return (res as unknown[]).length === 1;
}

/** Key ids of the master keys the stored Secrets are sealed under. */
export async function sealedKids(db: Db): Promise<string[]> {
  const rows = await db.selectDistinct({ kid: configObjects.kid }).from(configObjects).where(eq(configObjects.kind, 'Secret')).all();
  return rows.flatMap((r) => (r.kid ? [r.kid] : []));
}

/** Why the configured master key cannot serve the stored Secrets (they are sealed under another key), or undefined when it can. */
export async function masterKeyProblem(db: Db, box: SecretBox): Promise<string | undefined> {
  const foreign = (await sealedKids(db)).filter((k) => !box.knows(k));
  if (foreign.length === 0) return undefined;
  return `the secret master key (key id ${box.kid}) is not the key the stored secrets are sealed under (key id ${foreign.join(', ')})`;
}

/**
 * For each pod that refers to Secrets or ConfigMaps, the versions it would get now
 * (`ConfigMap/app@2,Secret/db@3`; 0 for a missing one): part of the desired state, so an agent
 * sees when to refresh a pod's mounted files.
 */
export async function configVersionsOf(db: Db, pods: readonly { id: string; namespace: string; spec: unknown }[]): Promise<Map<string, string>> {
  const refs = pods
    .map((p) => ({
      id: p.id,
      ns: p.namespace,
      names: [...[...referencedNames(p.spec, 'Secret')].map((n) => `Secret/${n}`), ...[...referencedNames(p.spec, 'ConfigMap')].map((n) => `ConfigMap/${n}`)].sort(),
    }))
    .filter((r) => r.names.length > 0);
  if (refs.length === 0) return new Map();
  const rows = await db
    .select({ namespace: configObjects.namespace, kind: configObjects.kind, name: configObjects.name, version: configObjects.version })
    .from(configObjects)
    .where(inArray(configObjects.namespace, [...new Set(refs.map((r) => r.ns))]))
    .all();
  const v = new Map(rows.map((r) => [`${r.namespace}/${r.kind}/${r.name}`, r.version]));
  return new Map(refs.map((r) => [r.id, r.names.map((n) => `${n}@${v.get(`${r.ns}/${n}`) ?? 0}`).join(',')]));
}

/**
 * Re-seals every Secret not under the current master key (rotation, with the old key still
 * configured as previous). Each row is rewritten only if unchanged since it was read; a row changed
 * meanwhile was sealed under the current key by that change anyway. Returns how many were re-sealed
 * and how many remain under another key.
 */
export async function resealSecrets(db: Db, box: SecretBox): Promise<{ resealed: number; remaining: number }> {
  let resealed = 0;
  for (const row of await listConfig(db, 'Secret')) {
    if (row.kid === box.kid) continue;
    const plain = await box.open(JSON.parse(row.data) as Sealed, aad(row.namespace, row.kind, row.name));
    const sealed = await box.seal(plain, aad(row.namespace, row.kind, row.name));
    const done = await db
      .update(configObjects)
      .set({ data: JSON.stringify(sealed), kid: box.kid })
      .where(and(eq(configObjects.id, row.id), eq(configObjects.version, row.version), eq(configObjects.updatedAt, row.updatedAt)))
      .returning({ id: configObjects.id });
    resealed += done.length;
  }
  const remaining = (await listConfig(db, 'Secret')).filter((r) => r.kid !== box.kid).length;
  return { resealed, remaining };
}
