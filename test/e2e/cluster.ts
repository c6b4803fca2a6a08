import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { expect } from 'vitest';
import { nodeContainers, removeNodeContainers } from '../lib/docker.js';
import { deploymentManifest, type ManifestOptions } from '../lib/fixtures.js';
import { type Proc, runCli, startCli } from '../lib/proc.js';
import { waitFor } from '../lib/wait.js';

/** A control plane (any runtime) reached by URL and token, with agents started through the CLI. */
export class Cluster {
  readonly agents: Proc[] = [];
  readonly nodeIds: string[] = [];
  private readonly dirs: string[] = [];
  /** Data directory and node id of each agent, by node name. */
  readonly dataDirs = new Map<string, string>();
  readonly nodeIdOf = new Map<string, string>();

  constructor(
    readonly url: string,
    readonly token: string,
    private readonly docker: Docker,
  ) {}

  env(): Record<string, string> {
    return { FLOTILLA_SERVER: this.url, FLOTILLA_TOKEN: this.token };
  }

  /** Runs a CLI command that must succeed. */
  cli(...args: string[]): string {
    const r = runCli(args, this.env());
    if (r.code !== 0) throw new Error(`flotilla ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  tmp(prefix: string): string {
    const d = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }

  /** Starts an agent process and waits until it has enrolled and runs. */
  async startAgent(name: string, enrollToken: string, o: { server?: string; args?: string[]; env?: Record<string, string>; dataDir?: string } = {}): Promise<Proc> {
    const dataDir = o.dataDir ?? this.tmp(`flotilla-${name}-`);
    this.dataDirs.set(name, dataDir);
    const p = startCli(['agent', '--server', o.server ?? this.url, '--token', enrollToken, '--name', name, '--data-dir', dataDir, ...(o.args ?? [])], {
      FLOTILLA_LOG_LEVEL: 'debug',
      ...(o.env ?? {}),
    });
    this.agents.push(p);
    await p.waitForOutput(new RegExp(`agent "${name}" running`), 30_000);
    const nodes = JSON.parse(this.cli('get', 'nodes', '-o', 'json')) as { items: Array<{ metadata: { name: string; uid: string } }> };
    const id = nodes.items.find((n) => n.metadata.name === name)?.metadata.uid;
    if (!id) throw new Error(`node ${name} not listed`);
    if (!this.nodeIds.includes(id)) this.nodeIds.push(id);
    this.nodeIdOf.set(name, id);
    return p;
  }

  /** A busybox httpd Deployment manifest (an object, to edit before writing). */
  manifestDoc(name: string, replicas: number, o: ManifestOptions = {}): Record<string, unknown> {
    return deploymentManifest(name, { replicas, ...o }) as Record<string, unknown>;
  }

  /** Writes a manifest file for a busybox httpd Deployment. */
  manifest(name: string, replicas: number, o: ManifestOptions = {}): string {
    const f = join(this.tmp('flotilla-manifest-'), `${name}.json`);
    writeFileSync(f, JSON.stringify(deploymentManifest(name, { replicas, ...o })));
    return f;
  }

  pods(): Array<any> {
    return (JSON.parse(this.cli('get', 'pods', '-o', 'json')) as { items: any[] }).items;
  }

  /** Our containers across all agents of this cluster. */
  async containers(running = false) {
    const all = [];
    for (const id of this.nodeIds) all.push(...(await nodeContainers(this.docker, id, !running)));
    return all;
  }

  /** Waits until `n` pods run and answer HTTP on their 127.0.0.1 host ports; returns them. */
  async waitRunning(n: number, timeoutMs = 60_000): Promise<any[]> {
    const pods = await waitFor(
      `${n} running pods`,
      () => {
        const p = this.pods().filter((x) => x.status.phase === 'Running' && x.status.hostPorts.length > 0);
        return p.length === n && p;
      },
      timeoutMs,
      300,
    );
    for (const p of pods) {
      const hp = p.status.hostPorts[0];
      expect(hp.hostIP).toBe('127.0.0.1');
      // Running means the process runs; the server inside may need a moment to bind (readiness
      // probes, a later issue, are what will mean "serving").
      const body = await waitFor(`HTTP on 127.0.0.1:${hp.hostPort}`, async () => (await fetch(`http://127.0.0.1:${hp.hostPort}/`)).text(), 10_000, 100);
      expect(body).toBe('v1\n');
    }
    return pods;
  }

  /** Everything the agents printed (for diagnosing a failure). */
  agentOutput(): string {
    return this.agents.map((a, i) => `--- agent ${i}\n${a.out()}`).join('\n');
  }

  async close(): Promise<void> {
    for (const a of this.agents) await a.stop();
    await removeNodeContainers(this.docker, this.nodeIds);
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** A `flotilla server --no-agent` on a free port with its own data dir, and a Cluster talking to it. */
export interface NodeControlPlane {
  server: Proc;
  cluster: Cluster;
  dataDir: string;
  /** Stops the agents (removing their containers), the server, and deletes the data dir. */
  close(): Promise<void>;
}

/** Starts a Node control plane for an e2e file. */
export async function startNodeControlPlane(docker: Docker, prefix: string, env: Record<string, string> = {}): Promise<NodeControlPlane> {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const server = startCli(['server', '--no-agent', '--port', '0', '--data-dir', dataDir], env);
  const m = await server.waitForOutput(/control plane on (http:\/\/\S+); admin token in (\S+)/);
  const cluster = new Cluster(m[1] as string, readFileSync(m[2] as string, 'utf8').trim(), docker);
  return {
    server,
    cluster,
    dataDir,
    async close() {
      await cluster.close();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
