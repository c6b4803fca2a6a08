/** One difference between two JSON documents, at a dotted path (`spec.template.spec.containers[0].image`). */
export interface Difference {
  path: string;
  op: 'add' | 'remove' | 'replace';
  from?: unknown;
  to?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The leaf differences from `before` to `after` (arrays of different length compare whole). */
export function diffJson(before: unknown, after: unknown, path = ''): Difference[] {
  if (isObject(before) && isObject(after)) {
    const out: Difference[] = [];
    for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
      const p = path ? `${path}.${k}` : k;
      if (!(k in after)) out.push({ path: p, op: 'remove', from: before[k] });
      else if (!(k in before)) out.push({ path: p, op: 'add', to: after[k] });
      else out.push(...diffJson(before[k], after[k], p));
    }
    return out;
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) return before.flatMap((b, i) => diffJson(b, after[i], `${path}[${i}]`));
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [{ path, op: 'replace', from: before, to: after }];
}

/** A difference as one line: `~ spec.replicas: 2 -> 3`, `+ metadata.labels.tier: "front"`, `- ...`. */
export function formatDifference(d: Difference): string {
  const v = (x: unknown) => JSON.stringify(x);
  return d.op === 'add' ? `+ ${d.path}: ${v(d.to)}` : d.op === 'remove' ? `- ${d.path}: ${v(d.from)}` : `~ ${d.path}: ${v(d.from)} -> ${v(d.to)}`;
}
