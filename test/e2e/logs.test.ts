import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireDocker } from '../lib/docker.js';
import { runCli, startCli } from '../lib/proc.js';
import { waitFor } from '../lib/wait.js';
import { type Cluster, type NodeControlPlane, startNodeControlPlane } from './cluster.js';

// `flotilla logs` through the control plane (no inbound connection to the device): a Node control
// plane, one CLI agent, a real busybox container printing lines.
let docker: Docker;
let cp: NodeControlPlane;
let cluster: Cluster;
let pod: string;

const talker = (prefix: string) => ({ name: prefix, image: 'local/busybox:1', command: ['sh', '-c', `trap "exit 0" TERM; i=0; while true; do echo ${prefix} $i; i=$((i+1)); sleep 0.1; done`] });

beforeAll(async () => {
  docker = await requireDocker();
  cp = await startNodeControlPlane(docker, 'flotilla-logs-', { FLOTILLA_LOG_WAIT: '3s' });
  cluster = cp.cluster;
  await cluster.startAgent('logs-a', cluster.cli('token', 'create').trim());
  const f = join(cluster.tmp('flotilla-logs-'), 'talk.json');
  writeFileSync(f, JSON.stringify(cluster.manifestDoc('talk', 1, { containers: [talker('out'), talker('side')] })));
  cluster.cli('apply', '-f', f);
  pod = (await waitFor('talk running', () => cluster.pods().find((p) => p.metadata.labels.app === 'talk' && p.status.phase === 'Running'), 60_000, 300)).metadata.name;
  await new Promise((r) => setTimeout(r, 1000)); // some lines to read
}, 120_000);

afterAll(async () => {
  await cp?.close();
});

/** The numbers of the lines "PREFIX N" in some output, in order. */
const numbers = (out: string, prefix: string) => [...out.matchAll(new RegExp(`^${prefix} (\\d+)$`, 'gm'))].map((m) => Number(m[1]));

describe('logs', () => {
  it('prints the last lines of a container (the first one by default, another with -c)', () => {
    const out = cluster.cli('logs', pod, '--tail', '3');
    const n = numbers(out, 'out');
    expect(n).toHaveLength(3);
    expect(n[1]).toBe((n[0] as number) + 1);
    expect(n[2]).toBe((n[0] as number) + 2);
    expect(out.trim().split('\n')).toHaveLength(3);
    const side = cluster.cli('logs', pod, '-c', 'side', '--tail', '2');
    expect(numbers(side, 'side')).toHaveLength(2);
    expect(side).not.toContain('out ');
    // Everything since the start: from line 0.
    expect(numbers(cluster.cli('logs', pod), 'out')[0]).toBe(0);
  });

  it('follows with -f until the client leaves', async () => {
    const p = startCli(['logs', pod, '-f', '--tail', '1'], cluster.env());
    await p.waitForOutput(/^out \d+$/m, 20_000);
    const first = numbers(p.out(), 'out')[0] as number;
    await waitFor('10 more lines', () => (numbers(p.out(), 'out').at(-1) ?? 0) >= first + 10, 20_000, 100);
    const seen = numbers(p.out(), 'out');
    // In order, none missing, none repeated.
    expect(seen).toEqual(seen.map((_, i) => first + i));
    await p.stop();
  }, 60_000);

  it('refuses what it cannot serve with one line and a non-zero exit', async () => {
    let r = runCli(['logs', 'nope'], cluster.env());
    expect([r.code, r.stderr.trim()]).toEqual([1, 'error: pod default/nope not found']);
    r = runCli(['logs', pod, '-c', 'zz'], cluster.env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('container "zz" is not in pod');
    r = runCli(['logs', pod, '--since', 'yesterday'], cluster.env());
    expect(r.code).toBe(2);
    // A token that may read another namespace only.
    const other = cluster.cli('api-token', 'create', 'reader', '--scope', 'read', '--namespace', 'other').trim().split('\n')[0] as string;
    r = runCli(['logs', pod], { ...cluster.env(), FLOTILLA_TOKEN: other });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/forbidden|may not|not allowed|scope/i);
    expect(r.stdout).toBe('');
    // The node does not answer (its agent is frozen): 504 after the configured wait, no hang.
    const agent = cluster.agents[0];
    agent?.child.kill('SIGSTOP');
    try {
      const started = Date.now();
      const p = startCli(['logs', pod, '--tail', '1'], cluster.env());
      expect(await p.exited).toBe(1);
      expect(p.out()).toContain('did not answer the log request within 3 s');
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      agent?.child.kill('SIGCONT');
    }
  }, 60_000);
});
