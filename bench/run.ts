// npm run bench [-- NAME ...] [--quick]: runs the benchmarks, prints a table, rewrites docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { FULL as AGENT_FULL, QUICK as AGENT_QUICK, type AgentBenchResult, benchAgent } from './agent.js';
import { benchDeploy, FULL as DEPLOY_FULL, QUICK as DEPLOY_QUICK, type DeployResult } from './deploy.js';
import { benchFailover, FULL as FAILOVER_FULL, QUICK as FAILOVER_QUICK, type FailoverResult } from './failover.js';
import { benchHeartbeat, FULL, type HeartbeatResult, QUICK } from './heartbeat.js';
import { machineFacts } from './procs.js';
import { benchProxy, FULL as PROXY_FULL, QUICK as PROXY_QUICK, type ProxyResult } from './proxy.js';
import { benchRollout, FULL as ROLLOUT_FULL, QUICK as ROLLOUT_QUICK, type RolloutResult } from './rollout.js';
import { benchSchedule, FULL as SCHEDULE_FULL, QUICK as SCHEDULE_QUICK, type ScheduleRow } from './schedule.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const renderOnly = args.includes('--render-only'); // rewrite docs/benchmarks.md from the stored results
const names = args.filter((a) => !a.startsWith('--'));
const KNOWN = ['heartbeat', 'schedule', 'deploy', 'failover', 'rollout', 'proxy', 'agent'];
const selected = renderOnly ? [] : names.length ? names : KNOWN;
const RESULTS = 'docs/bench-results.json';

interface Run<R> {
  at: string;
  mode: string;
  command: string;
  machine: string;
  result: R;
}
interface Stored {
  heartbeat?: Run<HeartbeatResult>;
  schedule?: Run<ScheduleRow[]>;
  failover?: Run<FailoverResult>;
  rollout?: Run<RolloutResult>;
  proxy?: Run<ProxyResult>;
  deploy?: Run<DeployResult>;
  agent?: Run<AgentBenchResult>;
}

// The control plane is measured as it ships: compiled JS from dist/.
if (!renderOnly) execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });

const stored: Stored = existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as Stored) : {};
const log = (s: string) => console.log(s);

for (const name of selected) {
  if (name === 'heartbeat') {
    console.log(`== heartbeat (${quick ? 'quick' : 'full'}) on ${machineFacts()}`);
    const result = await benchHeartbeat(quick ? QUICK : FULL, log);
    stored.heartbeat = { at: new Date().toISOString(), mode: quick ? 'quick' : 'full', command: `npm run bench:heartbeat${quick ? ' -- --quick' : ''}`, machine: machineFacts(), result };
    const r = result;
    console.table([
      {
        benchmark: 'heartbeat',
        'held rate (p99<100ms)': r.heldRate,
        'hello-world req/s': Math.round(r.helloRate),
        ratio: r.ratio.toFixed(2),
        goal: '>= 0.3',
        'DB writes/heartbeat': r.writesPerHeartbeat.toFixed(2),
      },
    ]);
  } else if (name === 'schedule') {
    console.log(`== schedule (${quick ? 'quick' : 'full'}) on ${machineFacts()}`);
    const rows = await benchSchedule(quick ? SCHEDULE_QUICK : SCHEDULE_FULL, log);
    stored.schedule = { at: new Date().toISOString(), mode: quick ? 'quick' : 'full', command: `npm run bench:schedule${quick ? ' -- --quick' : ''}`, machine: machineFacts(), result: rows };
    console.table(
      rows.map((r) => ({
        benchmark: 'schedule',
        nodes: r.nodes,
        pods: r.pods,
        'pure placements/s': Math.round(r.pureRate),
        'committed placements/s': Math.round(r.committedRate),
        'raw inserts/s': Math.round(r.rawRate),
        ratio: r.ratio.toFixed(2),
        goal: '>= 0.1 and >= 3,750/s',
      })),
    );
  } else if (name === 'failover') {
    console.log(`== failover (${quick ? 'quick' : 'full'}) on ${machineFacts()}`);
    const r = await benchFailover(quick ? FAILOVER_QUICK : FAILOVER_FULL, log);
    stored.failover = { at: new Date().toISOString(), mode: quick ? 'quick' : 'full', command: `npm run bench:failover${quick ? ' -- --quick' : ''}`, machine: machineFacts(), result: r };
    console.table([
      {
        benchmark: 'failover',
        'lease TTL s': r.ttlMs / 1000,
        'bare docker run ms': Math.round(r.dockerRunMs),
        'failover s (median)': (r.failoverMs / 1000).toFixed(2),
        ratio: r.ratio.toFixed(2),
        goal: '<= 1.3',
      },
    ]);
  } else if (name === 'rollout') {
    console.log(`== rollout (${quick ? 'quick' : 'full'}) on ${machineFacts()}`);
    const r = await benchRollout(quick ? ROLLOUT_QUICK : ROLLOUT_FULL, log);
    stored.rollout = { at: new Date().toISOString(), mode: quick ? 'quick' : 'full', command: `npm run bench:rollout${quick ? ' -- --quick' : ''}`, machine: machineFacts(), result: r };
    console.table([
      {
        benchmark: 'rollout',
        replicas: r.replicas,
        'flotilla s (median)': (r.flotilla / 1000).toFixed(2),
        'swarm s (median)': (r.swarm / 1000).toFixed(2),
        ratio: r.ratio.toFixed(2),
        goal: '<= 1.0',
      },
    ]);
  } else if (name === 'proxy') {
    console.log(`== proxy (${quick ? 'quick' : 'full'}) on ${machineFacts()}`);
    const r = await benchProxy(quick ? PROXY_QUICK : PROXY_FULL, log);
    stored.proxy = { at: new Date().toISOString(), mode: quick ? 'quick' : 'full', command: `npm run bench:proxy${quick ? ' -- --quick' : ''}`, machine: machineFacts(), result: r };
    console.table(
      r.map((x) => ({
        benchmark: 'proxy',
        mode: x.mode,
        'direct req/s': Math.round(x.directRps),
        'proxy req/s': Math.round(x.proxyRps),
        ratio: x.ratio.toFixed(2),
        'p99 added ms': x.addedP99Ms.toFixed(2),
        goal: '>= 0.7, p99 added <= 1 ms',
      })),
    );
  } else if (name === 'deploy') {
    console.log(`== deploy (${quick ? 'quick' : 'full'}) on ${machineFacts()}`);
    const r = await benchDeploy(quick ? DEPLOY_QUICK : DEPLOY_FULL, log);
    stored.deploy = { at: new Date().toISOString(), mode: quick ? 'quick' : 'full', command: `npm run bench:deploy${quick ? ' -- --quick' : ''}`, machine: machineFacts(), result: r };
    console.table([
      {
        benchmark: 'deploy',
        samples: r.samples,
        'flotilla p50/p99 ms': `${r.flotilla.p50.toFixed(0)}/${r.flotilla.p99.toFixed(0)}`,
        'docker run p50/p99 ms': `${r.docker.p50.toFixed(0)}/${r.docker.p99.toFixed(0)}`,
        'ratio p50': r.ratioP50.toFixed(2),
        'ratio p99': r.ratioP99.toFixed(2),
        goal: 'p50 <= 1.3, p99 <= 2',
      },
    ]);
  } else if (name === 'agent') {
    console.log(`== agent (${quick ? 'quick' : 'full'}) on ${machineFacts()}`);
    const r = await benchAgent(quick ? AGENT_QUICK : AGENT_FULL, log);
    stored.agent = { at: new Date().toISOString(), mode: quick ? 'quick' : 'full', command: `npm run bench:agent${quick ? ' -- --quick' : ''}`, machine: machineFacts(), result: r };
    console.table([
      {
        benchmark: 'agent',
        'window s': r.windowSeconds,
        'agent RSS MB': r.agentRssMb.avg.toFixed(1),
        'idle Node RSS MB': r.idleRssMb.avg.toFixed(1),
        'RSS ratio': r.rssRatio.toFixed(2),
        'agent CPU %': r.agentCpuPercent.toFixed(2),
        goal: 'RSS <= 1.5x and <= 80 MB; CPU <= 1%',
      },
    ]);
  } else {
    console.error(`unknown benchmark "${name}" (known: ${KNOWN.join(', ')})`);
    process.exit(2);
  }
}

// Quick runs (CI) only print; full runs and --render-only rewrite the docs.
if (!quick || renderOnly || !existsSync('docs/benchmarks.md')) {
  writeFileSync(RESULTS, `${JSON.stringify(stored, null, 2)}\n`);
  writeFileSync('docs/benchmarks.md', renderDocs(stored));
  console.log('wrote docs/benchmarks.md');
}

function renderDocs(s: Stored): string {
  const lines = [
    '# Benchmarks',
    '',
    'Generated by `bench/run.ts`; every figure is a ratio against a baseline measured in the same run on the same machine (the machines are shared and noisy). Re-run the command shown to reproduce.',
    '',
  ];
  const h = s.heartbeat;
  if (h) {
    const r = h.result;
    lines.push(
      '## heartbeat',
      '',
      `Command: \`${h.command}\` (${h.mode} mode, ${h.at.slice(0, 10)})  `,
      `Machine: ${h.machine}; ${r.pinned ? 'control plane and baseline pinned to core 0, load generator on core 1 (taskset)' : 'processes not pinned'}.`,
      '',
      `Simulated agents (${r.fleet}) enroll over the real protocol, each with its own Ed25519 key, and send heartbeats with agent-signed JWTs to the Node control plane (embedded libSQL file), open loop at stepped rates. Each node holds one pod, so lease renewals re-sign real leases.`,
      '',
      '| metric | value | baseline (same run) | ratio | goal |',
      '|---|---|---|---|---|',
      `| highest heartbeat rate held with p99 < 100 ms | ${r.heldRate}/s (p99 ${r.heldP99.toFixed(1)} ms) | hello-world on the same Hono + Node stack: ${Math.round(r.helloRate)} req/s | **${r.ratio.toFixed(2)}** | >= 0.3 |`,
      `| DB write statements per heartbeat (default cadence: 30 s lease TTL, ~5 s heartbeats) | ${r.writesPerHeartbeat.toFixed(2)} | 1 (a write per heartbeat) | ${r.writesPerHeartbeat.toFixed(2)} | < 1 |`,
      `| DB write transactions per heartbeat | ${r.transactionsPerHeartbeat.toFixed(2)} | | | |`,
      `| max heartbeat throughput (closed loop, 64 in flight) | ${Math.round(r.maxThroughput)}/s | | | |`,
      '',
      'Steps:',
      '',
      '| offered/s | achieved/s | p50 ms | p99 ms | errors | dropped |',
      '|---|---|---|---|---|---|',
      ...r.steps.map((x) => `| ${x.offered} | ${x.achieved.toFixed(0)} | ${x.p50.toFixed(1)} | ${x.p99.toFixed(1)} | ${x.errors} | ${x.dropped} |`),
      '',
    );
  }
  const sc = s.schedule;
  if (sc) {
    lines.push(
      '## schedule',
      '',
      `Command: \`${sc.command}\` (${sc.mode} mode, ${sc.at.slice(0, 10)})  `,
      `Machine: ${sc.machine}.`,
      '',
      'Pure: the scheduler core alone (warm), placing pods of 250m CPU / 256Mi on nodes of 4 CPUs / 8 GiB. Committed: one controller tick on the embedded libSQL file creates the pods of a Deployment, places them and commits everything (pods, events, node versions) in one batch. Baseline: raw batched single-row inserts of the same pod rows into a fresh database, measured before and after the committed run.',
      '',
      '| nodes | pods | pure placements/s | committed placements/s | raw inserts/s (baseline) | ratio | goal |',
      '|---|---|---|---|---|---|---|',
      ...sc.result.map(
        (r) =>
          `| ${r.nodes} | ${r.pods} | ${Math.round(r.pureRate)} | ${Math.round(r.committedRate)} | ${Math.round(r.rawRate)} | **${r.ratio.toFixed(2)}** | >= 0.1 and >= 3,750/s (${r.ratio >= 0.1 && r.committedRate >= 3750 ? 'met' : 'not met'}) |`,
      ),
      '',
    );
  }
  const fo = s.failover;
  if (fo) {
    const r = fo.result;
    lines.push(
      '## failover',
      '',
      `Command: \`${fo.command}\` (${fo.mode} mode, ${fo.at.slice(0, 10)})  `,
      `Machine: ${fo.machine}.`,
      '',
      `A Node control plane and real agents (compiled CLI) on the Docker engine, lease TTL ${r.ttlMs / 1000} s and clock-skew margin ${r.skewMs / 1000} s. The agent holding a one-replica Deployment's pod is killed with SIGKILL at a random point of its renewal cycle and its containers are removed; measured until the replacement answers HTTP on its published port. Baseline: lease TTL plus a bare \`docker run\` of the same image until it answers (median of 3), same run.`,
      '',
      '| metric | value | baseline (same run) | ratio | goal |',
      '|---|---|---|---|---|',
      `| node loss -> replacement answering (median of ${r.runs.length}) | ${(r.failoverMs / 1000).toFixed(2)} s | ${r.ttlMs / 1000} s + ${Math.round(r.dockerRunMs)} ms | **${r.ratio.toFixed(2)}** | <= 1.3 (${r.ratio <= 1.3 ? 'met' : 'not met'}) |`,
      '',
      ...r.runs.map((x, i) => `- run ${i + 1}: ${(x.failoverMs / 1000).toFixed(2)} s (pod rescheduled after ${(x.detectMs / 1000).toFixed(2)} s)`),
      '',
    );
  }
  const ro = s.rollout;
  if (ro) {
    const r = ro.result;
    const secs = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
    lines.push(
      '## rollout',
      '',
      `Command: \`${ro.command}\` (${ro.mode} mode, ${ro.at.slice(0, 10)})  `,
      `Machine: ${ro.machine}.`,
      '',
      `A rolling update of ${r.replicas} replicas from one image to another, one at a time behind the same readiness gate (an HTTP check every second), on the same Docker engine and images. Flotilla: a Node control plane and one agent (compiled CLI, default timings), \`maxSurge: 1, maxUnavailable: 0\`, readiness probe. Baseline, same run: Docker Swarm on the same engine, \`docker service update --update-parallelism 1 --update-order start-first --update-delay 0s --update-monitor 100ms\` with a container health check (\`wget\`, 1 s interval). Both timed from the engine: from the update request until exactly ${r.replicas} containers of the new image run and are ready (Flotilla: pods Ready; Swarm: healthy) and none of the old runs.`,
      '',
      '| metric | Flotilla | Docker Swarm (same run) | ratio | goal |',
      '|---|---|---|---|---|',
      `| rolling update of ${r.replicas} (median of ${r.flotillaMs.length}) | ${(r.flotilla / 1000).toFixed(2)} s | ${(r.swarm / 1000).toFixed(2)} s | **${r.ratio.toFixed(2)}** | <= 1.0 (${r.ratio <= 1 ? 'met' : 'not met'}) |`,
      '',
      `- Flotilla runs: ${secs(r.flotillaMs)} s; Swarm runs: ${secs(r.swarmMs)} s`,
      '',
    );
  }
  const px = s.proxy;
  if (px) {
    const o = px.mode === 'quick' ? PROXY_QUICK : PROXY_FULL;
    lines.push(
      '## proxy',
      '',
      `Command: \`${px.command}\` (${px.mode} mode, ${px.at.slice(0, 10)})  `,
      `Machine: ${px.machine}.`,
      '',
      `The agent's service proxy (\`agent/proxy.ts\`, in its own process, one endpoint) against the same HTTP client talking to that endpoint directly, same run, alternating rounds (${o.rounds} of ${o.seconds} s each, ${o.concurrency} concurrent requests; medians). The endpoint is a hello-world Node HTTP server; everything on 127.0.0.1. Keep-alive: requests reuse connections (the per-byte cost). New connection: every request opens a connection (the per-connection cost: accept, pick an endpoint, connect).`,
      '',
      '| client | direct req/s | through the proxy req/s | ratio | direct p99 | proxy p99 | p99 added | goal |',
      '|---|---|---|---|---|---|---|---|',
      ...px.result.map(
        (x) =>
          `| ${x.mode} | ${Math.round(x.directRps)} | ${Math.round(x.proxyRps)} | **${x.ratio.toFixed(2)}** | ${x.directP99Ms.toFixed(2)} ms | ${x.proxyP99Ms.toFixed(2)} ms | ${x.addedP99Ms.toFixed(2)} ms | >= 0.7 and <= 1 ms added (${x.ratio >= 0.7 && x.addedP99Ms <= 1 ? 'met' : 'not met'}) |`,
      ),
      '',
    );
  }
  const dp = s.deploy;
  if (dp) {
    const r = dp.result;
    lines.push(
      '## deploy',
      '',
      `Command: \`${dp.command}\` (${dp.mode} mode, ${dp.at.slice(0, 10)})  `,
      `Machine: ${dp.machine}.`,
      '',
      `apply -> container running: a Node control plane and one agent (compiled CLI, default timings); each of ${r.samples} samples applies a new one-replica Deployment of an image already on the engine (pull skipped) and is timed to the engine's \`start\` event of its container. Baseline, same run, interleaved: \`docker run -d\` (the CLI) of the same image and command, to the same event. Phases (medians) from clocks on one machine: the apply request (API; it also schedules, the tick runs inside it), the engine's \`create\` event after the request (the node is told, fetches its desired state, verifies the lease, checks the image), and \`start\` after \`create\`.`,
      '',
      '| metric | Flotilla | docker run -d (same run) | ratio | goal |',
      '|---|---|---|---|---|',
      `| p50 | ${r.flotilla.p50.toFixed(0)} ms | ${r.docker.p50.toFixed(0)} ms | **${r.ratioP50.toFixed(2)}** | <= 1.3 (${r.ratioP50 <= 1.3 ? 'met' : 'not met'}) |`,
      `| p99 | ${r.flotilla.p99.toFixed(0)} ms | ${r.docker.p99.toFixed(0)} ms | **${r.ratioP99.toFixed(2)}** | <= 2 (${r.ratioP99 <= 2 ? 'met' : 'not met'}) |`,
      '',
      `Phases (median): API + schedule ${r.phases.api.toFixed(0)} ms; node told, desired state fetched, lease verified, image found ${r.phases.notify.toFixed(0)} ms; create + start ${r.phases.createStart.toFixed(0)} ms.`,
      '',
    );
  }
  const ag = s.agent;
  if (ag) {
    const r = ag.result;
    const met = r.rssRatio <= 1.5 && r.agentRssMb.avg <= 80;
    lines.push(
      '## agent',
      '',
      `Command: \`${ag.command}\` (${ag.mode} mode, ${ag.at.slice(0, 10)})  `,
      `Machine: ${ag.machine}.`,
      '',
      `A real agent (compiled CLI, default timings) managing ${r.containers} containers with HTTP liveness and readiness probes (every 10 s), sampled from /proc every second for ${r.windowSeconds} s once all are Ready. Baseline, same window: an idle Node process with one timer (\`setInterval(() => {}, 1000)\`), the floor of any Node program.`,
      '',
      '| metric | agent | idle Node (same run) | ratio | goal |',
      '|---|---|---|---|---|',
      `| RSS (average; max) | ${r.agentRssMb.avg.toFixed(1)} MB; ${r.agentRssMb.max.toFixed(1)} MB | ${r.idleRssMb.avg.toFixed(1)} MB | **${r.rssRatio.toFixed(2)}** | <= 1.5x and <= 80 MB (${met ? 'met' : 'not met'}) |`,
      `| CPU (share of one core) | ${r.agentCpuPercent.toFixed(2)} % | ${r.idleCpuPercent.toFixed(2)} % | | <= 1 % (${r.agentCpuPercent <= 1 ? 'met' : 'not met'}) |`,
      '',
    );
  }
  // Hand-written findings (what changed the numbers, known limits) follow the generated tables.
  if (existsSync('bench/FINDINGS.md')) lines.push(readFileSync('bench/FINDINGS.md', 'utf8'));
  return `${lines.join('\n')}\n`;
}
