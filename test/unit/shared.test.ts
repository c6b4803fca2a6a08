import { describe, expect, it } from 'vitest';
import { canonicalJson, specDigest, timingSafeEqual } from '../../shared/digest.js';
import { parseDuration } from '../../shared/duration.js';
import { isFlotillaError } from '../../shared/errors.js';
import { checkLeaseClaims, type LeaseClaims } from '../../shared/lease.js';
import { parseManifest, podSpecSchema, rolloutBounds } from '../../shared/manifest.js';
import { parseLabelArgs } from '../../shared/names.js';
import { parseCpu, parseMemory } from '../../shared/quantity.js';
import { matchesSelector, parseSelector } from '../../shared/selector.js';
import { deploymentManifest } from '../lib/fixtures.js';

function errorsOf(doc: unknown): Array<{ path: string; message: string }> {
  try {
    parseManifest(doc);
  } catch (e) {
    if (isFlotillaError(e)) return e.errors;
    throw e;
  }
  throw new Error('expected the manifest to be rejected');
}

describe('manifest validation', () => {
  it('accepts a Kubernetes Deployment and applies defaults', () => {
    const m = parseManifest(deploymentManifest('web', { replicas: 3 }));
    expect(m.kind).toBe('Deployment');
    if (m.kind === 'Deployment') expect(m.spec.template.spec.containers[0]?.ports?.[0]?.protocol).toBe('TCP');
  });

  it('names the path of an unknown field', () => {
    const d = deploymentManifest('web');
    (d.spec.template.spec.containers[0] as Record<string, unknown>).livenessProb = {};
    expect(errorsOf(d)).toEqual([{ path: 'spec.template.spec.containers[0].livenessProb', message: 'unknown or unsupported field' }]);
  });

  it('rejects invalid DNS-1123 names, unknown kinds and wrong apiVersions', () => {
    expect(errorsOf(deploymentManifest('Web_1'))[0]?.path).toBe('metadata.name');
    expect(errorsOf({ ...deploymentManifest('web'), kind: 'StatefulSet' })[0]?.path).toBe('kind');
    expect(errorsOf({ ...deploymentManifest('web'), apiVersion: 'v1' })[0]?.path).toBe('apiVersion');
  });

  it('rejects a selector that does not match the template and duplicate ports', () => {
    const d = deploymentManifest('web');
    d.spec.selector.matchLabels = { app: 'other' };
    expect(errorsOf(d)[0]?.path).toBe('spec.template.metadata.labels');
    const d2 = deploymentManifest('web');
    d2.spec.template.spec.containers.push({ ...d2.spec.template.spec.containers[0], name: 'two' } as never);
    expect(errorsOf(d2).map((e) => e.path)).toContain('spec.template.spec.containers[1].ports[0].containerPort');
  });

  it('rejects bad container fields with their path', () => {
    const d = deploymentManifest('web');
    (d.spec.template.spec.containers[0] as Record<string, unknown>).ports = [{ containerPort: 70000 }];
    expect(errorsOf(d)[0]?.path).toBe('spec.template.spec.containers[0].ports[0].containerPort');
  });
});

describe('manifest validation: scheduling, resources and probes', () => {
  const ctr = 'spec.template.spec.containers[0]';
  const withContainer = (c: Record<string, unknown>) => deploymentManifest('web', { container: c });
  const withPod = (p: Record<string, unknown>) => deploymentManifest('web', { pod: p });

  it('accepts resources, affinity, tolerations, spread, probes and a DaemonSet', () => {
    const ok = parseManifest(
      deploymentManifest('web', {
        pod: {
          affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'site', operator: 'In', values: ['a'] }] }] } } },
          tolerations: [{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }],
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'site', whenUnsatisfiable: 'ScheduleAnyway' }],
          restartPolicy: 'OnFailure',
        },
        container: {
          resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: 1, memory: '128Mi' } },
          livenessProbe: { httpGet: { path: '/healthz', port: 80 } },
          readinessProbe: { tcpSocket: { port: 80 }, periodSeconds: 2 },
          startupProbe: { exec: { command: ['true'] }, failureThreshold: 30 },
        },
      }),
    );
    expect(ok.kind === 'Deployment' && ok.spec.template.spec.containers[0]?.livenessProbe).toMatchObject({ periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3, successThreshold: 1 });
    expect(parseManifest(deploymentManifest('ds', { kind: 'DaemonSet' })).kind).toBe('DaemonSet');
  });

  it('rejects impossible requests with the field path', () => {
    expect(errorsOf({ ...deploymentManifest('web'), spec: { ...deploymentManifest('web').spec, replicas: -1 } })[0]?.path).toBe('spec.replicas');
    expect(errorsOf(withContainer({ resources: { requests: { cpu: 'abc' } } }))[0]?.path).toBe(`${ctr}.resources.requests.cpu`);
    expect(errorsOf(withContainer({ resources: { requests: { memory: '12 parsecs' } } }))[0]?.path).toBe(`${ctr}.resources.requests.memory`);
    expect(errorsOf(withContainer({ resources: { requests: { cpu: '2' }, limits: { cpu: '1' } } }))[0]).toEqual({
      path: `${ctr}.resources.requests.cpu`,
      message: 'must be less than or equal to the cpu limit',
    });
  });

  it('rejects malformed selectors and tolerations', () => {
    const term = (e: Record<string, unknown>) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [e] }] } } } });
    expect(errorsOf(withPod(term({ key: 'site', operator: 'In' })))[0]?.path).toBe(
      'spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values',
    );
    expect(errorsOf(withPod(term({ key: 'site', operator: 'Near', values: ['a'] })))[0]?.path).toMatch(/matchExpressions\[0\]\.operator$/);
    expect(errorsOf(withPod({ tolerations: [{ key: 'k', operator: 'Exists', value: 'v' }] }))[0]?.path).toBe('spec.template.spec.tolerations[0].value');
    expect(errorsOf(withPod({ tolerations: [{ effect: 'NoSchedule' }] }))[0]?.path).toBe('spec.template.spec.tolerations[0].operator');
    expect(errorsOf(withPod({ nodeSelector: { 'bad key!': 'x' } }))[0]?.path).toBe('spec.template.spec.nodeSelector.bad key!');
  });

  it('rejects unknown probe kinds, two handlers, and probes on undeclared ports', () => {
    expect(errorsOf(withContainer({ livenessProbe: { grpc: { port: 80 } } }))).toContainEqual({ path: `${ctr}.livenessProbe.grpc`, message: 'unknown or unsupported field' });
    expect(errorsOf(withContainer({ livenessProbe: { httpGet: { port: 80 }, tcpSocket: { port: 80 } } }))[0]?.message).toMatch(/exactly one of/);
    expect(errorsOf(withContainer({ readinessProbe: { httpGet: { port: 8080 } } }))[0]?.path).toBe(`${ctr}.readinessProbe.httpGet.port`);
    expect(errorsOf(withContainer({ livenessProbe: { tcpSocket: { port: 'metrics' } } }))[0]?.message).toBe('no container port named "metrics"');
    expect(errorsOf(withContainer({ livenessProbe: { exec: { command: ['true'] }, successThreshold: 2 } }))[0]?.path).toBe(`${ctr}.livenessProbe.successThreshold`);
  });

  it('rejects httpGet probe headers that could never be sent, at apply only (agents still take a workload stored before)', () => {
    const get = (g: Record<string, unknown>) => withContainer({ readinessProbe: { httpGet: { port: 80, ...g } } });
    const at = `${ctr}.readinessProbe.httpGet.httpHeaders[0]`;
    expect(errorsOf(get({ httpHeaders: [{ name: 'X-Probe', value: 'a\r\nHost: elsewhere' }] }))[0]).toEqual({ path: `${at}.value`, message: 'must not contain line breaks' });
    expect(errorsOf(get({ httpHeaders: [{ name: 'X Probe', value: 'a' }] }))[0]?.path).toBe(`${at}.name`);
    // A path is sent percent-encoded (as fetch did), so it is not refused.
    const ok = parseManifest(get({ path: '/ready now?full=1', httpHeaders: [{ name: 'Authorization', value: 'Bearer a b' }] }));
    expect(ok.kind === 'Deployment' && ok.spec.template.spec.containers[0]?.readinessProbe?.httpGet).toMatchObject({ path: '/ready now?full=1' });
    // The pod spec an agent parses its desired state with does not re-check: a stored workload still arrives.
    const stored = { containers: [{ name: 'web', image: 'x', ports: [{ containerPort: 80 }], readinessProbe: { httpGet: { port: 80, httpHeaders: [{ name: 'X', value: 'a\nb' }] } } }] };
    expect(podSpecSchema.safeParse(stored).success).toBe(true);
  });

  it('rejects impossible rollout settings with the field path', () => {
    const withSpec = (extra: Record<string, unknown>) => {
      const d = deploymentManifest('web', { replicas: 4 });
      return { ...d, spec: { ...d.spec, ...extra } };
    };
    const ru = (maxSurge: unknown, maxUnavailable: unknown) => withSpec({ strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge, maxUnavailable } } });
    expect(errorsOf(ru(0, 0))[0]).toEqual({ path: 'spec.strategy.rollingUpdate.maxUnavailable', message: 'may not be 0 when maxSurge is 0' });
    expect(errorsOf(ru('0%', 0))[0]?.path).toBe('spec.strategy.rollingUpdate.maxUnavailable');
    expect(errorsOf(ru(-1, 1))[0]?.path).toBe('spec.strategy.rollingUpdate.maxSurge');
    expect(errorsOf(ru(1, '150%'))[0]).toEqual({ path: 'spec.strategy.rollingUpdate.maxUnavailable', message: 'must not be over 100%' });
    expect(errorsOf(ru('x', 1))[0]?.path).toBe('spec.strategy.rollingUpdate.maxSurge');
    expect(errorsOf(withSpec({ strategy: { type: 'Recreate', rollingUpdate: { maxSurge: 1 } } }))[0]?.path).toBe('spec.strategy.rollingUpdate');
    expect(errorsOf(withSpec({ minReadySeconds: 30, progressDeadlineSeconds: 10 }))[0]?.path).toBe('spec.progressDeadlineSeconds');
  });

  it('resolves rollout bounds like Kubernetes: surge rounds up, unavailable down, never both 0', () => {
    const d = parseManifest(deploymentManifest('web', { replicas: 10 }));
    if (d.kind !== 'Deployment') throw new Error('expected a Deployment');
    expect(rolloutBounds(d.spec)).toEqual({ maxSurge: 3, maxUnavailable: 2 });
    expect(rolloutBounds({ ...d.spec, replicas: 1 })).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    expect(rolloutBounds({ ...d.spec, replicas: 1, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '10%', maxUnavailable: '10%' } } })).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    expect(rolloutBounds({ ...d.spec, replicas: 1, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: '10%' } } })).toEqual({ maxSurge: 0, maxUnavailable: 1 });
  });

  it('rejects an invalid disconnect policy annotation', () => {
    expect(errorsOf(deploymentManifest('web', { annotations: { 'flotilla.dev/disconnect': 'maybe' } }))[0]?.path).toBe('metadata.annotations.flotilla.dev/disconnect');
  });
});

describe('lease claims', () => {
  const claims: LeaseClaims = { iss: 'i', aud: 'n1', sub: 'p1', node: 'n1', pod: 'p1', ns: 'default', workload: 'web', rev: 1, digest: 'd', epoch: 3, policy: 'stop', iat: 100, exp: 200 };
  const expect1 = { issuer: 'i', nodeId: 'n1', podId: 'p1', specDigest: 'd', minEpoch: 3, nowSeconds: 150 };
  it('accepts a lease for this node, pod, digest and epoch', () => {
    expect(checkLeaseClaims(claims, expect1)).toEqual({ ok: true });
  });
  it.each([
    ['another node', { node: 'n2', aud: 'n2' }, 'lease is for another node'],
    ['another pod', { pod: 'p2', sub: 'p2' }, 'lease is for another pod'],
    ['a different spec', { digest: 'x' }, 'spec digest does not match the lease'],
    ['a lower epoch', { epoch: 2 }, 'stale lease: epoch 2 < 3'],
    ['an expired lease', { exp: 150 }, 'lease expired'],
    ['another issuer', { iss: 'evil' }, 'issuer evil is not i'],
  ])('refuses %s', (_what, patch, reason) => {
    expect(checkLeaseClaims({ ...claims, ...patch }, expect1)).toEqual({ ok: false, reason });
  });
});

describe('helpers', () => {
  it('canonical JSON sorts keys at every level so digests are stable', async () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 1, e: 2 }], c: undefined } })).toBe('{"a":{"d":[1,{"e":2,"f":1}]},"b":1}');
    expect(await specDigest({ a: 1, b: 2 })).toBe(await specDigest({ b: 2, a: 1 }));
  });
  it('parses durations', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('10')).toBe(10_000);
    expect(parseDuration('1x')).toBeNull();
  });
  it('parses label flags and rejects bad ones', () => {
    expect(parseLabelArgs(['site=lab', 'flotilla.dev/tier=edge'])).toEqual({ site: 'lab', 'flotilla.dev/tier': 'edge' });
    expect(() => parseLabelArgs(['bad key=x'])).toThrow(/invalid label key/);
  });
  it('compares in constant time', () => {
    expect(timingSafeEqual('abc', 'abc')).toBe(true);
    expect(timingSafeEqual('abc', 'abd')).toBe(false);
    expect(timingSafeEqual('abc', 'ab')).toBe(false);
  });
});

describe('label selectors', () => {
  const l = { app: 'web', tier: 'front', 'flotilla.dev/zone': 'a' };
  it('parses every form and matches as Kubernetes does', () => {
    expect(matchesSelector(parseSelector(''), l)).toBe(true);
    expect(matchesSelector(parseSelector('app=web'), l)).toBe(true);
    expect(matchesSelector(parseSelector('app==web,tier=front'), l)).toBe(true);
    expect(matchesSelector(parseSelector('app!=web'), l)).toBe(false);
    expect(matchesSelector(parseSelector('missing!=x'), l)).toBe(true);
    expect(matchesSelector(parseSelector('tier in (back, front)'), l)).toBe(true);
    expect(matchesSelector(parseSelector('tier notin (front)'), l)).toBe(false);
    expect(matchesSelector(parseSelector('flotilla.dev/zone'), l)).toBe(true);
    expect(matchesSelector(parseSelector('!flotilla.dev/zone'), l)).toBe(false);
    expect(matchesSelector(parseSelector('!gpu'), l)).toBe(true);
    expect(matchesSelector(parseSelector('app=web,gpu'), l)).toBe(false);
  });
  it('refuses malformed selectors, naming what is wrong', () => {
    expect(() => parseSelector('app in (web')).toThrow(/unbalanced/);
    expect(() => parseSelector('app=web,')).toThrow(/empty requirement/);
    expect(() => parseSelector('app=we b')).toThrow(/not a valid label value/);
    expect(() => parseSelector('-app')).toThrow(/not a valid label key/);
  });
});

describe('quantities', () => {
  it('parses memory with every suffix, Ki included, and refuses others', () => {
    expect(parseMemory('562632Ki')).toBe(562632 * 1024);
    expect(parseMemory('1.5Gi')).toBe(1.5 * 1024 ** 3);
    expect(parseMemory('128Mi')).toBe(128 * 1024 ** 2);
    expect(parseMemory('1k')).toBe(1000);
    expect(parseMemory('1G')).toBe(1e9);
    expect(parseMemory('1ki')).toBeNull();
    expect(parseMemory('1K')).toBeNull();
    expect(parseMemory('12Xi')).toBeNull();
    expect(parseCpu('250m')).toBe(250);
    expect(parseCpu('1.5')).toBe(1500);
  });
});
