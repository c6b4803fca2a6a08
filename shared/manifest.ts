import { z } from 'zod';
import { type FieldError, invalid } from './errors.js';
import { DNS1123_LABEL, DNS1123_SUBDOMAIN, isLabelKey, isLabelValue } from './names.js';

// Manifests are Kubernetes-shaped. Objects are strict: an unknown or unsupported field is an
// error naming its path, never silently dropped. Server-owned fields (status, uid, resourceVersion,
// generation, creationTimestamp) are accepted and ignored so `get -o json | apply -f -` works.

const labels = z.record(z.string(), z.string()).superRefine((m, ctx) => {
  for (const [k, v] of Object.entries(m)) {
    if (!isLabelKey(k)) ctx.addIssue({ code: 'custom', path: [k], message: 'invalid label key' });
    else if (!isLabelValue(v)) ctx.addIssue({ code: 'custom', path: [k], message: 'invalid label value (at most 63 characters: letters, digits, -, _, .)' });
  }
});

const annotations = z.record(z.string(), z.string()).superRefine((m, ctx) => {
  for (const k of Object.keys(m)) if (!isLabelKey(k)) ctx.addIssue({ code: 'custom', path: [k], message: 'invalid annotation key' });
});

const objectName = z.string().max(253).regex(DNS1123_SUBDOMAIN, 'must be a DNS-1123 subdomain: lower-case letters, digits, "-" and "."');
const labelName = z.string().max(63).regex(DNS1123_LABEL, 'must be a DNS-1123 label: lower-case letters, digits and "-"');

const metadata = z.strictObject({
  name: objectName,
  namespace: labelName.optional(),
  labels: labels.optional(),
  annotations: annotations.optional(),
  // server-owned, ignored on input
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().optional(),
  creationTimestamp: z.string().optional(),
});

const envVar = z.strictObject({
  name: z
    .string()
    .min(1)
    .regex(/^[-._a-zA-Z][-._a-zA-Z0-9]*$/, 'must be a valid environment variable name'),
  value: z.string().default(''),
});

const containerPort = z.strictObject({
  name: z.string().max(15).regex(DNS1123_LABEL).optional(),
  containerPort: z.number().int().min(1).max(65535),
  hostPort: z.number().int().min(1).max(65535).optional(),
  hostIP: z.string().optional(),
  protocol: z.enum(['TCP', 'UDP']).default('TCP'),
});

const container = z.strictObject({
  name: labelName,
  image: z
    .string()
    .min(1)
    .max(512)
    .regex(/^[^\s]+$/, 'must not contain white space'),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  workingDir: z.string().optional(),
  env: z.array(envVar).optional(),
  ports: z.array(containerPort).optional(),
});

/** The pod template spec: what one pod runs. */
export const podSpecSchema = z
  .strictObject({
    nodeSelector: labels.optional(),
    containers: z.array(container).min(1, 'a pod needs at least one container'),
  })
  .superRefine((spec, ctx) => {
    const names = new Set<string>();
    const hostPorts = new Set<string>();
    const ctrPorts = new Set<string>();
    spec.containers.forEach((c, i) => {
      if (names.has(c.name)) ctx.addIssue({ code: 'custom', path: ['containers', i, 'name'], message: `duplicate container name "${c.name}"` });
      names.add(c.name);
      (c.ports ?? []).forEach((p, j) => {
        // Containers of a pod share one network namespace, so container ports must be unique too.
        const ck = `${p.protocol}/${p.containerPort}`;
        if (ctrPorts.has(ck)) ctx.addIssue({ code: 'custom', path: ['containers', i, 'ports', j, 'containerPort'], message: `port ${ck} is declared twice in this pod` });
        ctrPorts.add(ck);
        if (p.hostPort !== undefined) {
          const hk = `${p.protocol}/${p.hostPort}`;
          if (hostPorts.has(hk)) ctx.addIssue({ code: 'custom', path: ['containers', i, 'ports', j, 'hostPort'], message: `host port ${hk} is used twice in this pod` });
          hostPorts.add(hk);
        }
      });
    });
  });

const deploymentSchema = z
  .strictObject({
    apiVersion: z.literal('apps/v1'),
    kind: z.literal('Deployment'),
    metadata,
    spec: z.strictObject({
      replicas: z.number().int().min(0).max(10_000).default(1),
      selector: z.strictObject({ matchLabels: labels }),
      template: z.strictObject({
        metadata: z.strictObject({ labels: labels, annotations: annotations.optional() }),
        spec: podSpecSchema,
      }),
    }),
    status: z.unknown().optional(),
  })
  .superRefine((d, ctx) => {
    const sel = d.spec.selector.matchLabels;
    if (Object.keys(sel).length === 0) ctx.addIssue({ code: 'custom', path: ['spec', 'selector', 'matchLabels'], message: 'must not be empty' });
    for (const [k, v] of Object.entries(sel)) {
      if (d.spec.template.metadata.labels[k] !== v)
        ctx.addIssue({ code: 'custom', path: ['spec', 'template', 'metadata', 'labels'], message: `selector ${k}=${v} does not match the template labels` });
    }
  });

const namespaceSchema = z.strictObject({
  apiVersion: z.literal('v1'),
  kind: z.literal('Namespace'),
  metadata: metadata.extend({ name: labelName }),
  spec: z.strictObject({}).optional(),
  status: z.unknown().optional(),
});

/** A validated Deployment manifest with defaults applied. */
export type Deployment = z.infer<typeof deploymentSchema>;
/** A validated pod spec with defaults applied. */
export type PodSpec = z.infer<typeof podSpecSchema>;
/** A validated Namespace manifest. */
export type NamespaceManifest = z.infer<typeof namespaceSchema>;
/** A container of a pod spec. */
export type ContainerSpec = PodSpec['containers'][number];
/** Any manifest Flotilla accepts. */
export type Manifest = Deployment | NamespaceManifest;

const KINDS: Record<string, { apiVersion: string; schema: z.ZodType }> = {
  Deployment: { apiVersion: 'apps/v1', schema: deploymentSchema },
  Namespace: { apiVersion: 'v1', schema: namespaceSchema },
};

/** The kinds `apply` understands, with their apiVersion. */
export const SUPPORTED_KINDS = Object.keys(KINDS);

/** Converts zod issues to field errors with Kubernetes-style paths (`spec.containers[0].image`). */
export function fieldErrors(error: z.ZodError, prefix = ''): FieldError[] {
  return error.issues.flatMap((i) =>
    i.code === 'unrecognized_keys'
      ? i.keys.map((k) => ({ path: formatPath([...i.path, k], prefix), message: 'unknown or unsupported field' }))
      : [{ path: formatPath(i.path, prefix), message: i.message }],
  );
}

function formatPath(path: readonly PropertyKey[], prefix: string): string {
  let s = prefix;
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else s += s === '' ? String(p) : `.${String(p)}`;
  }
  return s === '' ? '(root)' : s;
}

/** Validates one decoded manifest document; throws an `invalid` FlotillaError naming every bad field. */
export function parseManifest(doc: unknown): Manifest {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid('a manifest must be an object', [{ path: '(root)', message: 'expected an object' }]);
  const { kind, apiVersion } = doc as { kind?: unknown; apiVersion?: unknown };
  const entry = typeof kind === 'string' ? KINDS[kind] : undefined;
  if (!entry) throw invalid(`unknown or unsupported kind ${JSON.stringify(kind ?? null)}; supported: ${SUPPORTED_KINDS.join(', ')}`, [{ path: 'kind', message: 'unsupported kind' }]);
  if (apiVersion !== entry.apiVersion) throw invalid(`${kind} must have apiVersion ${entry.apiVersion}`, [{ path: 'apiVersion', message: `expected ${entry.apiVersion}` }]);
  const r = entry.schema.safeParse(doc);
  if (!r.success) {
    const errors = fieldErrors(r.error);
    throw invalid(`${kind} is invalid: ${errors[0]?.path}: ${errors[0]?.message}`, errors);
  }
  return r.data as Manifest;
}

/** Validates a Deployment specifically. */
export function parseDeployment(doc: unknown): Deployment {
  const m = parseManifest(doc);
  if (m.kind !== 'Deployment') throw invalid(`expected kind Deployment, got ${m.kind}`, [{ path: 'kind', message: 'expected Deployment' }]);
  return m;
}
