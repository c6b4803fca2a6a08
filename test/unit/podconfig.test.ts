import { describe, expect, it } from 'vitest';
import { ConfigError, containerEnv } from '../../agent/podconfig.js';
import { parseManifest, parseWorkload } from '../../shared/manifest.js';
import type { PodConfig } from '../../shared/protocol.js';
import { deploymentManifest } from '../lib/fixtures.js';

const cfg: PodConfig = {
  secrets: { db: { version: 1, type: 'Opaque', data: { password: btoa('s3cret'), 'not a name': btoa('x') } } },
  configMaps: { app: { version: 2, data: { MODE: 'edge', LEVEL: 'debug' } } },
  missing: [],
};

describe('container environment from Secrets and ConfigMaps', () => {
  it('envFrom in order with prefixes (invalid names skipped), then env entries win', () => {
    const env = containerEnv(
      {
        name: 'web',
        image: 'x',
        envFrom: [{ configMapRef: { name: 'app' } }, { secretRef: { name: 'db' }, prefix: 'DB_' }],
        env: [
          { name: 'MODE', value: 'override' },
          { name: 'PW', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
        ],
      } as never,
      cfg,
      'default',
    );
    expect(env).toEqual(['MODE=override', 'LEVEL=debug', 'DB_password=s3cret', 'PW=s3cret']);
  });

  it('a missing Secret, ConfigMap or key fails with what is missing, unless optional', () => {
    const one = (valueFrom: unknown) => () => containerEnv({ name: 'web', image: 'x', env: [{ name: 'X', valueFrom }] } as never, cfg, 'prod');
    expect(one({ secretKeyRef: { name: 'nope', key: 'k' } })).toThrow(new ConfigError('secret "prod/nope" not found'));
    expect(one({ configMapKeyRef: { name: 'app', key: 'nope' } })).toThrow(new ConfigError('key "nope" not found in configmap "prod/app"'));
    expect(one({ secretKeyRef: { name: 'nope', key: 'k', optional: true } })()).toEqual([]);
  });
});

describe('Secret, ConfigMap and reference validation', () => {
  const secret = (o: Record<string, unknown>) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, ...o });
  const fails = (doc: unknown) => {
    try {
      parseManifest(doc);
    } catch (e) {
      return (e as { errors: { path: string; message: string }[] }).errors[0];
    }
    return undefined;
  };

  it('refuses invalid base64, bad key names, over 1 MiB and a dockerconfigjson without auths, with paths and never the value', () => {
    expect(fails(secret({ data: { pw: 'abc' } }))).toEqual({ path: 'data.pw', message: 'must be base64' });
    expect(fails(secret({ stringData: { 'a/b': 'v' } }))?.path).toMatch(/^stringData/);
    expect(fails(secret({ stringData: { big: 'x'.repeat(1024 * 1024 + 1) } }))).toEqual({ path: 'data', message: 'is 1048577 bytes; a Secret holds at most 1048576 (1 MiB)' });
    expect(fails(secret({ type: 'kubernetes.io/dockerconfigjson', stringData: { '.dockerconfigjson': '{"x":1}' } }))?.path).toBe('data..dockerconfigjson');
    expect(fails(secret({ data: { pw: btoa('ok') }, stringData: { other: 'v' } }))).toBeUndefined();
    const m = fails(secret({ data: { pw: 'hunter2!' } }));
    expect(JSON.stringify(m)).not.toContain('hunter2');
  });

  it('refuses a mount of an undeclared volume, a volume with two sources, and env with both value and valueFrom', () => {
    const w = (pod: Record<string, unknown>, container: Record<string, unknown>) => () => parseWorkload(deploymentManifest('w', { pod, container }));
    expect(w({}, { volumeMounts: [{ name: 'v', mountPath: '/x' }] })).toThrow(/no volume named "v"/);
    expect(w({ volumes: [{ name: 'v', secret: { secretName: 'a' }, configMap: { name: 'b' } }] }, {})).toThrow(/exactly one of secret, configMap/);
    expect(w({}, { env: [{ name: 'A', value: 'x', valueFrom: { secretKeyRef: { name: 'a', key: 'k' } } }] })).toThrow(/both value and valueFrom/);
    // a plain variable without a value is still the empty string (unchanged digests for old manifests)
    const ok = parseWorkload(deploymentManifest('w', { container: { env: [{ name: 'A' }] } }));
    expect(ok.spec.template.spec.containers[0]?.env).toEqual([{ name: 'A', value: '' }]);
  });
});
