import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { requireDocker } from '../lib/docker.js';
import { CLI, FAST_ENV, runCli, startCli } from '../lib/proc.js';
import { waitFor } from '../lib/wait.js';
import { type Cluster, type NodeControlPlane, startNodeControlPlane } from './cluster.js';

// The operator CLI against a real control plane on Node and a real agent: every verb of the
// operator-experience issue, human and machine output, exit codes, and the error cases.
let docker: Docker;
let cp: NodeControlPlane;
let cluster: Cluster;
let dir: string;

/** The CLI run from another directory with only the given environment (no server, token or context of ours). */
function bare(args: string[], env: Record<string, string>, cwd: string) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FLOTILLA_')));
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...clean, ...FAST_ENV, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** One line on stderr, no stack trace. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at /);
  return lines[0] as string;
}

beforeAll(async () => {
  docker = await requireDocker();
  cp = await startNodeControlPlane(docker, 'flotilla-cli-', { FLOTILLA_METRICS_INTERVAL: '1s', FLOTILLA_WATCH_POLL: '100ms' });
  cluster = cp.cluster;
  await cluster.startAgent('cli-a', cluster.cli('token', 'create').trim());
  dir = cluster.tmp('flotilla-cli-');
  mkdirSync(join(dir, 'app', 'more'), { recursive: true });
  writeFileSync(join(dir, 'app', 'web.json'), JSON.stringify(cluster.manifestDoc('web', 1)));
  writeFileSync(join(dir, 'app', 'settings.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels: {tier: config}\ndata:\n  mode: fast\n');
  writeFileSync(join(dir, 'app', 'more', 'extra.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {a: b}\n');
  writeFileSync(join(dir, 'app', 'README.txt'), 'not a manifest');
}, 120_000);

afterAll(async () => {
  await cp?.close();
});

describe('apply', () => {
  it('applies a directory (with -R its subdirectories), then is idempotent', () => {
    const r = runCli(['apply', '-f', join(dir, 'app')], cluster.env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').sort()).toEqual(['configmap/settings created', 'deployment.apps/web created']);
    const again = cluster.cli('apply', '-f', join(dir, 'app'), '-R');
    expect(again.trim().split('\n').sort()).toEqual(['configmap/extra created', 'configmap/settings unchanged', 'deployment.apps/web unchanged']);
  });

  it('--dry-run=server validates on the server, shows the changes and changes nothing', () => {
    const f = join(dir, 'web3.json');
    writeFileSync(f, JSON.stringify(cluster.manifestDoc('web', 3)));
    const out = cluster.cli('apply', '-f', f, '--dry-run=server');
    expect(out).toContain('deployment.apps/web configured (server dry run)');
    expect(out).toContain('~ spec.replicas: 1 -> 3');
    expect(JSON.parse(cluster.cli('get', 'deployment', 'web', '-o', 'json')).spec.replicas).toBe(1);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...cluster.manifestDoc('web', 1), spec: { ...(cluster.manifestDoc('web', 1).spec as object), replicas: -2 } }));
    const r = runCli(['apply', '-f', bad, '--dry-run=server'], cluster.env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('spec.replicas');
  });

  it('refuses bad input with one readable line and a meaningful exit code', () => {
    const bad = join(dir, 'badfield.json');
    writeFileSync(bad, JSON.stringify({ ...cluster.manifestDoc('web', 1), spec: { ...(cluster.manifestDoc('web', 1).spec as object), replicaz: 2 } }));
    let r = runCli(['apply', '-f', bad], cluster.env());
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/spec\.replicaz/);
    const widget = join(dir, 'widget.yaml');
    writeFileSync(widget, 'apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n');
    r = runCli(['apply', '-f', widget], cluster.env());
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/unknown or unsupported kind "Widget"/);
    r = runCli(['apply', '-f', join(dir, 'missing.yaml')], cluster.env());
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/cannot read .*missing\.yaml: ENOENT/);
    r = runCli(['apply', '-f', join(dir, 'app'), '--dry-run=maybe'], cluster.env());
    expect(r.code).toBe(2);
  });
});

describe('get', () => {
  it('prints a table, JSON, YAML and names; filters by label; lists all namespaces', async () => {
    await waitFor('web running', () => cluster.pods().find((p) => p.metadata.labels.app === 'web' && p.status.phase === 'Running'), 60_000, 300);
    const table = cluster.cli('get', 'deployments');
    expect(table.split('\n')[0]).toMatch(/^NAME\s+READY/);
    expect(table).toMatch(/^web\s/m);
    const json = JSON.parse(cluster.cli('get', 'configmaps', '-o', 'json'));
    expect(json.kind).toBe('ConfigMapList');
    expect(Number(json.metadata.resourceVersion)).toBeGreaterThan(0);
    const yaml = parseYaml(cluster.cli('get', 'configmap', 'settings', '-o', 'yaml'));
    expect(yaml).toMatchObject({ kind: 'ConfigMap', metadata: { name: 'settings' }, data: { mode: 'fast' } });
    expect(cluster.cli('get', 'cm', '-o', 'name').trim().split('\n').sort()).toEqual(['configmap/extra', 'configmap/settings']);
    expect(cluster.cli('get', 'cm', '-l', 'tier=config', '-o', 'name').trim()).toBe('configmap/settings');
    expect(cluster.cli('get', 'pods', '-l', 'app=web', '-o', 'name').trim()).toMatch(/^pod\/web-/);
    const all = cluster.cli('get', 'deploy', '-A');
    expect(all.split('\n')[0]).toMatch(/^NAMESPACE\s+NAME/);
    expect(cluster.cli('get', 'ns')).toMatch(/^default\s+Active/m);
  });

  it('exits 2 on usage errors and 1 on server refusals, with one line', () => {
    let r = runCli(['get', 'widgets'], cluster.env());
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/unknown kind "widgets"/);
    r = runCli(['get', 'pods', '-o', 'xml'], cluster.env());
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/unknown output format "xml"/);
    r = runCli(['get', 'pods', '-l', 'app in (web'], cluster.env());
    expect(r.code).toBe(2);
    r = runCli(['get', 'deployment', 'nope'], cluster.env());
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/not found/);
    r = runCli(['get', 'pods'], { ...cluster.env(), FLOTILLA_TOKEN: 'flo_not-a-token' });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/invalid API token/);
    r = runCli(['get', 'pods', '--server', 'http://127.0.0.1:9'], cluster.env());
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/cannot reach the control plane at http:\/\/127\.0\.0\.1:9/);
  });

  it('-w prints changes as they happen, and stops at --timeout', async () => {
    const w = startCli(['get', 'pods', '-l', 'app=web', '-w', '-o', 'name', '--timeout', '40s'], cluster.env());
    await w.waitForOutput(/^pod\/web-\S+$/m, 20_000); // the list first
    cluster.cli('scale', 'deployment/web', '--replicas', '2');
    await w.waitForOutput(/^pod\/web-\S+ added$/m, 20_000);
    await w.waitForOutput(/^pod\/web-\S+ modified$/m, 20_000);
    await w.stop();
    const t = runCli(['get', 'cm', '-w', '--timeout', '2s'], cluster.env());
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^settings\s/m);
  });
});

describe('describe and events', () => {
  it('describes a deployment and a node: identity, spec, status, conditions, events', () => {
    const d = cluster.cli('describe', 'deployment', 'web');
    expect(d).toMatch(/^Name:\s+web$/m);
    expect(d).toMatch(/^Namespace:\s+default$/m);
    expect(d).toMatch(/^Labels:\s+app=web$/m);
    expect(d).toMatch(/^Spec:\n\s+replicas: 2/m);
    expect(d).toMatch(/^Conditions:\n\s+TYPE\s+STATUS/m);
    expect(d).toMatch(/^Events:\n\s+LAST SEEN\s+TYPE\s+REASON\s+MESSAGE\n[\s\S]*ScalingReplicaSet/m);
    const n = cluster.cli('describe', 'node/cli-a');
    expect(n).toMatch(/^Name:\s+cli-a$/m);
    expect(n).toMatch(/^Pods:\s+[12]$/m);
    const r = runCli(['describe', 'pod', 'nope'], cluster.env());
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/not found/);
  });

  it('events lists and -w follows new ones', async () => {
    expect(cluster.cli('events').split('\n')[0]).toMatch(/^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE/);
    const w = startCli(['events', '-w', '--timeout', '30s'], cluster.env());
    await w.waitForOutput(/LAST SEEN/, 20_000);
    const cm = join(dir, 'later.yaml');
    writeFileSync(cm, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {a: b}\n');
    cluster.cli('apply', '-f', cm);
    await w.waitForOutput(/Created\s+configmap\/later/, 20_000);
    await w.stop();
    // All namespaces (admin): the cluster's event log, node events included.
    const all = startCli(['events', '-A', '-w', '--timeout', '30s'], cluster.env());
    await all.waitForOutput(/LAST SEEN/, 20_000);
    const other = join(dir, 'other-ns.yaml');
    writeFileSync(other, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: elsewhere, namespace: team-b}\ndata: {a: b}\n');
    cluster.cli('apply', '-f', other);
    await all.waitForOutput(/Created\s+configmap\/team-b\/elsewhere/, 20_000);
    await all.stop();
  });
});

describe('top', () => {
  it('shows CPU and memory of nodes and pods as agents report them', async () => {
    await waitFor('pod metrics', () => runCli(['top', 'pods'], cluster.env()).code === 0, 30_000, 500);
    const nodes = cluster.cli('top', 'nodes');
    expect(nodes.split('\n')[0]).toMatch(/^NAME\s+CPU\(cores\)\s+CPU%\s+MEMORY\(bytes\)\s+MEMORY%/);
    expect(nodes).toMatch(/^cli-a\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%/m);
    const pods = cluster.cli('top', 'pods', '--containers');
    expect(pods).toMatch(/^web-\S+\s+web\s+\d+m\s+\d+Mi/m);
    const json = JSON.parse(cluster.cli('top', 'pods', '-o', 'json'));
    expect(json.kind).toBe('PodMetricsList');
    expect(json.items[0].containers[0].usage.memory).toMatch(/^\d+Ki$/);
    expect(runCli(['top', 'widgets'], cluster.env()).code).toBe(2);
  });
});

describe('contexts', () => {
  it('login stores a context (0600) after checking the token; use-context switches; no token or a wrong server fails clearly', () => {
    const home = cluster.tmp('flotilla-cli-home-');
    const env = { FLOTILLA_CONFIG: join(home, 'flotilla', 'config.json') };
    let r = bare(['login', cluster.url, '--token', 'flo_wrong', '--context', 'lab'], env, home);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/invalid API token/);
    r = bare(['get', 'pods'], env, home);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/no API token: run flotilla login/);
    r = bare(['login', cluster.url, '--token', cluster.token, '--context', 'lab'], env, home);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(env.FLOTILLA_CONFIG).mode & 0o777).toBe(0o600);
    r = bare(['get', 'deployments', '-o', 'name'], env, home);
    expect(r.stdout.trim()).toBe('deployment.apps/web');
    // A second cluster that is not running: switching to it makes commands fail with where they tried.
    r = bare(['login', 'http://127.0.0.1:9', '--token', cluster.token, '--context', 'down'], env, home);
    expect(r.code).toBe(1);
    r = bare(['config', 'get-contexts'], env, home);
    expect(r.stdout).toMatch(/^\*\s+lab\s+http/m);
    expect(bare(['config', 'view'], env, home).stdout).not.toContain(cluster.token);
    r = bare(['config', 'use-context', 'nope'], env, home);
    expect(r.code).toBe(1);
    expect(bare(['config', 'current-context'], env, home).stdout.trim()).toBe('lab');
    r = bare(['get', 'pods', '--context', 'nope'], env, home);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/no context "nope"/);
  });
});

describe('completion, version and node verbs', () => {
  it('bash completion completes commands, kinds and names', () => {
    const script = cluster.cli('completion', 'bash');
    const run = (words: string) =>
      spawnSync(
        'bash',
        ['-c', `source /dev/stdin <<'EOF'\n${script}\nEOF\nflotilla() { node ${CLI} "$@"; }\nCOMP_WORDS=(${words}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _flotilla; echo "\${COMPREPLY[@]}"`],
        {
          encoding: 'utf8',
          env: { ...process.env, ...cluster.env() },
          cwd: process.cwd(),
        },
      ).stdout.trim();
    expect(run('flotilla ge').split(' ')).toContain('get');
    expect(run('flotilla get dep').split(' ')).toContain('deployments');
    expect(run('flotilla get deployments w').split(' ')).toContain('web');
    for (const sh of ['zsh', 'fish']) expect(cluster.cli('completion', sh)).toContain('flotilla');
    expect(runCli(['completion', 'tcsh'], cluster.env()).code).toBe(2);
  });

  it('token and api-token create, list and revoke; label and taint a node', () => {
    const tok = runCli(['token', 'create', '--uses', '2', '--ttl', '10m'], cluster.env());
    expect(tok.code).toBe(0);
    const id = /enrollment token (\S+):/.exec(tok.stderr)?.[1] as string;
    expect(JSON.parse(cluster.cli('token', 'list', '-o', 'json')).items.find((i: { id: string }) => i.id === id)).toMatchObject({ maxUses: 2, state: 'active' });
    expect(cluster.cli('token', 'revoke', id).trim()).toBe(`enrollment token ${id} revoked`);
    expect(cluster.cli('token', 'list')).toMatch(new RegExp(`^${id}\\s+0/2\\s+revoked`, 'm'));
    expect(runCli(['token', 'create', '--ttl', 'soon'], cluster.env()).code).toBe(2);
    const api = runCli(['api-token', 'create', 'ci', '--scope', 'read', '-n', 'default'], cluster.env());
    expect(api.code).toBe(0);
    const apiId = /API token (\S+) \(read\)/.exec(api.stderr)?.[1] as string;
    expect(runCli(['get', 'pods', '-o', 'name'], { ...cluster.env(), FLOTILLA_TOKEN: api.stdout.trim() }).code).toBe(0);
    expect(runCli(['apply', '-f', join(dir, 'app', 'web.json')], { ...cluster.env(), FLOTILLA_TOKEN: api.stdout.trim() }).stderr).toMatch(/does not allow this \(needs "deploy"\)/);
    expect(cluster.cli('api-token', 'list')).toMatch(new RegExp(`^${apiId}\\s+ci\\s+read\\s+default\\s+false`, 'm'));
    cluster.cli('api-token', 'revoke', apiId);
    expect(runCli(['get', 'pods'], { ...cluster.env(), FLOTILLA_TOKEN: api.stdout.trim() }).code).toBe(1);
    expect(cluster.cli('label', 'node', 'cli-a', 'zone=lab').trim()).toBe('node/cli-a labeled');
    expect(cluster.cli('taint', 'node', 'cli-a', 'maint=yes:PreferNoSchedule').trim()).toBe('node/cli-a tainted');
    const node = JSON.parse(cluster.cli('get', 'node', 'cli-a', '-o', 'json'));
    expect(node.metadata.labels.zone).toBe('lab');
    expect(node.spec.taints.find((x: { key: string }) => x.key === 'maint')).toMatchObject({ value: 'yes', effect: 'PreferNoSchedule' });
    cluster.cli('taint', 'node', 'cli-a', 'maint-');
    cluster.cli('label', 'node', 'cli-a', 'zone-');
    expect(JSON.parse(cluster.cli('get', 'node', 'cli-a', '-o', 'json')).spec.taints).toEqual([]);
    expect(runCli(['taint', 'node', 'cli-a', 'bad'], cluster.env()).code).toBe(2);
  });

  it('version, token list, cordon and uncordon, keys rotate', () => {
    expect(cluster.cli('version').trim()).toMatch(/^flotilla \d+\.\d+\.\d+$/);
    expect(cluster.cli('token', 'list').split('\n')[0]).toMatch(/^ID\s+USES\s+STATE/);
    expect(cluster.cli('cordon', 'cli-a').trim()).toBe('node/cli-a cordoned');
    expect(JSON.parse(cluster.cli('get', 'node', 'cli-a', '-o', 'json')).spec.unschedulable).toBe(true);
    expect(cluster.cli('uncordon', 'cli-a').trim()).toBe('node/cli-a uncordoned');
    expect(cluster.cli('keys', 'rotate')).toMatch(/now signing with/);
  });
});
