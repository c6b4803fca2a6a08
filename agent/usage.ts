import { readFileSync } from 'node:fs';
import os from 'node:os';
import type Docker from 'dockerode';
import type { MetricsReport } from '../shared/protocol.js';
import type { ActualContainer } from './reconcile.js';

// Resource use for `flotilla top`: the node's CPU (from /proc/stat) and memory (MemTotal -
// MemAvailable), and each running container's CPU (the engine's cumulative CPU time, as a rate
// between two samples) and working-set memory (usage minus inactive file cache, as the kubelet).

interface CpuTimes {
  busy: number;
  total: number;
}

function nodeCpuTimes(): CpuTimes | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    // Not Linux: os.cpus() times.
    const cpus = os.cpus();
    const total = cpus.reduce((s, c) => s + c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq, 0);
    const idle = cpus.reduce((s, c) => s + c.times.idle, 0);
    return total > 0 ? { busy: total - idle, total } : undefined;
  }
}

function nodeMemoryUsed(): number {
  try {
    const m = readFileSync('/proc/meminfo', 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(m)?.[1] ?? Number.NaN) * 1024;
    const used = kb('MemTotal') - kb('MemAvailable');
    if (Number.isFinite(used)) return used;
  } catch {}
  return os.totalmem() - os.freemem();
}

interface DockerStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { usage?: number; stats?: { inactive_file?: number; total_inactive_file?: number; cache?: number } };
}

/** Samples use; each sample's CPU figures are averages since the previous one. */
export class UsageSampler {
  private node: CpuTimes | undefined;
  private at = 0;
  private readonly containers = new Map<string, { cpuNs: number; at: number }>();

  constructor(private readonly docker: Docker) {}

  async sample(actual: readonly ActualContainer[]): Promise<MetricsReport> {
    const now = Date.now();
    const times = nodeCpuTimes();
    const cores = os.cpus().length || 1;
    let nodeCpu = 0;
    if (times && this.node && times.total > this.node.total) nodeCpu = Math.round(((times.busy - this.node.busy) / (times.total - this.node.total)) * cores * 1000);
    const window = this.at ? (now - this.at) / 1000 : 0;
    this.node = times;
    this.at = now;
    const running = actual.filter((c) => c.state === 'running' && c.podId);
    const byPod = new Map<string, MetricsReport['pods'][number]>();
    const seen = new Set<string>();
    await Promise.all(
      running.map(async (c) => {
        seen.add(c.id);
        let s: DockerStats;
        try {
          // one-shot: the engine answers at once instead of sampling for a second.
          s = (await this.docker.getContainer(c.id).stats({ stream: false, 'one-shot': true } as never)) as unknown as DockerStats;
        } catch {
          return; // gone meanwhile
        }
        const cpuNs = s.cpu_stats?.cpu_usage?.total_usage ?? 0;
        const prev = this.containers.get(c.id);
        this.containers.set(c.id, { cpuNs, at: now });
        const cpu = prev && now > prev.at && cpuNs >= prev.cpuNs ? Math.round((cpuNs - prev.cpuNs) / 1e6 / ((now - prev.at) / 1000)) : 0;
        const st = s.memory_stats?.stats ?? {};
        const inactive = st.inactive_file ?? st.total_inactive_file ?? 0;
        const memory = Math.max(0, (s.memory_stats?.usage ?? 0) - inactive);
        const p = byPod.get(c.podId) ?? { podId: c.podId, containers: [] };
        p.containers.push({ name: c.container, cpu, memory });
        byPod.set(c.podId, p);
      }),
    );
    for (const id of this.containers.keys()) if (!seen.has(id)) this.containers.delete(id);
    return { node: { cpu: Math.max(0, nodeCpu), memory: Math.max(0, Math.round(nodeMemoryUsed())) }, window: Math.round(window * 10) / 10, pods: [...byPod.values()] };
  }
}
