/** DNS-1123 label: what namespaces, container and port names must be. */
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** DNS-1123 subdomain: what object names must be. */
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Is `s` a valid Kubernetes label (or annotation) key? */
export function isLabelKey(s: string): boolean {
  const slash = s.lastIndexOf('/');
  const name = slash === -1 ? s : s.slice(slash + 1);
  const prefix = slash === -1 ? '' : s.slice(0, slash);
  if (prefix !== '' && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

/** Is `s` a valid label value (empty allowed)? */
export function isLabelValue(s: string): boolean {
  return s === '' || (s.length <= 63 && LABEL_NAME.test(s));
}

/** Parses `k=v` label arguments (CLI flags); throws a readable Error on a bad one. */
export function parseLabelArgs(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    const k = eq === -1 ? a : a.slice(0, eq);
    const v = eq === -1 ? '' : a.slice(eq + 1);
    if (!isLabelKey(k)) throw new Error(`invalid label key "${k}" (use name or prefix/name, at most 63 characters)`);
    if (!isLabelValue(v)) throw new Error(`invalid label value "${v}" for ${k}`);
    out[k] = v;
  }
  return out;
}
