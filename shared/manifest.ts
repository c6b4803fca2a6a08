import { z } from 'zod';
import { parseDuration } from './duration.js';
import { type FieldError, invalid } from './errors.js';
import { DNS1123_LABEL, DNS1123_SUBDOMAIN, isLabelKey, isLabelValue } from './names.js';
import { parseCpu, parseMemory } from './quantity.js';

/** The Secret type of registry credentials (`imagePullSecrets`), holding a `.dockerconfigjson` key. */
export const DOCKER_CONFIG_JSON = 'kubernetes.io/dockerconfigjson';

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

/** A key of a Secret or ConfigMap: a file name as well as an env var source (Kubernetes' rule). */
export const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
const configKey = z.string().min(1).max(253).regex(CONFIG_KEY, 'must consist of alphanumeric characters, "-", "_" or "."');
const keyRef = z.strictObject({ name: labelName, key: configKey, optional: z.boolean().optional() });

const envVar = z
  .strictObject({
    name: z
      .string()
      .min(1)
      .regex(/^[-._a-zA-Z][-._a-zA-Z0-9]*$/, 'must be a valid environment variable name'),
    value: z.string().optional(),
    valueFrom: z
      .strictObject({ secretKeyRef: keyRef.optional(), configMapKeyRef: keyRef.optional() })
      .refine((v) => (v.secretKeyRef ? 1 : 0) + (v.configMapKeyRef ? 1 : 0) === 1, 'needs exactly one of secretKeyRef, configMapKeyRef')
      .optional(),
  })
  .refine((e) => !(e.value !== undefined && e.valueFrom), { message: 'may not have both value and valueFrom', path: ['valueFrom'] })
  // A plain variable without a value is the empty string (as before valueFrom existed: same digests).
  .transform((e) => (e.valueFrom ? e : { ...e, value: e.value ?? '' }));

const envFromSource = z
  .strictObject({
    prefix: z.string().max(253).optional(),
    secretRef: z.strictObject({ name: labelName, optional: z.boolean().optional() }).optional(),
    configMapRef: z.strictObject({ name: labelName, optional: z.boolean().optional() }).optional(),
  })
  .refine((v) => (v.secretRef ? 1 : 0) + (v.configMapRef ? 1 : 0) === 1, 'needs exactly one of secretRef, configMapRef');

const volumeMount = z.strictObject({
  name: labelName,
  mountPath: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^\/[^:]*$/, 'must be an absolute path without ":"'),
  readOnly: z.boolean().optional(),
  subPath: z
    .string()
    .max(1024)
    .regex(/^[^/]/, 'must be a relative path')
    .refine((p) => !p.split('/').includes('..'), 'must not contain ".."')
    .optional(),
});

const keyToPath = z.strictObject({
  key: configKey,
  path: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[^/.][^/]*(\/[^/]+)*$/, 'must be a relative path without ".." or a leading "."')
    .refine((p) => !p.split('/').includes('..'), 'must not contain ".."'),
  mode: z.number().int().min(0).max(0o777).optional(),
});

/**
 * A pod volume: a Secret or a ConfigMap projected as files; an `emptyDir` (per pod, shared by its
 * containers, removed with the pod; `medium: Memory` is tmpfs bounded by `sizeLimit`); or a
 * `hostPath` (a bind mount, refused by agents unless under a prefix they allow).
 */
const volume = z
  .strictObject({
    name: labelName,
    secret: z.strictObject({ secretName: labelName, defaultMode: z.number().int().min(0).max(0o777).optional(), items: z.array(keyToPath).optional(), optional: z.boolean().optional() }).optional(),
    configMap: z.strictObject({ name: labelName, defaultMode: z.number().int().min(0).max(0o777).optional(), items: z.array(keyToPath).optional(), optional: z.boolean().optional() }).optional(),
    emptyDir: z
      .strictObject({
        medium: z.enum(['', 'Memory']).optional(),
        sizeLimit: z
          .union([z.string(), z.number()])
          .superRefine((v, ctx) => {
            const b = parseMemory(v);
            if (b === null || b <= 0) ctx.addIssue({ code: 'custom', message: `not a size: ${JSON.stringify(v)} (use bytes or a suffix: 64Mi, 1Gi)` });
          })
          .optional(),
      })
      .optional(),
    hostPath: z
      .strictObject({
        path: z
          .string()
          .min(1)
          .max(1024)
          .regex(/^\/[^:]*$/, 'must be an absolute path without ":"')
          .refine((p) => !p.split('/').includes('..'), 'must not contain ".."'),
        type: z.enum(['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket']).optional(),
      })
      .optional(),
    persistentVolumeClaim: z.strictObject({ claimName: labelName, readOnly: z.boolean().optional() }).optional(),
  })
  .refine(
    (v) => [v.secret, v.configMap, v.emptyDir, v.hostPath, v.persistentVolumeClaim].filter(Boolean).length === 1,
    'needs exactly one of secret, configMap, emptyDir, hostPath, persistentVolumeClaim',
  );

const containerPort = z.strictObject({
  name: z.string().max(15).regex(DNS1123_LABEL).optional(),
  containerPort: z.number().int().min(1).max(65535),
  hostPort: z.number().int().min(1).max(65535).optional(),
  hostIP: z.string().optional(),
  protocol: z.enum(['TCP', 'UDP']).default('TCP'),
});

const cpuQuantity = z.union([z.string(), z.number()]).superRefine((v, ctx) => {
  if (parseCpu(v) === null) ctx.addIssue({ code: 'custom', message: `not a CPU quantity: ${JSON.stringify(v)} (use cores like "0.5" or millicores like "500m")` });
});
const memoryQuantity = z.union([z.string(), z.number()]).superRefine((v, ctx) => {
  if (parseMemory(v) === null) ctx.addIssue({ code: 'custom', message: `not a memory quantity: ${JSON.stringify(v)} (use bytes or a suffix: 128Mi, 1Gi, 500M)` });
});
const resourceList = z.strictObject({ cpu: cpuQuantity.optional(), memory: memoryQuantity.optional() });

const probePort = z.union([z.number().int().min(1).max(65535), z.string().max(15).regex(DNS1123_LABEL, 'must be a port number or the name of a container port')]);

/** What an httpGet probe's headers may be: nothing that would end a header early. */
export const HTTP_HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
export const HTTP_HEADER_VALUE = /^[^\r\n\x00]*$/;

/** A health probe (Kubernetes semantics and defaults). Exactly one handler. */
const probe = z
  .strictObject({
    httpGet: z
      .strictObject({
        path: z.string().max(2048).default('/'),
        port: probePort,
        host: z.string().optional(),
        scheme: z.enum(['HTTP']).default('HTTP'),
        httpHeaders: z
          .array(
            z.strictObject({
              name: z.string().min(1).max(256),
              value: z.string().max(4096),
            }),
          )
          .optional(),
      })
      .optional(),
    tcpSocket: z.strictObject({ port: probePort, host: z.string().optional() }).optional(),
    exec: z.strictObject({ command: z.array(z.string()).min(1, 'exec needs a command') }).optional(),
    initialDelaySeconds: z.number().int().min(0).max(86_400).default(0),
    periodSeconds: z.number().int().min(1).max(86_400).default(10),
    timeoutSeconds: z.number().int().min(1).max(3600).default(1),
    successThreshold: z.number().int().min(1).max(1000).default(1),
    failureThreshold: z.number().int().min(1).max(1000).default(3),
  })
  .superRefine((p, ctx) => {
    const handlers = [p.httpGet, p.tcpSocket, p.exec].filter((h) => h !== undefined).length;
    if (handlers !== 1) ctx.addIssue({ code: 'custom', path: [], message: 'a probe needs exactly one of httpGet, tcpSocket, exec' });
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
  envFrom: z.array(envFromSource).optional(),
  volumeMounts: z.array(volumeMount).optional(),
  ports: z.array(containerPort).optional(),
  resources: z.strictObject({ requests: resourceList.optional(), limits: resourceList.optional() }).optional(),
  livenessProbe: probe.optional(),
  readinessProbe: probe.optional(),
  startupProbe: probe.optional(),
});

const toleration = z
  .strictObject({
    key: z.string().max(253).optional(),
    operator: z.enum(['Equal', 'Exists']).default('Equal'),
    value: z.string().max(63).optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
    tolerationSeconds: z.number().int().optional(),
  })
  .superRefine((t, ctx) => {
    if (t.operator === 'Exists' && t.value) ctx.addIssue({ code: 'custom', path: ['value'], message: 'must be empty when operator is Exists' });
    if (!t.key && t.operator !== 'Exists') ctx.addIssue({ code: 'custom', path: ['operator'], message: 'must be Exists when key is empty' });
  });

const nodeSelectorRequirement = z
  .strictObject({
    key: z.string().min(1).max(253),
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']),
    values: z.array(z.string().max(63)).optional(),
  })
  .superRefine((r, ctx) => {
    const n = r.values?.length ?? 0;
    if ((r.operator === 'In' || r.operator === 'NotIn') && n === 0) ctx.addIssue({ code: 'custom', path: ['values'], message: `must be non-empty for ${r.operator}` });
    if ((r.operator === 'Exists' || r.operator === 'DoesNotExist') && n > 0) ctx.addIssue({ code: 'custom', path: ['values'], message: `must be empty for ${r.operator}` });
    if ((r.operator === 'Gt' || r.operator === 'Lt') && (n !== 1 || !/^-?\d+$/.test(r.values?.[0] ?? '')))
      ctx.addIssue({ code: 'custom', path: ['values'], message: `${r.operator} needs exactly one integer value` });
  });

const affinity = z.strictObject({
  nodeAffinity: z
    .strictObject({
      requiredDuringSchedulingIgnoredDuringExecution: z
        .strictObject({
          nodeSelectorTerms: z.array(z.strictObject({ matchExpressions: z.array(nodeSelectorRequirement).min(1) })).min(1, 'needs at least one term'),
        })
        .optional(),
    })
    .optional(),
});

const topologySpreadConstraint = z.strictObject({
  maxSkew: z.number().int().min(1),
  topologyKey: z.string().min(1).max(253),
  whenUnsatisfiable: z.enum(['DoNotSchedule', 'ScheduleAnyway']),
  /** Accepted for compatibility; Flotilla spreads the pods of the same workload. */
  labelSelector: z.strictObject({ matchLabels: labels }).optional(),
});

/** The pod template spec: what one pod runs. */
export const podSpecSchema = z
  .strictObject({
    nodeSelector: labels.optional(),
    affinity: affinity.optional(),
    tolerations: z.array(toleration).optional(),
    topologySpreadConstraints: z.array(topologySpreadConstraint).optional(),
    restartPolicy: z.enum(['Always', 'OnFailure', 'Never']).default('Always'),
    terminationGracePeriodSeconds: z.number().int().min(0).max(3600).optional(),
    containers: z.array(container).min(1, 'a pod needs at least one container'),
    volumes: z.array(volume).optional(),
    imagePullSecrets: z.array(z.strictObject({ name: labelName })).optional(),
    /** Run in the node's network namespace (no port publishing; container ports are host ports). */
    hostNetwork: z.boolean().optional(),
  })
  .superRefine((spec, ctx) => {
    const volumeNames = new Set<string>();
    (spec.volumes ?? []).forEach((v, i) => {
      if (volumeNames.has(v.name)) ctx.addIssue({ code: 'custom', path: ['volumes', i, 'name'], message: `duplicate volume name "${v.name}"` });
      volumeNames.add(v.name);
    });
    spec.containers.forEach((c, i) => {
      const paths = new Set<string>();
      (c.volumeMounts ?? []).forEach((m, j) => {
        if (!volumeNames.has(m.name)) ctx.addIssue({ code: 'custom', path: ['containers', i, 'volumeMounts', j, 'name'], message: `no volume named "${m.name}" in this pod` });
        if (paths.has(m.mountPath)) ctx.addIssue({ code: 'custom', path: ['containers', i, 'volumeMounts', j, 'mountPath'], message: `"${m.mountPath}" is mounted twice` });
        const v = (spec.volumes ?? []).find((x) => x.name === m.name);
        if (m.subPath && v?.emptyDir?.medium === 'Memory')
          ctx.addIssue({ code: 'custom', path: ['containers', i, 'volumeMounts', j, 'subPath'], message: 'subPath is not supported on a Memory emptyDir (mount the whole volume)' });
        paths.add(m.mountPath);
      });
    });
    const names = new Set<string>();
    const hostPorts = new Set<string>();
    const ctrPorts = new Set<string>();
    const portNames = new Set(spec.containers.flatMap((c) => (c.ports ?? []).flatMap((p) => (p.name ? [p.name] : []))));
    const ctrPortNumbers = new Set(spec.containers.flatMap((c) => (c.ports ?? []).filter((p) => p.protocol === 'TCP').map((p) => p.containerPort)));
    spec.containers.forEach((c, i) => {
      const req = c.resources?.requests;
      const lim = c.resources?.limits;
      for (const r of ['cpu', 'memory'] as const) {
        const parse = r === 'cpu' ? parseCpu : parseMemory;
        const rq = req?.[r] !== undefined ? parse(req[r]) : null;
        const lm = lim?.[r] !== undefined ? parse(lim[r]) : null;
        if (rq !== null && lm !== null && rq > lm) ctx.addIssue({ code: 'custom', path: ['containers', i, 'resources', 'requests', r], message: `must be less than or equal to the ${r} limit` });
        if (r === 'memory' && lm !== null && lm > 0 && lm < 6 * 1024 * 1024)
          ctx.addIssue({ code: 'custom', path: ['containers', i, 'resources', 'limits', r], message: 'must be at least 6Mi (the Docker engine minimum)' });
      }
      for (const kind of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) {
        const p = c[kind];
        if (!p) continue;
        const port = p.httpGet?.port ?? p.tcpSocket?.port;
        const portPath = ['containers', i, kind, p.httpGet ? 'httpGet' : 'tcpSocket', 'port'];
        if (typeof port === 'string' && !portNames.has(port)) ctx.addIssue({ code: 'custom', path: portPath, message: `no container port named "${port}"` });
        if (typeof port === 'number' && !ctrPortNumbers.has(port))
          ctx.addIssue({ code: 'custom', path: portPath, message: `port ${port} is not a declared container port (the agent probes a container through its published port: declare it in ports)` });
        if (kind !== 'readinessProbe' && p.successThreshold !== 1)
          ctx.addIssue({ code: 'custom', path: ['containers', i, kind, 'successThreshold'], message: 'must be 1 for liveness and startup probes' });
      }
      if (names.has(c.name)) ctx.addIssue({ code: 'custom', path: ['containers', i, 'name'], message: `duplicate container name "${c.name}"` });
      names.add(c.name);
      (c.ports ?? []).forEach((p, j) => {
        // Containers of a pod share one network namespace, so container ports must be unique too.
        const ck = `${p.protocol}/${p.containerPort}`;
        if (ctrPorts.has(ck)) ctx.addIssue({ code: 'custom', path: ['containers', i, 'ports', j, 'containerPort'], message: `port ${ck} is declared twice in this pod` });
        ctrPorts.add(ck);
        if (spec.hostNetwork && p.hostPort !== undefined && p.hostPort !== p.containerPort)
          ctx.addIssue({ code: 'custom', path: ['containers', i, 'ports', j, 'hostPort'], message: 'must equal containerPort with hostNetwork' });
        if (p.hostPort !== undefined) {
          const hk = `${p.protocol}/${p.hostPort}`;
          if (hostPorts.has(hk)) ctx.addIssue({ code: 'custom', path: ['containers', i, 'ports', j, 'hostPort'], message: `host port ${hk} is used twice in this pod` });
          hostPorts.add(hk);
        }
      });
    });
  });

/** Annotation choosing what happens to a workload's pods when their node disconnects. */
export const DISCONNECT_ANNOTATION = 'flotilla.dev/disconnect';
/** Annotation choosing the scheduler's scoring for a workload. */
export const SCORING_ANNOTATION = 'flotilla.dev/scoring';
/** Annotation choosing what a failed rollout does: `rollback` (default) to the last good revision, or `pause`. */
export const ON_FAILURE_ANNOTATION = 'flotilla.dev/on-failure';
/** Annotation asking for a canary: this many pods (or percent of replicas) of a new revision first. */
export const CANARY_ANNOTATION = 'flotilla.dev/canary';
/** Annotation: how long a healthy canary is held before the rollout continues (`30s`, `5m`); absent: until `rollout promote`. */
export const CANARY_HOLD_ANNOTATION = 'flotilla.dev/canary-hold';
/** Annotation: a DaemonSet's progress deadline in seconds (Deployments have spec.progressDeadlineSeconds). */
export const PROGRESS_DEADLINE_ANNOTATION = 'flotilla.dev/progress-deadline-seconds';

/** A canary hold in ms (`30s`, `5m`, `1h`, at most a week); undefined when absent or invalid. */
export function parseHold(v: string | undefined): number | undefined {
  const ms = v === undefined ? null : parseDuration(v);
  return ms === null || ms > 7 * 86_400_000 ? undefined : ms;
}

/** What a workload's annotations ask of its rollouts. */
export function rolloutPolicyOf(kind: Workload['kind'], annotations: Record<string, string> | undefined, replicas: number, progressDeadlineSeconds?: number) {
  const a = annotations ?? {};
  const canary = a[CANARY_ANNOTATION];
  const count = canary === undefined ? undefined : Math.max(1, resolveIntOrPercent(/%$/.test(canary) ? canary : Number(canary), replicas, true));
  const deadline = progressDeadlineSeconds ?? (a[PROGRESS_DEADLINE_ANNOTATION] ? Number(a[PROGRESS_DEADLINE_ANNOTATION]) : 600);
  return {
    onFailure: (a[ON_FAILURE_ANNOTATION] ?? 'rollback') as 'rollback' | 'pause',
    progressDeadlineMs: deadline * 1000,
    canary: kind === 'Deployment' && count !== undefined && count < replicas ? { count, holdMs: parseHold(a[CANARY_HOLD_ANNOTATION]) ?? null } : undefined,
  };
}

const workloadMetadata = metadata.superRefine((m, ctx) => {
  const a = m.annotations ?? {};
  const d = a[DISCONNECT_ANNOTATION];
  if (d !== undefined && d !== 'keep' && d !== 'stop') ctx.addIssue({ code: 'custom', path: ['annotations', DISCONNECT_ANNOTATION], message: 'must be "keep" or "stop"' });
  const sc = a[SCORING_ANNOTATION];
  if (sc !== undefined && sc !== 'MostAllocated' && sc !== 'LeastAllocated')
    ctx.addIssue({ code: 'custom', path: ['annotations', SCORING_ANNOTATION], message: 'must be "MostAllocated" or "LeastAllocated"' });
  const of = a[ON_FAILURE_ANNOTATION];
  if (of !== undefined && of !== 'rollback' && of !== 'pause') ctx.addIssue({ code: 'custom', path: ['annotations', ON_FAILURE_ANNOTATION], message: 'must be "rollback" or "pause"' });
  const c = a[CANARY_ANNOTATION];
  if (c !== undefined && !(/^[1-9]\d{0,4}$/.test(c) || (/^\d{1,3}%$/.test(c) && Number(c.slice(0, -1)) > 0 && Number(c.slice(0, -1)) < 100)))
    ctx.addIssue({ code: 'custom', path: ['annotations', CANARY_ANNOTATION], message: 'must be a positive number of pods or a percentage between 1% and 99%' });
  const h = a[CANARY_HOLD_ANNOTATION];
  if (h !== undefined && parseHold(h) === undefined) ctx.addIssue({ code: 'custom', path: ['annotations', CANARY_HOLD_ANNOTATION], message: 'must be a duration such as "30s", "5m" or "1h"' });
  const pd = a[PROGRESS_DEADLINE_ANNOTATION];
  if (pd !== undefined && !/^[1-9]\d{0,4}$/.test(pd)) ctx.addIssue({ code: 'custom', path: ['annotations', PROGRESS_DEADLINE_ANNOTATION], message: 'must be a whole number of seconds' });
});

const templateSchema = z
  .strictObject({
    metadata: z.strictObject({ labels: labels, annotations: annotations.optional() }),
    spec: podSpecSchema,
  })
  .superRefine((t, ctx) => checkProbeHeaders(t.spec, ctx));

/**
 * httpGet probe headers that could never be sent (a name that is not an HTTP token, a line break
 * in a value): refused when a workload is applied. Checked here, not in the pod spec schema that
 * agents parse their desired state with, so a workload stored before this check still reaches them
 * (their prober fails such a probe, as it always did).
 */
function checkProbeHeaders(spec: PodSpec, ctx: z.RefinementCtx): void {
  spec.containers.forEach((c, i) => {
    for (const kind of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) {
      (c[kind]?.httpGet?.httpHeaders ?? []).forEach((h, j) => {
        const at = ['spec', 'containers', i, kind, 'httpGet', 'httpHeaders', j];
        if (!HTTP_HEADER_NAME.test(h.name)) ctx.addIssue({ code: 'custom', path: [...at, 'name'], message: "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)" });
        if (!HTTP_HEADER_VALUE.test(h.value)) ctx.addIssue({ code: 'custom', path: [...at, 'value'], message: 'must not contain line breaks' });
      });
    }
  });
}

function checkSelector(d: { spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> } } } }, ctx: z.RefinementCtx) {
  const sel = d.spec.selector.matchLabels;
  if (Object.keys(sel).length === 0) ctx.addIssue({ code: 'custom', path: ['spec', 'selector', 'matchLabels'], message: 'must not be empty' });
  for (const [k, v] of Object.entries(sel)) {
    if (d.spec.template.metadata.labels[k] !== v) ctx.addIssue({ code: 'custom', path: ['spec', 'template', 'metadata', 'labels'], message: `selector ${k}=${v} does not match the template labels` });
  }
}

/** An integer or a percentage ("25%"), as Kubernetes' IntOrString for maxSurge/maxUnavailable. */
const intOrPercent = z.union([
  z.number().int().min(0, 'must not be negative'),
  z
    .string()
    .regex(/^\d{1,3}%$/, 'must be an integer or a percentage such as "25%"')
    .refine((v) => Number(v.slice(0, -1)) <= 100, 'must not be over 100%'),
]);

/** A DaemonSet's update strategy: RollingUpdate in waves of maxUnavailable nodes (default 1), or OnDelete. */
const daemonSetStrategy = z
  .strictObject({
    type: z.enum(['RollingUpdate', 'OnDelete']).default('RollingUpdate'),
    rollingUpdate: z.strictObject({ maxUnavailable: intOrPercent.default(1) }).optional(),
  })
  .superRefine((st, ctx) => {
    if (st.type === 'OnDelete' && st.rollingUpdate) ctx.addIssue({ code: 'custom', path: ['rollingUpdate'], message: 'may not be specified when strategy type is OnDelete' });
    if (st.rollingUpdate && isZero(st.rollingUpdate.maxUnavailable)) ctx.addIssue({ code: 'custom', path: ['rollingUpdate', 'maxUnavailable'], message: 'must be at least 1 (or 1%)' });
  });

const daemonSetSchema = z
  .strictObject({
    apiVersion: z.literal('apps/v1'),
    kind: z.literal('DaemonSet'),
    metadata: workloadMetadata,
    spec: z.strictObject({
      selector: z.strictObject({ matchLabels: labels }),
      template: templateSchema,
      updateStrategy: daemonSetStrategy.default({ type: 'RollingUpdate' }),
      minReadySeconds: z.number().int().min(0).max(86_400).default(0),
      revisionHistoryLimit: z.number().int().min(0).max(1000).default(10),
    }),
    status: z.unknown().optional(),
  })
  .superRefine(checkSelector);

const deploymentStrategy = z
  .strictObject({
    type: z.enum(['RollingUpdate', 'Recreate']).default('RollingUpdate'),
    rollingUpdate: z.strictObject({ maxSurge: intOrPercent.default('25%'), maxUnavailable: intOrPercent.default('25%') }).optional(),
  })
  .superRefine((st, ctx) => {
    if (st.type === 'Recreate' && st.rollingUpdate) ctx.addIssue({ code: 'custom', path: ['rollingUpdate'], message: 'may not be specified when strategy type is Recreate' });
    const ru = st.rollingUpdate;
    if (ru && isZero(ru.maxSurge) && isZero(ru.maxUnavailable)) ctx.addIssue({ code: 'custom', path: ['rollingUpdate', 'maxUnavailable'], message: 'may not be 0 when maxSurge is 0' });
  });

function isZero(v: number | string): boolean {
  return v === 0 || v === '0%';
}

const deploymentSchema = z
  .strictObject({
    apiVersion: z.literal('apps/v1'),
    kind: z.literal('Deployment'),
    metadata: workloadMetadata,
    spec: z.strictObject({
      replicas: z.number().int().min(0).max(10_000).default(1),
      selector: z.strictObject({ matchLabels: labels }),
      template: templateSchema,
      strategy: deploymentStrategy.default({ type: 'RollingUpdate' }),
      minReadySeconds: z.number().int().min(0).max(86_400).default(0),
      progressDeadlineSeconds: z.number().int().min(1).max(86_400).default(600),
      revisionHistoryLimit: z.number().int().min(0).max(1000).default(10),
      paused: z.boolean().default(false),
    }),
    status: z.unknown().optional(),
  })
  .superRefine(checkSelector)
  .superRefine((d, ctx) => {
    if (d.spec.progressDeadlineSeconds <= d.spec.minReadySeconds) ctx.addIssue({ code: 'custom', path: ['spec', 'progressDeadlineSeconds'], message: 'must be greater than minReadySeconds' });
  });

/** Resolves maxSurge/maxUnavailable against replicas: percentages round up for surge, down for unavailable (Kubernetes). */
export function resolveIntOrPercent(v: number | string, replicas: number, roundUp: boolean): number {
  if (typeof v === 'number') return v;
  const pct = Number(v.slice(0, -1));
  const x = (pct * replicas) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

/** The rolling-update bounds of a Deployment: pods over replicas allowed, and pods that may be unavailable. */
export function rolloutBounds(spec: Deployment['spec']): { maxSurge: number; maxUnavailable: number } {
  const ru = spec.strategy.rollingUpdate ?? { maxSurge: '25%', maxUnavailable: '25%' };
  const maxSurge = resolveIntOrPercent(ru.maxSurge, spec.replicas, true);
  let maxUnavailable = resolveIntOrPercent(ru.maxUnavailable, spec.replicas, false);
  // Both may round to 0 for small replica counts: then one pod may be unavailable, as in Kubernetes.
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { maxSurge, maxUnavailable };
}

const namespaceSchema = z.strictObject({
  apiVersion: z.literal('v1'),
  kind: z.literal('Namespace'),
  metadata: metadata.extend({ name: labelName }),
  spec: z.strictObject({}).optional(),
  status: z.unknown().optional(),
});

/** A validated Deployment manifest with defaults applied. */
export type Deployment = z.infer<typeof deploymentSchema>;
/** A validated DaemonSet manifest with defaults applied. */
export type DaemonSet = z.infer<typeof daemonSetSchema>;
/** A workload: something that owns pods. */
export type Workload = Deployment | DaemonSet;
/** A health probe with defaults applied. */
export type Probe = z.infer<typeof probe>;
/** A toleration. */
export type Toleration = z.infer<typeof toleration>;
/** A node selector requirement (affinity matchExpressions). */
export type NodeSelectorRequirement = z.infer<typeof nodeSelectorRequirement>;
/** A topology spread constraint. */
export type TopologySpreadConstraint = z.infer<typeof topologySpreadConstraint>;
/** A validated pod spec with defaults applied. */
export type PodSpec = z.infer<typeof podSpecSchema>;
/** A validated Namespace manifest. */
export type NamespaceManifest = z.infer<typeof namespaceSchema>;
/** A container of a pod spec. */
export type ContainerSpec = PodSpec['containers'][number];
/** Any manifest Flotilla accepts. */
/** Largest Secret or ConfigMap (all values together), as in Kubernetes. */
export const CONFIG_MAX_BYTES = 1024 * 1024;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Bytes of a base64 text, without decoding it. */
export function base64Size(b64: string): number {
  return (b64.length / 4) * 3 - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);
}

// Messages never quote a value: a Secret's content must not reach an error, a log or a response.
const secretSchema = z
  .strictObject({
    apiVersion: z.literal('v1'),
    kind: z.literal('Secret'),
    metadata,
    type: z.enum(['Opaque', DOCKER_CONFIG_JSON]).default('Opaque'),
    data: z.record(configKey, z.string().regex(BASE64, 'must be base64')).optional(),
    stringData: z.record(configKey, z.string()).optional(),
  })
  .superRefine((d, ctx) => {
    let size = 0;
    for (const v of Object.values(d.data ?? {})) size += base64Size(v);
    for (const [k, v] of Object.entries(d.stringData ?? {})) if (!d.data?.[k]) size += new TextEncoder().encode(v).length;
    if (size > CONFIG_MAX_BYTES) ctx.addIssue({ code: 'custom', path: ['data'], message: `is ${size} bytes; a Secret holds at most ${CONFIG_MAX_BYTES} (1 MiB)` });
    if (d.type === DOCKER_CONFIG_JSON) {
      const raw = d.stringData?.['.dockerconfigjson'] ?? (d.data?.['.dockerconfigjson'] !== undefined ? atob(d.data['.dockerconfigjson']) : undefined);
      let ok = false;
      try {
        ok = raw !== undefined && typeof (JSON.parse(raw) as { auths?: unknown }).auths === 'object';
      } catch {
        ok = false;
      }
      if (!ok) ctx.addIssue({ code: 'custom', path: ['data', '.dockerconfigjson'], message: 'must be a Docker config JSON with "auths"' });
    }
  });

const configMapSchema = z
  .strictObject({
    apiVersion: z.literal('v1'),
    kind: z.literal('ConfigMap'),
    metadata,
    data: z.record(configKey, z.string()).default({}),
  })
  .superRefine((d, ctx) => {
    let size = 0;
    for (const v of Object.values(d.data)) size += new TextEncoder().encode(v).length;
    if (size > CONFIG_MAX_BYTES) ctx.addIssue({ code: 'custom', path: ['data'], message: `is ${size} bytes; a ConfigMap holds at most ${CONFIG_MAX_BYTES} (1 MiB)` });
  });

/** A validated Secret manifest. */
export type SecretManifest = z.infer<typeof secretSchema>;
/** A validated ConfigMap manifest. */
export type ConfigMapManifest = z.infer<typeof configMapSchema>;

/** A Secret's values as bytes (stringData wins over data for the same key, as in Kubernetes). */
export function secretValues(d: SecretManifest): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(d.data ?? {})) out[k] = Uint8Array.from(atob(v), (c) => c.charCodeAt(0));
  for (const [k, v] of Object.entries(d.stringData ?? {})) out[k] = new TextEncoder().encode(v);
  return out;
}

/** Annotation choosing how a Service's proxy balances new connections. */
export const LOAD_BALANCING_ANNOTATION = 'flotilla.dev/load-balancing';
export const LOAD_BALANCING = ['round-robin', 'least-connections'] as const;
/** NodePorts come from this range, as in Kubernetes. */
export const NODE_PORT_RANGE = [30000, 32767] as const;

const servicePort = z.strictObject({
  name: labelName.max(15).optional(),
  protocol: z.literal('TCP', { error: 'only TCP is supported' }).default('TCP'),
  port: z.number().int().min(1).max(65535),
  targetPort: z.union([z.number().int().min(1).max(65535), z.string().max(15).regex(DNS1123_LABEL, 'must be a port number or the name of a container port')]).optional(),
  nodePort: z.number().int().min(NODE_PORT_RANGE[0]).max(NODE_PORT_RANGE[1]).optional(),
});

const serviceSchema = z
  .strictObject({
    apiVersion: z.literal('v1'),
    kind: z.literal('Service'),
    // The name is a host name inside pods and an env var prefix: a DNS-1123 label.
    metadata: metadata.extend({ name: labelName }),
    spec: z.strictObject({
      type: z.enum(['ClusterIP', 'NodePort']).default('ClusterIP'),
      selector: labels.optional(),
      ports: z.array(servicePort).min(1, 'a service needs at least one port'),
      // server-owned, ignored on input
      clusterIP: z.string().optional(),
    }),
    status: z.unknown().optional(),
  })
  .superRefine((d, ctx) => {
    const names = new Set<string>();
    const ports = new Set<number>();
    const nodePorts = new Set<number>();
    d.spec.ports.forEach((p, i) => {
      if (d.spec.ports.length > 1 && !p.name) ctx.addIssue({ code: 'custom', path: ['spec', 'ports', i, 'name'], message: 'is required when a service has more than one port' });
      if (p.name && names.has(p.name)) ctx.addIssue({ code: 'custom', path: ['spec', 'ports', i, 'name'], message: `duplicate port name "${p.name}"` });
      if (p.name) names.add(p.name);
      if (ports.has(p.port)) ctx.addIssue({ code: 'custom', path: ['spec', 'ports', i, 'port'], message: `duplicate port ${p.port}` });
      ports.add(p.port);
      if (p.nodePort !== undefined && d.spec.type !== 'NodePort') ctx.addIssue({ code: 'custom', path: ['spec', 'ports', i, 'nodePort'], message: 'may only be set when type is NodePort' });
      if (p.nodePort !== undefined && nodePorts.has(p.nodePort)) ctx.addIssue({ code: 'custom', path: ['spec', 'ports', i, 'nodePort'], message: `duplicate nodePort ${p.nodePort}` });
      if (p.nodePort !== undefined) nodePorts.add(p.nodePort);
    });
    const lb = d.metadata.annotations?.[LOAD_BALANCING_ANNOTATION];
    if (lb !== undefined && !(LOAD_BALANCING as readonly string[]).includes(lb))
      ctx.addIssue({ code: 'custom', path: ['metadata', 'annotations', LOAD_BALANCING_ANNOTATION], message: `must be one of ${LOAD_BALANCING.join(', ')}` });
  });

/** A validated Service manifest with defaults applied. */
export type ServiceManifest = z.infer<typeof serviceSchema>;
export type ServicePort = ServiceManifest['spec']['ports'][number];

/** Annotation choosing what happens to a claim's data when the claim is deleted: Delete (default) or Retain. */
export const RECLAIM_POLICY_ANNOTATION = 'flotilla.dev/reclaim-policy';
/** The one storage class: Docker named volumes on the node the claim binds to. */
export const LOCAL_STORAGE_CLASS = 'local';

const claimSchema = z
  .strictObject({
    apiVersion: z.literal('v1'),
    kind: z.literal('PersistentVolumeClaim'),
    metadata: metadata.extend({ name: labelName }),
    spec: z.strictObject({
      storageClassName: z.literal(LOCAL_STORAGE_CLASS, { error: `only the "${LOCAL_STORAGE_CLASS}" storage class exists (Docker named volumes on one node)` }).default(LOCAL_STORAGE_CLASS),
      accessModes: z
        .array(z.literal('ReadWriteOnce', { error: 'a local volume lives on one node: only ReadWriteOnce' }))
        .min(1)
        .default(['ReadWriteOnce']),
      resources: z.strictObject({
        requests: z.strictObject({
          storage: z.union([z.string(), z.number()]).superRefine((v, ctx) => {
            const b = parseMemory(v);
            if (b === null || b <= 0) ctx.addIssue({ code: 'custom', message: `not a size: ${JSON.stringify(v)} (use bytes or a suffix: 1Gi, 500Mi)` });
          }),
        }),
      }),
      // server-owned, ignored on input
      volumeName: z.string().optional(),
      volumeMode: z.literal('Filesystem').optional(),
    }),
    status: z.unknown().optional(),
  })
  .superRefine((d, ctx) => {
    const r = d.metadata.annotations?.[RECLAIM_POLICY_ANNOTATION];
    if (r !== undefined && r !== 'Delete' && r !== 'Retain') ctx.addIssue({ code: 'custom', path: ['metadata', 'annotations', RECLAIM_POLICY_ANNOTATION], message: 'must be Delete or Retain' });
  });

/** A validated PersistentVolumeClaim manifest with defaults applied. */
export type ClaimManifest = z.infer<typeof claimSchema>;

/** Names of the PersistentVolumeClaims a pod spec mounts. */
export function claimNames(spec: unknown): string[] {
  const out = new Set<string>();
  for (const v of (spec as { volumes?: { persistentVolumeClaim?: { claimName: string } }[] }).volumes ?? []) if (v.persistentVolumeClaim) out.add(v.persistentVolumeClaim.claimName);
  return [...out];
}

export type Manifest = Deployment | DaemonSet | NamespaceManifest | SecretManifest | ConfigMapManifest | ServiceManifest | ClaimManifest;

const KINDS: Record<string, { apiVersion: string; schema: z.ZodType }> = {
  Deployment: { apiVersion: 'apps/v1', schema: deploymentSchema },
  DaemonSet: { apiVersion: 'apps/v1', schema: daemonSetSchema },
  Namespace: { apiVersion: 'v1', schema: namespaceSchema },
  Secret: { apiVersion: 'v1', schema: secretSchema },
  ConfigMap: { apiVersion: 'v1', schema: configMapSchema },
  Service: { apiVersion: 'v1', schema: serviceSchema },
  PersistentVolumeClaim: { apiVersion: 'v1', schema: claimSchema },
};

/** The kinds `apply` understands, with their apiVersion. */
export const SUPPORTED_KINDS = Object.keys(KINDS);

/** The schema a manifest of `kind` is validated with (for the OpenAPI document). */
export function manifestSchemaOf(kind: string): z.ZodType | undefined {
  return KINDS[kind]?.schema;
}

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

/** Validates a workload (Deployment or DaemonSet). */
export function parseWorkload(doc: unknown): Workload {
  const m = parseManifest(doc);
  if (m.kind !== 'Deployment' && m.kind !== 'DaemonSet') throw invalid(`expected a workload (Deployment or DaemonSet), got ${m.kind}`, [{ path: 'kind', message: 'expected Deployment or DaemonSet' }]);
  return m;
}

/** Summed resource requests of a pod (millicores, bytes). A limit without a request is the request, as in Kubernetes. */
export function podRequests(spec: PodSpec): { cpu: number; memory: number } {
  let cpu = 0;
  let memory = 0;
  for (const c of spec.containers) {
    const cq = c.resources?.requests?.cpu ?? c.resources?.limits?.cpu;
    const mq = c.resources?.requests?.memory ?? c.resources?.limits?.memory;
    cpu += cq !== undefined ? (parseCpu(cq) ?? 0) : 0;
    memory += mq !== undefined ? (parseMemory(mq) ?? 0) : 0;
  }
  return { cpu, memory };
}

/** Host ports a pod binds, as "TCP/8080". */
export function podHostPorts(spec: PodSpec): string[] {
  // With hostNetwork every container port is a port of the node.
  return spec.containers.flatMap((c) => (c.ports ?? []).flatMap((p) => (p.hostPort || spec.hostNetwork ? [`${p.protocol}/${p.hostPort ?? p.containerPort}`] : [])));
}

/** What a workload's pods do when their node disconnects: DaemonSets keep running, Deployments move. */
export function disconnectPolicy(kind: Workload['kind'], annotations: Record<string, string> | undefined): 'keep' | 'stop' {
  const a = annotations?.[DISCONNECT_ANNOTATION];
  if (a === 'keep' || a === 'stop') return a;
  return kind === 'DaemonSet' ? 'keep' : 'stop';
}

/** Names of the Secrets (or ConfigMaps) a pod spec refers to. */
export function referencedNames(spec: unknown, kind: 'Secret' | 'ConfigMap'): Set<string> {
  const out = new Set<string>();
  const s = spec as {
    containers?: { env?: { valueFrom?: { secretKeyRef?: { name: string }; configMapKeyRef?: { name: string } } }[]; envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[] }[];
    volumes?: { secret?: { secretName: string }; configMap?: { name: string } }[];
    imagePullSecrets?: { name: string }[];
  };
  for (const c of s.containers ?? []) {
    for (const e of c.env ?? []) {
      const r = kind === 'Secret' ? e.valueFrom?.secretKeyRef : e.valueFrom?.configMapKeyRef;
      if (r) out.add(r.name);
    }
    for (const e of c.envFrom ?? []) {
      const r = kind === 'Secret' ? e.secretRef : e.configMapRef;
      if (r) out.add(r.name);
    }
  }
  for (const v of s.volumes ?? []) {
    const n = kind === 'Secret' ? v.secret?.secretName : v.configMap?.name;
    if (n) out.add(n);
  }
  if (kind === 'Secret') for (const p of s.imagePullSecrets ?? []) out.add(p.name);
  return out;
}

/** Names of the Secrets and ConfigMaps a pod spec consumes as environment (a change restarts its pods). */
export function envReferencedNames(spec: unknown): Set<string> {
  const out = new Set<string>();
  const s = spec as {
    containers?: { env?: { valueFrom?: { secretKeyRef?: { name: string }; configMapKeyRef?: { name: string } } }[]; envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[] }[];
  };
  for (const c of s.containers ?? []) {
    for (const e of c.env ?? []) {
      if (e.valueFrom?.secretKeyRef) out.add(`Secret/${e.valueFrom.secretKeyRef.name}`);
      if (e.valueFrom?.configMapKeyRef) out.add(`ConfigMap/${e.valueFrom.configMapKeyRef.name}`);
    }
    for (const e of c.envFrom ?? []) {
      if (e.secretRef) out.add(`Secret/${e.secretRef.name}`);
      if (e.configMapRef) out.add(`ConfigMap/${e.configMapRef.name}`);
    }
  }
  return out;
}

/** Whether a label selector (matchLabels semantics) selects these labels; an empty or missing selector selects nothing. */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}
