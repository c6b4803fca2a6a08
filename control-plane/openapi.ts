import { z } from 'zod';
import { manifestSchemaOf } from '../shared/manifest.js';
import { desiredStateSchema, enrollRequestSchema, heartbeatRequestSchema, logChunkSchema, metricsReportSchema, volumesRemovedSchema } from '../shared/protocol.js';
import { apiTokenBody, enrollmentTokenBody, nodePatchBody } from './routes/admin.js';

// The OpenAPI 3.1 document of the HTTP API, served at /v1/openapi.json. Request bodies are the very
// zod schemas the routes validate with (converted with zod's JSON Schema output, draft 2020-12, which
// is OpenAPI 3.1's dialect); responses are described by the schemas below. The contract test checks
// that every route the app registers is here (and nothing else), that the document is valid
// OpenAPI 3.1, and that real responses validate against it.

type Json = Record<string, unknown>;

function jsonSchema(s: z.ZodType): Json {
  const { $schema: _, ...rest } = z.toJSONSchema(s, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as Json;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

// ---- response shapes ----

const objectMeta = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  resourceVersion: z.string().regex(/^\d+$/).optional().describe("The seq of the object's latest change: send it back in If-Match (or metadata.resourceVersion) to make a write conditional"),
  creationTimestamp: z.string().optional(),
});
const anObject = z.looseObject({ apiVersion: z.string(), kind: z.string(), metadata: objectMeta });
const listMeta = z.looseObject({
  resourceVersion: z.string().regex(/^\d+$/).describe('Watch from here (?watch=1&resourceVersion=...) to see every later change'),
  continue: z.string().optional().describe('Pass as ?continue= for the next page'),
  remainingItemCount: z.number().int().optional(),
});
const watchEvents = z.strictObject({
  apiVersion: z.literal('v1'),
  kind: z.literal('WatchEventList'),
  metadata: z.strictObject({ resourceVersion: z.string().regex(/^\d+$/).describe('Continue the watch from here') }),
  items: z.array(z.strictObject({ type: z.enum(['ADDED', 'MODIFIED', 'DELETED']), object: anObject })),
});
const problem = z.looseObject({
  type: z.string().describe('Stable: https://flotilla.dev/problems/<code>'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  errors: z
    .array(z.strictObject({ path: z.string(), message: z.string() }))
    .optional()
    .describe('Validation: each bad field by path'),
  requestId: z.string().optional(),
});
const status = z.looseObject({ apiVersion: z.literal('v1'), kind: z.literal('Status'), status: z.literal('Success'), details: z.looseObject({}) });
const dryRun = z.strictObject({
  apiVersion: z.literal('v1'),
  kind: z.literal('DryRunResult'),
  dryRun: z.literal(true),
  outcome: z.enum(['created', 'configured', 'unchanged', 'deleted']),
  object: z.strictObject({ kind: z.string(), namespace: z.string(), name: z.string() }),
  changes: z.array(z.strictObject({ path: z.string(), op: z.enum(['add', 'remove', 'replace']), from: z.unknown().optional(), to: z.unknown().optional() })),
});

const SCHEMAS: Record<string, Json> = {
  Object: jsonSchema(anObject),
  ObjectMeta: jsonSchema(objectMeta),
  ListMeta: jsonSchema(listMeta),
  WatchEventList: jsonSchema(watchEvents),
  Problem: jsonSchema(problem),
  Status: jsonSchema(status),
  DryRunResult: jsonSchema(dryRun),
  Health: jsonSchema(z.strictObject({ status: z.enum(['ok', 'degraded']), version: z.string(), problems: z.array(z.string()).optional() })),
  Jwks: jsonSchema(z.looseObject({ keys: z.array(z.looseObject({ kty: z.string(), kid: z.string().optional() })) })),
  TokenCreated: jsonSchema(z.looseObject({ id: z.string(), token: z.string().describe('Shown once; only its hash is stored') })),
  RawList: jsonSchema(z.looseObject({ items: z.array(z.looseObject({})) })),
  RevisionList: jsonSchema(
    z.strictObject({
      kind: z.literal('RevisionList'),
      items: z.array(z.strictObject({ revision: z.number().int(), current: z.boolean(), digest: z.string(), images: z.array(z.string()), changeCause: z.string().nullable(), createdAt: z.string() })),
    }),
  ),
  Scale: jsonSchema(z.looseObject({ kind: z.literal('Scale'), spec: z.strictObject({ replicas: z.number().int() }) })),
  EnrollResponse: jsonSchema(z.looseObject({ nodeId: z.string(), name: z.string(), audience: z.string(), issuer: z.string() })),
  DesiredState: jsonSchema(desiredStateSchema),
  HeartbeatResponse: jsonSchema(
    z.looseObject({ leases: z.record(z.string(), z.string()), nextHeartbeatMs: z.number().int(), desiredVersion: z.string(), pollIntervalMs: z.number().int().optional() }),
  ),
  PodConfig: jsonSchema(z.looseObject({ jwe: z.string(), versions: z.record(z.string(), z.number()), missing: z.array(z.looseObject({})) })),
  Endpoints: jsonSchema(
    z.looseObject({
      apiVersion: z.literal('v1'),
      kind: z.literal('Endpoints'),
      metadata: z.looseObject({ name: z.string(), namespace: z.string(), resourceVersion: z.string().describe('A hash of the endpoints: equal exactly when they are') }),
      subsets: z.array(z.looseObject({})),
    }),
  ),
  Manifest: { description: 'A manifest of the kind the path names (Deployment, DaemonSet, Secret, ConfigMap, Service, PersistentVolumeClaim, Namespace)', type: 'object' },
};
for (const kind of ['Deployment', 'DaemonSet', 'Namespace', 'Secret', 'ConfigMap', 'Service', 'PersistentVolumeClaim']) {
  const s = manifestSchemaOf(kind);
  if (s) SCHEMAS[kind] = jsonSchema(s);
}

/** A list of `itemKind` objects (the Kubernetes List shape, with resourceVersion and paging). */
function listSchema(kind: string): Json {
  return {
    type: 'object',
    required: ['apiVersion', 'kind', 'items'],
    properties: { apiVersion: { type: 'string' }, kind: { const: kind }, metadata: ref('ListMeta'), items: { type: 'array', items: ref('Object') } },
  };
}

// ---- operations ----

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Auth = 'operator' | 'node' | 'none';

interface Op {
  method: Method;
  path: string;
  summary: string;
  tag: string;
  auth: Auth;
  scope?: 'read' | 'deploy' | 'admin';
  body?: Json;
  yaml?: boolean;
  params?: Json[];
  ok: { status: number; description: string; schema?: Json; type?: string };
  errors?: number[];
}

const p = {
  ns: { name: 'ns', in: 'path', required: true, description: 'Namespace (a DNS-1123 label)', schema: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 } },
  name: { name: 'name', in: 'path', required: true, description: 'Object name', schema: { type: 'string' } },
  id: { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
  labelSelector: {
    name: 'labelSelector',
    in: 'query',
    description: 'Kubernetes label selector: k=v, k!=v, k in (a,b), k notin (a), k, !k; comma-separated (all must hold)',
    schema: { type: 'string' },
  },
  limit: { name: 'limit', in: 'query', description: 'Page size (the rest follows with continue)', schema: { type: 'integer', minimum: 0, maximum: 5000 } },
  continue: { name: 'continue', in: 'query', description: 'metadata.continue of the previous page', schema: { type: 'string' } },
  watch: { name: 'watch', in: 'query', description: '1: long-poll for changes after resourceVersion (a WatchEventList)', schema: { type: 'string', enum: ['1', 'true'] } },
  resourceVersion: {
    name: 'resourceVersion',
    in: 'query',
    description: 'With watch: the version to see changes after (from a list or the previous watch answer); 410 when older than the history kept',
    schema: { type: 'string', pattern: '^\\d+$' },
  },
  timeoutSeconds: { name: 'timeoutSeconds', in: 'query', description: 'With watch: the longest to wait for a change (default 30, at most 300)', schema: { type: 'integer', minimum: 0, maximum: 300 } },
  dryRun: { name: 'dryRun', in: 'query', description: 'All: validate and report the outcome and changes; store nothing', schema: { type: 'string', enum: ['All'] } },
  ifMatch: { name: 'If-Match', in: 'header', description: 'Write only if the object is at this resourceVersion (else 409 with what changed)', schema: { type: 'string' } },
};
const LIST_PARAMS = [p.labelSelector, p.limit, p.continue, p.watch, p.resourceVersion, p.timeoutSeconds];
const listOk = (kind: string) => ({ status: 200, description: `The ${kind}, or with watch=1 the changes`, schema: { anyOf: [listSchema(kind), ref('WatchEventList')] } });
const objectOk = (description: string) => ({ status: 200, description, schema: ref('Object') });

function ops(): Op[] {
  const out: Op[] = [
    {
      method: 'get',
      path: '/healthz',
      summary: 'Liveness and degraded parts (503 when degraded)',
      tag: 'General',
      auth: 'none',
      ok: { status: 200, description: 'Healthy', schema: ref('Health') },
      errors: [503],
    },
    { method: 'get', path: '/.well-known/jwks.json', summary: 'Public keys that verify work leases', tag: 'General', auth: 'none', ok: { status: 200, description: 'JWKS', schema: ref('Jwks') } },
    {
      method: 'get',
      path: '/metrics',
      summary: 'Prometheus counters of this instance',
      tag: 'General',
      auth: 'operator',
      scope: 'read',
      ok: { status: 200, description: 'Prometheus text', type: 'text/plain' },
    },
    { method: 'get', path: '/v1/openapi.json', summary: 'This document', tag: 'General', auth: 'operator', scope: 'read', ok: { status: 200, description: 'OpenAPI 3.1', schema: { type: 'object' } } },
    {
      method: 'get',
      path: '/docs',
      summary: 'Interactive API reference (HTML; asks for a token to load the document)',
      tag: 'General',
      auth: 'none',
      ok: { status: 200, description: 'HTML page', type: 'text/html' },
    },
    // Cluster administration.
    {
      method: 'post',
      path: '/v1/enrollment-tokens',
      summary: 'Create an enrollment token for agents',
      tag: 'Cluster',
      auth: 'operator',
      scope: 'admin',
      body: jsonSchema(enrollmentTokenBody),
      ok: { status: 201, description: 'Created (the token is shown once)', schema: ref('TokenCreated') },
    },
    {
      method: 'get',
      path: '/v1/enrollment-tokens',
      summary: 'List enrollment tokens (never their values)',
      tag: 'Cluster',
      auth: 'operator',
      scope: 'admin',
      ok: { status: 200, description: 'Tokens', schema: ref('RawList') },
    },
    {
      method: 'delete',
      path: '/v1/enrollment-tokens/{id}',
      summary: 'Revoke an enrollment token',
      tag: 'Cluster',
      auth: 'operator',
      scope: 'admin',
      params: [p.id],
      ok: { status: 200, description: 'Revoked', schema: { type: 'object' } },
    },
    {
      method: 'post',
      path: '/v1/api-tokens',
      summary: 'Create an operator API token',
      tag: 'Cluster',
      auth: 'operator',
      scope: 'admin',
      body: jsonSchema(apiTokenBody),
      ok: { status: 201, description: 'Created (the token is shown once)', schema: ref('TokenCreated') },
    },
    {
      method: 'get',
      path: '/v1/api-tokens',
      summary: 'List API tokens (never their values)',
      tag: 'Cluster',
      auth: 'operator',
      scope: 'admin',
      ok: { status: 200, description: 'Tokens', schema: ref('RawList') },
    },
    {
      method: 'delete',
      path: '/v1/api-tokens/{id}',
      summary: 'Revoke an API token',
      tag: 'Cluster',
      auth: 'operator',
      scope: 'admin',
      params: [p.id],
      ok: { status: 200, description: 'Revoked', schema: { type: 'object' } },
    },
    { method: 'get', path: '/v1/nodes', summary: 'List nodes, or watch them', tag: 'Nodes', auth: 'operator', scope: 'read', params: LIST_PARAMS, ok: listOk('NodeList') },
    { method: 'get', path: '/v1/nodes/{name}', summary: 'Read a node', tag: 'Nodes', auth: 'operator', scope: 'read', params: [p.name], ok: objectOk('The node') },
    {
      method: 'patch',
      path: '/v1/nodes/{name}',
      summary: "Change a node's labels, taints, schedulability or allocatable",
      tag: 'Nodes',
      auth: 'operator',
      scope: 'admin',
      params: [p.name],
      body: jsonSchema(nodePatchBody),
      ok: objectOk('The node'),
    },
    ...(['cordon', 'uncordon', 'drain'] as const).map(
      (v): Op => ({
        method: 'post',
        path: `/v1/nodes/{name}/${v}`,
        summary: `${v[0]?.toUpperCase()}${v.slice(1)} a node`,
        tag: 'Nodes',
        auth: 'operator',
        scope: 'admin',
        params: [p.name],
        ok: objectOk('The node, with the pods still on it'),
      }),
    ),
    {
      method: 'post',
      path: '/v1/nodes/{name}/revoke',
      summary: 'Revoke a node: its identity stops working, its pods move',
      tag: 'Nodes',
      auth: 'operator',
      scope: 'admin',
      params: [p.name],
      ok: { status: 200, description: 'Revoked', schema: { type: 'object' } },
    },
    {
      method: 'post',
      path: '/v1/keys/rotate',
      summary: 'Rotate the lease-signing key',
      tag: 'Cluster',
      auth: 'operator',
      scope: 'admin',
      ok: { status: 200, description: 'The new key id', schema: { type: 'object' } },
    },
    {
      method: 'post',
      path: '/v1/keys/rotate-secrets',
      summary: 'Re-seal Secrets under the current master key',
      tag: 'Cluster',
      auth: 'operator',
      scope: 'admin',
      ok: { status: 200, description: 'How many were re-sealed', schema: { type: 'object' } },
      errors: [503],
    },
    {
      method: 'get',
      path: '/v1/events',
      summary: "The cluster's event log (all namespaces and nodes)",
      tag: 'Cluster',
      auth: 'operator',
      scope: 'admin',
      params: [
        { name: 'limit', in: 'query', schema: { type: 'integer' } },
        { name: 'after', in: 'query', description: 'Only events after this id', schema: { type: 'integer' } },
      ],
      ok: { status: 200, description: 'Events', schema: ref('RawList') },
    },
    {
      method: 'get',
      path: '/v1/namespaces',
      summary: 'List namespaces',
      tag: 'Namespaces',
      auth: 'operator',
      scope: 'read',
      ok: { status: 200, description: 'Namespaces', schema: listSchema('NamespaceList') },
    },
    {
      method: 'put',
      path: '/v1/namespaces/{ns}',
      summary: 'Create a namespace',
      tag: 'Namespaces',
      auth: 'operator',
      scope: 'deploy',
      params: [p.ns],
      body: ref('Namespace'),
      yaml: true,
      ok: objectOk('The namespace'),
    },
    // Pods, events, logs.
    {
      method: 'get',
      path: '/v1/pods',
      summary: 'List pods of every namespace the token may read, or watch them',
      tag: 'Pods',
      auth: 'operator',
      scope: 'read',
      params: LIST_PARAMS,
      ok: listOk('PodList'),
    },
    { method: 'get', path: '/v1/namespaces/{ns}/pods', summary: 'List pods, or watch them', tag: 'Pods', auth: 'operator', scope: 'read', params: [p.ns, ...LIST_PARAMS], ok: listOk('PodList') },
    { method: 'get', path: '/v1/namespaces/{ns}/pods/{name}', summary: 'Read a pod', tag: 'Pods', auth: 'operator', scope: 'read', params: [p.ns, p.name], ok: objectOk('The pod') },
    {
      method: 'get',
      path: '/v1/namespaces/{ns}/pods/{name}/log',
      summary: "A container's log, fetched from the pod's node through the control plane (streamed; follow keeps it open)",
      tag: 'Pods',
      auth: 'operator',
      scope: 'read',
      params: [
        p.ns,
        p.name,
        { name: 'container', in: 'query', schema: { type: 'string' } },
        { name: 'tailLines', in: 'query', schema: { type: 'integer', minimum: 0 } },
        { name: 'sinceSeconds', in: 'query', schema: { type: 'integer', minimum: 1 } },
        { name: 'follow', in: 'query', schema: { type: 'string', enum: ['1', 'true'] } },
        { name: 'limitBytes', in: 'query', schema: { type: 'integer', minimum: 1 } },
      ],
      ok: { status: 200, description: 'The log text', type: 'text/plain' },
      errors: [409, 429, 504],
    },
    {
      method: 'get',
      path: '/v1/namespaces/{ns}/events',
      summary: 'Recent events of a namespace (newest `limit`), or watch them',
      tag: 'Events',
      auth: 'operator',
      scope: 'read',
      params: [
        p.ns,
        { name: 'limit', in: 'query', schema: { type: 'integer' } },
        { name: 'kind', in: 'query', schema: { type: 'string' } },
        { name: 'name', in: 'query', schema: { type: 'string' } },
        p.watch,
        p.resourceVersion,
        p.timeoutSeconds,
      ],
      ok: listOk('EventList'),
    },
    {
      method: 'get',
      path: '/v1/namespaces/{ns}/endpoints',
      summary: 'Endpoints of every service of a namespace',
      tag: 'Services',
      auth: 'operator',
      scope: 'read',
      params: [p.ns],
      ok: {
        status: 200,
        description: 'Endpoints',
        schema: { type: 'object', required: ['items'], properties: { kind: { const: 'EndpointsList' }, items: { type: 'array', items: ref('Endpoints') } } },
      },
    },
    {
      method: 'get',
      path: '/v1/namespaces/{ns}/services/{name}/endpoints',
      summary: "A service's endpoints; with watch=1 and resourceVersion, waits until they differ",
      tag: 'Services',
      auth: 'operator',
      scope: 'read',
      params: [p.ns, p.name, p.watch, { ...p.resourceVersion, schema: { type: 'string' } }, p.timeoutSeconds],
      ok: { status: 200, description: 'The endpoints', schema: ref('Endpoints') },
    },
    // Metrics.
    {
      method: 'get',
      path: '/v1/metrics/nodes',
      summary: "Nodes' resource use as their agents last reported it",
      tag: 'Metrics',
      auth: 'operator',
      scope: 'read',
      ok: { status: 200, description: 'NodeMetricsList', schema: listSchema('NodeMetricsList') },
    },
    {
      method: 'get',
      path: '/v1/metrics/pods',
      summary: "Pods' resource use (every namespace the token may read)",
      tag: 'Metrics',
      auth: 'operator',
      scope: 'read',
      ok: { status: 200, description: 'PodMetricsList', schema: listSchema('PodMetricsList') },
    },
    {
      method: 'get',
      path: '/v1/namespaces/{ns}/metrics/pods',
      summary: "Pods' resource use in a namespace",
      tag: 'Metrics',
      auth: 'operator',
      scope: 'read',
      params: [p.ns],
      ok: { status: 200, description: 'PodMetricsList', schema: listSchema('PodMetricsList') },
    },
    // Agents.
    {
      method: 'post',
      path: '/v1/agent/enroll',
      summary: 'Enroll a node with an enrollment token (in the body)',
      tag: 'Agent',
      auth: 'none',
      body: jsonSchema(enrollRequestSchema),
      ok: { status: 201, description: 'Enrolled', schema: ref('EnrollResponse') },
      errors: [401, 409, 429],
    },
    {
      method: 'get',
      path: '/v1/agent/desired',
      summary: "The node's desired state with signed leases (ETag; long-poll on Node)",
      tag: 'Agent',
      auth: 'node',
      params: [{ name: 'If-None-Match', in: 'header', schema: { type: 'string' } }],
      ok: { status: 200, description: 'Desired state (304 when unchanged)', schema: ref('DesiredState') },
      errors: [304],
    },
    {
      method: 'post',
      path: '/v1/agent/heartbeat',
      summary: 'Liveness, lease renewal, pod statuses and events',
      tag: 'Agent',
      auth: 'node',
      body: jsonSchema(heartbeatRequestSchema),
      ok: { status: 200, description: 'Renewed leases and when to come back', schema: ref('HeartbeatResponse') },
    },
    {
      method: 'get',
      path: '/v1/agent/pods/{id}/config',
      summary: "A pod's Secrets and ConfigMaps, encrypted to the node (JWE), under a live lease",
      tag: 'Agent',
      auth: 'node',
      params: [p.id],
      ok: { status: 200, description: 'JWE', schema: ref('PodConfig') },
      errors: [503],
    },
    {
      method: 'post',
      path: '/v1/agent/logs/{id}',
      summary: 'A chunk of a container log for an open log request',
      tag: 'Agent',
      auth: 'node',
      params: [p.id],
      body: jsonSchema(logChunkSchema),
      ok: { status: 200, description: 'Whether the request is closed', schema: { type: 'object', properties: { closed: { type: 'boolean' } } } },
    },
    {
      method: 'post',
      path: '/v1/agent/metrics',
      summary: "The node's and its pods' resource use",
      tag: 'Agent',
      auth: 'node',
      body: jsonSchema(metricsReportSchema),
      ok: { status: 200, description: 'Recorded', schema: { type: 'object', properties: { pods: { type: 'integer' } } } },
    },
    {
      method: 'post',
      path: '/v1/agent/volumes/removed',
      summary: 'Acknowledge removed claim volumes',
      tag: 'Agent',
      auth: 'node',
      body: jsonSchema(volumesRemovedSchema),
      ok: { status: 200, description: 'Recorded', schema: { type: 'object' } },
    },
  ];

  // Namespaced objects applied from manifests: list (one namespace, all), apply, read, delete.
  const KINDS: Array<[string, string, string, string]> = [
    ['deployments', 'Deployment', 'apps/v1', 'Workloads'],
    ['daemonsets', 'DaemonSet', 'apps/v1', 'Workloads'],
    ['secrets', 'Secret', 'v1', 'Config'],
    ['configmaps', 'ConfigMap', 'v1', 'Config'],
    ['services', 'Service', 'v1', 'Services'],
    ['persistentvolumeclaims', 'PersistentVolumeClaim', 'v1', 'Storage'],
  ];
  for (const [plural, kind, , tag] of KINDS) {
    const secret = kind === 'Secret';
    const extra = secret ? [503] : [];
    out.push(
      {
        method: 'get',
        path: `/v1/${plural}`,
        summary: `List ${kind}s of every namespace the token may read, or watch them`,
        tag,
        auth: 'operator',
        scope: 'read',
        params: LIST_PARAMS,
        ok: listOk(`${kind}List`),
      },
      {
        method: 'get',
        path: `/v1/namespaces/{ns}/${plural}`,
        summary: `List ${kind}s, or watch them`,
        tag,
        auth: 'operator',
        scope: 'read',
        params: [p.ns, ...LIST_PARAMS],
        ok: listOk(`${kind}List`),
      },
      {
        method: 'put',
        path: `/v1/namespaces/{ns}/${plural}/{name}`,
        summary: `Apply a ${kind} (create or update; idempotent; Flotilla-Outcome says which)${secret ? '; values are sealed at rest and never returned' : ''}`,
        tag,
        auth: 'operator',
        scope: 'deploy',
        params: [p.ns, p.name, p.dryRun, p.ifMatch],
        body: ref(kind),
        yaml: true,
        ok: { status: 200, description: `The ${kind} (201 when created; a DryRunResult with dryRun=All)`, schema: { anyOf: [ref('Object'), ref('DryRunResult')] } },
        errors: [201, ...extra],
      },
      {
        method: 'get',
        path: `/v1/namespaces/{ns}/${plural}/{name}`,
        summary: `Read a ${kind}${secret ? ' (key names and sizes, never values)' : ''}`,
        tag,
        auth: 'operator',
        scope: 'read',
        params: [p.ns, p.name],
        ok: objectOk(`The ${kind}`),
      },
      {
        method: 'delete',
        path: `/v1/namespaces/{ns}/${plural}/{name}`,
        summary: `Delete a ${kind}`,
        tag,
        auth: 'operator',
        scope: 'deploy',
        params: [p.ns, p.name, p.dryRun, p.ifMatch],
        ok: { status: 200, description: 'Deleted (a DryRunResult with dryRun=All)', schema: { anyOf: [ref('Status'), ref('DryRunResult'), ref('Object')] } },
      },
    );
    if (kind === 'Deployment' || kind === 'DaemonSet')
      out.push(
        {
          method: 'post',
          path: `/v1/namespaces/{ns}/${plural}`,
          summary: `Create a ${kind} (409 if it exists)`,
          tag,
          auth: 'operator',
          scope: 'deploy',
          params: [p.ns],
          body: ref(kind),
          yaml: true,
          ok: { status: 201, description: `The ${kind}`, schema: ref('Object') },
        },
        {
          method: 'post',
          path: `/v1/namespaces/{ns}/${plural}/{name}/rollback`,
          summary: "Roll back to an earlier revision's template (the previous one by default)",
          tag,
          auth: 'operator',
          scope: 'deploy',
          params: [p.ns, p.name],
          body: { type: 'object', properties: { toRevision: { type: 'integer', minimum: 1 } } },
          ok: objectOk(`The ${kind}`),
        },
        {
          method: 'post',
          path: `/v1/namespaces/{ns}/${plural}/{name}/restart`,
          summary: 'Restart every pod by a rolling update',
          tag,
          auth: 'operator',
          scope: 'deploy',
          params: [p.ns, p.name],
          ok: objectOk(`The ${kind}`),
        },
        {
          method: 'get',
          path: `/v1/namespaces/{ns}/${plural}/{name}/revisions`,
          summary: 'Revision history',
          tag,
          auth: 'operator',
          scope: 'read',
          params: [p.ns, p.name],
          ok: { status: 200, description: 'Revisions', schema: ref('RevisionList') },
        },
      );
  }
  out.push(
    {
      method: 'put',
      path: '/v1/namespaces/{ns}/deployments/{name}/scale',
      summary: 'Set the number of replicas',
      tag: 'Workloads',
      auth: 'operator',
      scope: 'deploy',
      params: [p.ns, p.name],
      body: { type: 'object', properties: { spec: { type: 'object', properties: { replicas: { type: 'integer', minimum: 0, maximum: 10000 } } } } },
      ok: { status: 200, description: 'Scale', schema: ref('Scale') },
    },
    ...(['pause', 'resume', 'promote'] as const).map(
      (v): Op => ({
        method: 'post',
        path: `/v1/namespaces/{ns}/deployments/{name}/${v}`,
        summary: v === 'promote' ? 'Promote a held canary to every replica' : `${v === 'pause' ? 'Pause' : 'Resume'} the rollout`,
        tag: 'Workloads',
        auth: 'operator',
        scope: 'deploy',
        params: [p.ns, p.name],
        ok: objectOk('The Deployment'),
      }),
    ),
  );
  return out;
}

const ERROR_TEXT: Record<number, string> = {
  304: 'Not modified (If-None-Match matched)',
  400: 'Malformed body',
  401: 'Missing or invalid credentials',
  403: 'The token lacks the scope or namespace',
  404: 'No such object',
  409: 'Conflict: exists, changed meanwhile, or a stale resourceVersion (says what changed)',
  410: 'The watch history no longer reaches back to resourceVersion: list again',
  413: 'Body too large',
  415: 'Unsupported content type',
  422: 'Invalid input: errors[] names each field path',
  429: 'Too many requests: retry after Retry-After seconds',
  503: 'Unavailable (for example Secrets without the right master key)',
  504: 'The node did not answer in time',
};

let cached: Json | undefined;

/** The OpenAPI 3.1 document of the API (built once). */
export function openApiDocument(version: string): Json {
  if (cached) return cached;
  const paths: Record<string, Record<string, Json>> = {};
  for (const op of ops()) {
    const codes = new Set(op.errors ?? []);
    if (op.auth !== 'none') codes.add(401).add(429);
    if (op.scope || op.auth === 'node') codes.add(403);
    if (op.body) for (const c of [400, 413, 415, 422]) codes.add(c);
    if ((op.params ?? []).some((x) => x.in === 'path')) codes.add(404);
    if ((op.params ?? []).some((x) => x.in === 'query')) codes.add(422);
    if (op.params?.includes(p.watch)) codes.add(410);
    if (op.method !== 'get') codes.add(409);
    codes.delete(op.ok.status);
    const responses: Record<string, Json> = {
      [String(op.ok.status)]: { description: op.ok.description, content: { [op.ok.type ?? 'application/json']: { schema: op.ok.schema ?? { type: 'string' } } } },
    };
    for (const c of [...codes].sort()) {
      if (c === 201) responses['201'] = { description: 'Created', content: { 'application/json': { schema: ref('Object') } } };
      else if (c === 304) responses['304'] = { description: ERROR_TEXT[304] as string };
      else responses[String(c)] = { description: ERROR_TEXT[c] ?? 'Error', content: { 'application/problem+json': { schema: ref('Problem') } } };
    }
    responses.default = { description: 'Any other error (500: internal, with the request id)', content: { 'application/problem+json': { schema: ref('Problem') } } };
    const body = op.body
      ? {
          required: true,
          content: {
            'application/json': { schema: op.body },
            ...(op.yaml ? { 'application/yaml': { schema: op.body } } : {}),
          },
        }
      : undefined;
    const operation: Json = {
      operationId: `${op.method}${op.path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_, ch: string | undefined) => (ch ?? '').toUpperCase())}`,
      summary: op.summary,
      tags: [op.tag],
      ...(op.auth === 'none' ? { security: [] } : { security: [op.auth === 'operator' ? { operatorToken: [] } : { nodeJwt: [] }] }),
      ...(op.scope ? { 'x-flotilla-scope': op.scope } : {}),
      ...(op.params?.length ? { parameters: op.params } : {}),
      ...(body ? { requestBody: body } : {}),
      responses,
    };
    paths[op.path] = { ...(paths[op.path] ?? {}), [op.method]: operation };
  }
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'Flotilla API',
      version,
      description:
        'Declarative desired state for fleets of edge and cloud machines. Objects have the Kubernetes shape (apiVersion, kind, metadata, spec, status). Every error is an RFC 9457 problem document (application/problem+json) with a stable type, and for validation a list of field paths. Every list takes labelSelector, limit and continue and has a resourceVersion; ?watch=1&resourceVersion=N long-polls for every change after N, once each and in order. Writes take If-Match (or metadata.resourceVersion) and ?dryRun=All. Every response carries X-Request-Id.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: '/' }],
    security: [{ operatorToken: [] }],
    tags: ['General', 'Cluster', 'Nodes', 'Namespaces', 'Workloads', 'Pods', 'Events', 'Config', 'Services', 'Storage', 'Metrics', 'Agent'].map((name) => ({ name })),
    paths,
    components: {
      schemas: SCHEMAS,
      securitySchemes: {
        operatorToken: { type: 'http', scheme: 'bearer', description: 'An operator API token (flo_...): scope admin, deploy or read, optionally limited to namespaces' },
        nodeJwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: "A short-lived EdDSA JWT signed by the node's enrolled key (sub: node id, aud: the cluster)" },
      },
    },
  };
  return cached;
}
