/**
 * Label selectors in Kubernetes' string form, as `?labelSelector=` and `flotilla get -l` take them:
 * `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists) and `!k` (does not exist),
 * joined by commas; every requirement must hold.
 */
export type Requirement = { key: string; op: 'in' | 'notin'; values: string[] } | { key: string; op: 'exists' | 'absent' };

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Parses a selector; throws an Error whose message names the bad requirement. */
export function parseSelector(text: string): Requirement[] {
  const out: Requirement[] = [];
  // Split on commas outside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0) throw new Error(`unbalanced ")" in label selector "${text}"`);
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0) throw new Error(`unbalanced "(" in label selector "${text}"`);
  parts.push(cur);
  for (const raw of parts) {
    const p = raw.trim();
    if (p === '') {
      if (parts.length === 1) return [];
      throw new Error(`empty requirement in label selector "${text}"`);
    }
    const key = (k: string) => {
      if (!KEY.test(k) || k.length > 316) throw new Error(`"${k}" is not a valid label key (in "${p}")`);
      return k;
    };
    const value = (v: string) => {
      if (!VALUE.test(v) || v.length > 63) throw new Error(`"${v}" is not a valid label value (in "${p}")`);
      return v;
    };
    let m = /^(\S+?)\s+(in|notin)\s*\(([^)]*)\)$/.exec(p);
    if (m) {
      const values = (m[3] as string).split(',').map((v) => value(v.trim()));
      out.push({ key: key(m[1] as string), op: m[2] as 'in' | 'notin', values });
      continue;
    }
    m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(p);
    if (m) {
      out.push({ key: key(m[1] as string), op: m[2] === '!=' ? 'notin' : 'in', values: [value((m[3] as string).trim())] });
      continue;
    }
    m = /^!\s*(\S+)$/.exec(p);
    if (m) {
      out.push({ key: key(m[1] as string), op: 'absent' });
      continue;
    }
    out.push({ key: key(p), op: 'exists' });
  }
  return out;
}

/** Whether labels satisfy every requirement (`notin`/`!=` also hold when the key is absent, as in Kubernetes). */
export function matchesSelector(reqs: readonly Requirement[], labels: Readonly<Record<string, string>> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    if (!('values' in r)) return has === (r.op === 'exists');
    const hit = has && r.values.includes(l[r.key] as string);
    return r.op === 'in' ? hit : !hit;
  });
}
