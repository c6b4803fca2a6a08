// npm run bench [-- NAME ...] [--quick]: runs the benchmarks, prints a table, rewrites docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { FULL as AGENT_FULL, QUICK as AGENT_QUICK, type AgentBenchResult, benchAgent, envText } from './agent.js';
import { benchDeploy, FULL as DEPLOY_FULL, QUICK as DEPLOY_QUICK, type DeployResult } from './deploy.js';
import { benchFailover, FULL as FAILOVER_FULL, QUICK as FAILOVER_QUICK, type FailoverResult } from './failover.js';
import { benchFleet, FLEET_FULL, FLEET_QUICK, type FleetResult } from './fleet.js';
import { benchHeartbeat, FULL, type HeartbeatResult, QUICK } from './heartbeat.js';
import { machineFacts, removeUnusedNetworks } from './procs.js';
import { benchProxy, FULL as PROXY_FULL, QUICK as PROXY_QUICK, type ProxyResult } from './proxy.js';
import { benchRollout, FULL as ROLLOUT_FULL, QUICK as ROLLOUT_QUICK, type RolloutResult } from './rollout.js';
import { benchSchedule, FULL as SCHEDULE_FULL, QUICK as SCHEDULE_QUICK, type ScheduleRow } from './schedule.js';
import { benchSwarm, FULL as SWARM_FULL, QUICK as SWARM_QUICK, type SwarmRow } from './swarm.js';
import { benchWorker, FULL as WORKER_FULL, QUICK as WORKER_QUICK, type WorkerResult } from './worker.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const renderOnly = args.includes('--render-only'); // rewrite docs/benchmarks.md from the stored results
const names = args.filter((a) => !a.startsWith('--'));
const KNOWN = ['heartbeat', 'fleet', 'schedule', 'deploy', 'failover', 'rollout', 'swarm', 'proxy', 'agent', 'worker'];
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
  fleet?: Run<FleetResult>;
  swarm?: Run<SwarmRow[]>;
  worker?: Run<WorkerResult>;
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
  } else if (name === 'fleet') {
    console.log(`== fleet (${quick ? 'quick' : 'full'}) on ${machineFacts()}`);
    const o = { ...(quick ? FLEET_QUICK : FLEET_FULL) };
    // For people: BENCH_FLEET_SIZES=1000,5000,15000 BENCH_FLEET_HOLD=600 npm run bench:fleet
    if (process.env.BENCH_FLEET_SIZES) o.sizes = process.env.BENCH_FLEET_SIZES.split(',').map(Number);
    if (process.env.BENCH_FLEET_HOLD) o.holdSeconds = Number(process.env.BENCH_FLEET_HOLD);
    const r = await benchFleet(o, log);
    const env = [
      process.env.BENCH_FLEET_SIZES ? `BENCH_FLEET_SIZES=${process.env.BENCH_FLEET_SIZES} ` : '',
      process.env.BENCH_FLEET_HOLD ? `BENCH_FLEET_HOLD=${process.env.BENCH_FLEET_HOLD} ` : '',
      process.env.BENCH_CP_NODE_ARGS ? `BENCH_CP_NODE_ARGS='${process.env.BENCH_CP_NODE_ARGS}' ` : '',
    ].join('');
    stored.fleet = { at: new Date().toISOString(), mode: quick ? 'quick' : 'full', command: `${env}npm run bench:fleet${quick ? ' -- --quick' : ''}`, machine: machineFacts(), result: r };
    console.table(
      r.windows.map((w) => ({
        benchmark: 'fleet',
        agents: w.agents,
        s: Math.round(w.seconds),
        'heartbeat p50/p99 ms': `${w.heartbeatP50.toFixed(1)}/${w.heartbeatP99.toFixed(1)}`,
        'API p99 ms': w.apiP99.toFixed(1),
        'agent req/s': Math.round(w.requestRate),
        'ratio (of hello-world)': (w.requestRate / r.helloRate).toFixed(3),
        'CP CPU %': Math.round(w.serverCpuPercent),
        'false NotReady': w.falseNotReady,
        'failed (sent in window)': w.errors,
        'failed (sent growing)': w.growthErrors,
        'accept queue max (window/growing)': `${w.acceptQueueMax}/${w.growthAcceptQueueMax}`,
        held: w.held ? 'yes' : 'NO',
      })),
    );
    console.log(`largest fleet held: ${r.largestHeld} agents (goal >= 10,000 for 10 min)`);
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
  } else if (name === 'swarm') {
    console.log(`== swarm (${quick ? 'quick' : 'full'}) on ${machineFacts()}`);
    const rows = await benchSwarm(quick ? SWARM_QUICK : SWARM_FULL, log);
    stored.swarm = { at: new Date().toISOString(), mode: quick ? 'quick' : 'full', command: `npm run bench:swarm${quick ? ' -- --quick' : ''}`, machine: machineFacts(), result: rows };
    console.table(
      rows.map((r) => ({
        benchmark: 'swarm',
        what: r.what,
        'flotilla s (median)': (r.flotilla / 1000).toFixed(2),
        'swarm s (median)': (r.swarm / 1000).toFixed(2),
        ratio: r.ratio.toFixed(2),
        goal: '<= 1.0',
      })),
    );
  } else if (name === 'worker') {
    console.log(`== worker (${quick ? 'quick' : 'full'}) on ${machineFacts()}`);
    const r = await benchWorker(quick ? WORKER_QUICK : WORKER_FULL, log);
    stored.worker = { at: new Date().toISOString(), mode: quick ? 'quick' : 'full', command: `npm run bench:worker${quick ? ' -- --quick' : ''}`, machine: machineFacts(), result: r };
    console.table([
      {
        benchmark: 'worker',
        agents: r.agents,
        'CPU ms/request': r.cpuMsPerRequest.toFixed(2),
        'free-plan cap ms': 10,
        ratio: r.ratio.toFixed(3),
        goal: '<= 0.1',
        'CPU ms/cycle': r.cpuMsPerCycle?.toFixed(2) ?? '-',
        'D1 statements/heartbeat': r.statementsPerHeartbeat.toFixed(2),
        'floor ms (hello / +D1)': r.floor ? `${r.floor.helloCpuMsPerRequest.toFixed(2)} / ${r.floor.d1CpuMsPerRequest.toFixed(2)}` : '-',
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

// Agents killed or stopped by the benchmarks leave their namespaces' Docker networks behind, and an
// engine has address pools for about thirty: remove the unused ones (the engine refuses those in use).
if (!renderOnly) await removeUnusedNetworks();

// Quick runs (CI) only print; full runs and --render-only rewrite the docs.
if (!quick || renderOnly || !existsSync('docs/benchmarks.md')) {
  writeFileSync(RESULTS, `${JSON.stringify(stored, null, 2)}\n`);
  writeFileSync('docs/benchmarks.md', renderDocs(stored));
  console.log('wrote docs/benchmarks.md');
}

/** A number for the tables; '-' for one not measured (NaN, stored as null in the JSON). */
function fx(v: number | null | undefined, digits: number): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-';
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
  const fl = s.fleet;
  if (fl) {
    const r = fl.result;
    const last = r.windows[r.windows.length - 1];
    writeFileSync('docs/fleet-heartbeat.svg', fleetSvg(r));
    lines.push(
      '## fleet',
      '',
      `Command: \`${fl.command}\` (${fl.mode} mode, ${fl.at.slice(0, 10)})  `,
      `Machine: ${fl.machine}; ${r.pinned ? 'control plane pinned to one core (core 0), the load generator with every simulated agent on the other (taskset)' : 'processes not pinned'}.`,
      '',
      `Simulated agents (kubemark-style "hollow" agents in one load-generator process) speak the real protocol to the Node control plane (embedded libSQL file): each enrolls with its own Ed25519 key and signs its own JWTs, heartbeats at the cadence the server hands out (every ${(r.heartbeatMs / 1000).toFixed(0)} s with a 60 s lease TTL; renewals re-sign the leases of its pod), long-polls its desired state with its ETag, and reports its pod Running and Ready through a fake container runtime. One Deployment has one pod per node. An operator client lists nodes, gets the Deployment and lists pods, one call every 500 ms. The fleet grows through the sizes; each is measured after settling; the largest is held for ${Math.round(r.holdSeconds / 60) >= 1 ? `${Math.round(r.holdSeconds / 60)} min` : `${r.holdSeconds} s`}. False NotReady: nodes the controller marked NotReady (\`flotilla_node_not_ready_transitions_total\`) although every agent kept heartbeating.`,
      '',
      '| metric | value | baseline (same run) | ratio | goal |',
      '|---|---|---|---|---|',
      `| largest fleet held (heartbeat and API p99 <= 1 s, no failed request sent in the window, no false NotReady) | **${r.largestHeld} agents**${last ? ` (${last.agents} for ${Math.round(last.seconds)} s: ${last.held ? 'held' : 'not held'})` : ''} | hello-world on the same stack: ${Math.round(r.helloRate)} req/s | ${last ? `${(last.requestRate / r.helloRate).toFixed(3)} (${Math.round(last.requestRate)} agent req/s offered at ${last.agents})` : ''} | >= 10,000 agents on one core (${r.largestHeld >= 10000 && r.holdSeconds >= 600 ? 'met' : 'not met'}) |`,
      '',
      'Failed requests are charged to the phase they were sent in: "in window" ones count against the hold; "while growing" ones were sent while the fleet reached that size (enrollment, placement, settling), even if they failed inside the window, and are reported beside it. Accept queue: the most connections waiting in the control plane\'s listen queue, sampled every second (`ss`).',
      '',
      '| agents | window s | heartbeats | heartbeat p50 ms | heartbeat p99 ms | heartbeat max ms | polls answered | API p99 ms | agent req/s | control plane CPU (one core) | RSS MB | pods ready | failed, sent in window | failed, sent while growing | accept queue max, window / growing | false NotReady | held |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...r.windows.map(
        (w) =>
          `| ${w.agents} | ${Math.round(w.seconds)} | ${w.heartbeats} | ${fx(w.heartbeatP50, 1)} | ${fx(w.heartbeatP99, 1)} | ${fx(w.heartbeatMax, 0)} | ${w.polls} | ${fx(w.apiP99, 1)} | ${Math.round(w.requestRate)} | ${fx(w.serverCpuPercent, 0)} % | ${fx(w.serverRssMb, 0)} | ${w.readyPods} | ${w.errors} | ${w.growthErrors ?? '-'} | ${w.acceptQueueMax ?? '-'} / ${w.growthAcceptQueueMax ?? '-'} | ${fx(w.falseNotReady, 0)} | ${w.held ? 'yes' : 'no'} |`,
      ),
      '',
      '![heartbeat latency p50 and p99 against fleet size](fleet-heartbeat.svg)',
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
  const sw = s.swarm;
  if (sw) {
    const secs = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
    lines.push(
      '## swarm',
      '',
      `Command: \`${sw.command}\` (${sw.mode} mode, ${sw.at.slice(0, 10)})  `,
      `Machine: ${sw.machine}.`,
      '',
      'Flotilla (a Node control plane and one agent, compiled CLI, default timings) and Docker Swarm on the same engine, image and command (busybox httpd), behind the same readiness gate: an HTTP check every second (Flotilla: a readiness probe; Swarm: a container health check). Converge: from the create request (`PUT` of a Deployment; `docker service create --detach`) until exactly N containers run and are ready (Flotilla: pods Ready; Swarm: healthy); each removed again between runs. Recover: with the workload running and ready, one container is `docker kill`ed; timed until N containers run and are ready again, the killed one not among them (Flotilla: the agent restarts it under `restartPolicy: Always` as a new container; Swarm: a new task). The rolling update of 10 is under rollout.',
      '',
      '| what | Flotilla (median) | Docker Swarm (same run) | ratio | goal | runs (Flotilla; Swarm) |',
      '|---|---|---|---|---|---|',
      ...sw.result.map(
        (r) =>
          `| ${r.what} | ${(r.flotilla / 1000).toFixed(2)} s | ${(r.swarm / 1000).toFixed(2)} s | **${r.ratio.toFixed(2)}** | <= 1.0 (${r.ratio <= 1 ? 'met' : 'not met'}) | ${secs(r.flotillaMs)}; ${secs(r.swarmMs)} |`,
      ),
      '',
    );
  }
  const wk = s.worker;
  if (wk) {
    const r = wk.result;
    lines.push(
      '## worker',
      '',
      `Command: \`${wk.command}\` (${wk.mode} mode, ${wk.at.slice(0, 10)})  `,
      `Machine: ${wk.machine}.`,
      '',
      `The Worker control plane under \`wrangler dev\` with a local D1 (workerd and its SQLite on this machine). ${r.agents} simulated agents, one pod each, heartbeat at the cadence the Worker hands out (30 s lease TTL: every 5 s; leases renewed every 10 s) and poll their desired state with its ETag ${r.cpuMsPerCycle === undefined ? 'after each heartbeat' : "when a heartbeat's answer says its version changed, or once per the heartbeats' `pollIntervalMs` (5 min)"} (Workers have no long-poll), for ${r.seconds} s. CPU: workerd's user + system time from /proc over the window, minus its idle time over a window of the same length, per agent request. It includes local D1's SQLite, which on Cloudflare runs outside the Worker and is not billed as Worker CPU: an upper bound. Statements: counted by the Worker on its D1 binding (\`flotilla_db_statements_total\`), per heartbeat cycle (a heartbeat and its poll, if one was due). The floor Workers get the same agents' request pattern: ${r.cpuMsPerCycle === undefined ? 'a heartbeat and a poll per cycle' : 'one heartbeat per cycle'}.`,
      '',
      '| metric | value | baseline | ratio | goal |',
      '|---|---|---|---|---|',
      `| CPU per agent request | ${r.cpuMsPerRequest.toFixed(2)} ms (${r.heartbeats} heartbeats, ${r.renewals} of them renewing leases, ${r.polls} polls) | Workers' free-plan CPU limit: 10 ms per request | **${r.ratio.toFixed(3)}** | <= 0.1 (${r.ratio <= 0.1 ? 'met' : 'not met'}) |`,
      ...(r.cpuMsPerCycle !== undefined ? [`| CPU per agent heartbeat cycle (a heartbeat, and a poll when due) | ${r.cpuMsPerCycle.toFixed(2)} ms | | | |`] : []),
      `| D1 statements per heartbeat cycle | ${r.statementsPerHeartbeat.toFixed(2)} (writes ${r.writesPerHeartbeat.toFixed(2)}; batches ${r.batchesPerHeartbeat.toFixed(2)}) | | | |`,
      `| agent request latency p50 / p99; failed requests | ${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} ms; ${r.errors ?? 0} | | | |`,
      ...(r.floor
        ? [
            `| floor: workerd CPU per request for a Worker that only answers (same wrangler dev, agents, cadence, headers) | ${r.floor.helloCpuMsPerRequest.toFixed(2)} ms | | | |`,
            `| floor with ${r.floor.d1StatementsPerCycle} trivial D1 statement(s) per cycle (\`SELECT ?\`) | ${r.floor.d1CpuMsPerRequest.toFixed(2)} ms | | | |`,
            `| Flotilla's Worker less the floor that only answers: its JavaScript, its D1 statements and local D1's cost of them (an upper bound of its own CPU) | ${(r.cpuMsPerRequest - r.floor.helloCpuMsPerRequest).toFixed(2)} ms | 10 ms | ${((r.cpuMsPerRequest - r.floor.helloCpuMsPerRequest) / 10).toFixed(3)} | <= 0.1 (${r.cpuMsPerRequest - r.floor.helloCpuMsPerRequest <= 1 ? 'met' : 'not met'}) |`,
            `| Flotilla's Worker less the floor with D1 statements | ${r.cpuMsPerRequest - r.floor.d1CpuMsPerRequest > 0 ? `${(r.cpuMsPerRequest - r.floor.d1CpuMsPerRequest).toFixed(2)} ms` : `none left: the floor with ${r.floor.d1StatementsPerCycle} trivial statements per cycle cost as much or more (local D1 dominates; not separable here)`} | | | |`,
          ]
        : []),
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
    lines.push(
      '## agent',
      '',
      `Command: \`${ag.command}\` (${ag.mode} mode, ${ag.at.slice(0, 10)})  `,
      `Machine: ${ag.machine}.`,
      '',
      `A real agent (compiled CLI, default timings) managing ${r.containers} containers with HTTP liveness and readiness probes (every 10 s), sampled from /proc every second for ${r.windowSeconds} s once all are Ready. Baseline, same window: an idle Node process with one timer (\`setInterval(() => {}, 1000)\`), the floor of any Node program.${r.unitEnv ? ` Both run with the environment \`docs/systemd/flotilla-agent.service\` gives the agent: ${envText(r.unitEnv)}; the agent sets V8's \`--optimize-for-size\` itself (\`FLOTILLA_AGENT_OPTIMIZE_FOR_SIZE\`).` : ''}`,
      '',
      '| metric | agent | idle Node (same run) | ratio | goal |',
      '|---|---|---|---|---|',
      `| RSS (average; max) | ${r.agentRssMb.avg.toFixed(1)} MB; ${r.agentRssMb.max.toFixed(1)} MB | ${r.idleRssMb.avg.toFixed(1)} MB | **${r.rssRatio.toFixed(2)}** | <= 1.5x (${r.rssRatio <= 1.5 ? 'met' : 'not met'}) and <= 80 MB (${r.agentRssMb.avg <= 80 ? 'met' : 'not met'}) |`,
      `| CPU (share of one core) | ${r.agentCpuPercent.toFixed(2)} % | ${r.idleCpuPercent.toFixed(2)} % | | <= 1 % (${r.agentCpuPercent <= 1 ? 'met' : 'not met'}) |`,
      '',
    );
  }
  // Hand-written findings (what changed the numbers, known limits) follow the generated tables.
  if (existsSync('bench/FINDINGS.md')) lines.push(readFileSync('bench/FINDINGS.md', 'utf8'));
  return `${lines.join('\n')}\n`;
}

/** Heartbeat latency p50 and p99 against fleet size, as a self-contained SVG (log-scaled latency axis). */
function fleetSvg(r: FleetResult): string {
  const W = 640;
  const H = 360;
  const m = { l: 64, r: 24, t: 40, b: 48 };
  const xs = r.windows.map((w) => w.agents);
  const ys = r.windows.flatMap((w) => [w.heartbeatP50, w.heartbeatP99]).filter((v) => Number.isFinite(v) && v > 0);
  const xMax = Math.max(...xs, 1) * 1.05;
  const lo = Math.log10(Math.max(0.1, Math.min(...ys, 1) / 2));
  const hi = Math.log10(Math.max(...ys, 1000) * 1.5);
  const X = (v: number) => m.l + (v / xMax) * (W - m.l - m.r);
  const Y = (v: number) => H - m.b - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * (H - m.t - m.b);
  const line = (key: 'heartbeatP50' | 'heartbeatP99', color: string) => {
    const pts = r.windows.map((w) => `${X(w.agents).toFixed(1)},${Y(w[key]).toFixed(1)}`);
    return `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}"/>${r.windows.map((w) => `<circle cx="${X(w.agents).toFixed(1)}" cy="${Y(w[key]).toFixed(1)}" r="3.5" fill="${color}"/>`).join('')}`;
  };
  const ticks: string[] = [];
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    const v = 10 ** e;
    ticks.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#ddd"/><text x="${m.l - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${v >= 1 ? v : v.toFixed(1)} ms</text>`,
    );
  }
  for (const x of xs) ticks.push(`<text x="${X(x).toFixed(1)}" y="${H - m.b + 18}" text-anchor="middle">${x.toLocaleString('en-US')}</text>`);
  const goal = `<line x1="${m.l}" x2="${W - m.r}" y1="${Y(1000).toFixed(1)}" y2="${Y(1000).toFixed(1)}" stroke="#c00" stroke-dasharray="4 4"/><text x="${W - m.r}" y="${(Y(1000) - 6).toFixed(1)}" text-anchor="end" fill="#c00">p99 limit 1 s</text>`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>Heartbeat latency p50 and p99 against the number of simulated agents</title>`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">Heartbeat latency against fleet size (${Math.round(r.heartbeatMs / 1000)} s heartbeats, control plane on one core)</text>`,
    ...ticks,
    goal,
    `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="#333"/><line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#333"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">simulated agents</text>`,
    line('heartbeatP50', '#1f77b4'),
    line('heartbeatP99', '#ff7f0e'),
    `<rect x="${m.l + 12}" y="${m.t + 6}" width="12" height="3" fill="#1f77b4"/><text x="${m.l + 30}" y="${m.t + 11}">p50</text>`,
    `<rect x="${m.l + 12}" y="${m.t + 22}" width="12" height="3" fill="#ff7f0e"/><text x="${m.l + 30}" y="${m.t + 27}">p99</text>`,
    '</svg>',
    '',
  ].join('\n');
}
