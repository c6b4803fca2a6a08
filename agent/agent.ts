import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { compactDecrypt, importJWK } from 'jose';
import type { Logger } from '../control-plane/config.js';
import { DOCKER_CONFIG_JSON, type PodSpec, referencedNames } from '../shared/manifest.js';
import { type AgentEvent, type DesiredPod, type DesiredState, desiredStateSchema, type PodConfig, type PodStatusReport } from '../shared/protocol.js';
import { AgentClient, ApiFailure, enroll } from './client.js';
import { readFacts } from './facts.js';
import { generateNodeKeys, type Identity, loadIdentity, saveIdentity, signingKeyOf, writePrivate } from './identity.js';
import { LeaseVerifier, type VerifiedLease } from './leases.js';
import { streamLog } from './logs.js';
import { Outbox } from './outbox.js';
import { ConfigError, containerEnv, plainEnv, removeVolumes, secretText, writeVolumes } from './podconfig.js';
import { ProbeManager, type ProbeTarget } from './probes.js';
import { ServiceProxy } from './proxy.js';
import { type ActualContainer, computePodStatus, type LastTermination, normalizeImage, type PodProblem, planSteps, type Step } from './reconcile.js';
import { credentialsFor, type RegistryAuth } from './registryauth.js';
import { connectDocker, DockerRuntime, networkName } from './runtime.js';
import { UsageSampler } from './usage.js';
import { ConfigVault } from './vault.js';
import { planMounts } from './volumes.js';
import { backoffMs, retryBefore, Waker } from './waker.js';

/** The address this node publishes container ports and NodePorts on: --host-ip, else --advertise-address, else loopback. */
function nodeIpOf(opts: AgentOptions): string {
  return opts.hostIp ?? opts.advertiseAddress ?? '127.0.0.1';
}

/** How long past a lease's expiry the fence loop keeps checking that its pod's containers are stopped. */
const FENCE_WATCH_AFTER_EXP_MS = 2000;

/** Options of an agent. Every duration tests depend on is here. */
export interface AgentOptions {
  server: string;
  dataDir: string;
  /** Enrollment token; needed only until the agent has an identity in its data dir. */
  token?: string;
  name?: string;
  labels?: Record<string, string>;
  dockerHost?: string;
  /** Host IP that container ports are published on. */
  hostIp?: string;
  advertiseAddress?: string;
  logger: Logger;
  /** Period of the reconcile loop when nothing wakes it. */
  reconcileMs?: number;
  /** Longest a replaced pod's stop waits for its replacement's image to be pulled (default 2 min). */
  prePullWaitMs?: number;
  /** Base of the restart back-off (10 s in production, doubling to 5 min). */
  restartBackoffMs?: number;
  /** Retry back-off against an unreachable control plane: base and cap. */
  retryBaseMs?: number;
  retryCapMs?: number;
  stopTimeoutSec?: number;
  /** After a restart, how long reconciling waits for the first poll before trusting the cache. */
  firstPollWaitMs?: number;
  /** Scales probe delays and periods (1 in production; tests may speed probes up). */
  probeTimeScale?: number;
  /** Path prefixes pods may mount with `hostPath` (none by default: every hostPath is refused). */
  allowedHostPaths?: string[];
  /** Service proxy: how long an endpoint whose connect failed is skipped (default 10 s). */
  proxyEjectMs?: number;
  /**
   * Before stopping a container of a pod that is going away (deleted or replaced, not fenced), how
   * long to wait when its namespace has services: every node's proxy drops it as an endpoint first,
   * so no request is sent to a container that is dying (default 2 s; Kubernetes users get the same
   * from a preStop sleep).
   */
  endpointDrainMs?: number;
  /** How often resource use is reported when the control plane does not say (default 30 s). */
  metricsMs?: number;
  /** Service proxy: first two octets of service addresses here (default 127.77; several agents on one host each need their own). */
  serviceIpPrefix?: string;
  /**
   * How long a namespace's network is kept after the node's last pod of the namespace is gone
   * (default 10 min): a pod of the namespace arriving meanwhile starts without a network create.
   */
  networkIdleMs?: number;
}

/** Enrollment was refused (bad, used or expired token; name taken): not retried. */
export class EnrollmentRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnrollmentRefused';
  }
}

interface LeaseState {
  token: string;
  verified: VerifiedLease | null;
  refused?: string;
}

/**
 * The agent: enrolls, then runs three loops: poll desired state (long-poll, ETag), heartbeat
 * (liveness, lease renewal, status), and reconcile (plan steps over Docker, execute, re-read).
 * It only ever touches containers labelled with its own node id.
 */
export class Agent {
  private running = true;
  private desired: DesiredState | null = null;
  private etag: string | null = null;
  private readonly leases = new Map<string, LeaseState>();
  /**
   * Leases a heartbeat renewed for pods this agent has not polled yet. The poll that brings such a
   * pod may have been answered before the renewal, with the older expiry: the later lease wins.
   */
  private readonly unpolledLeases = new Map<string, string>();
  private readonly maxEpoch = new Map<string, number>();
  private readonly problems = new Map<string, PodProblem>();
  private readonly pullRetryAt = new Map<string, number>();
  private readonly restarts = new Map<string, number>();
  private readonly backoffs = new Map<string, number>();
  private readonly lastStates = new Map<string, LastTermination>();
  private readonly probes: ProbeManager;
  private readonly outbox = new Outbox();
  /** Pods this agent knows of (seen desired, or found by label), by id -> epoch: reported `gone` once removed. */
  private readonly knownPods = new Map<string, number>();
  private readonly pollWaker = new Waker();
  /** From the last heartbeat answer: without long-poll, the longest to go without polling (0: poll every heartbeat). */
  private pollIntervalMs = 0;
  private readonly hbWaker = new Waker();
  private readonly reconcileWaker = new Waker();
  private readonly fenceWaker = new Waker();
  private readonly metricsWaker = new Waker();
  private readonly eventsWaker = new Waker();
  /**
   * Containers the engine said died, until its container list says so too (it lags the `die` event
   * by tens of milliseconds): the pass that the event woke may still see them running.
   */
  private readonly dying = new Map<string, number>();
  /** Decrypted Secrets/ConfigMaps per pod, briefly cached (a pass creating several containers fetches once). */
  private readonly configs = new Map<string, { at: number; cfg?: PodConfig; error?: string; version?: string }>();
  /** The config version (`Secret/db@3,...`) whose files each pod's volumes hold. */
  private readonly appliedConfig = new Map<string, string>();
  /** Image pulls in flight (a reconcile pull and a pre-pull of the same image are one pull). */
  private readonly pulling = new Map<string, Promise<void>>();
  /** Containers with a stop in flight (a fencing stop and a reconcile stop never double up). */
  private readonly stopping = new Set<string>();
  private readonly loops: Promise<void>[] = [];
  private readonly abort = new AbortController();
  private lastActual: ActualContainer[] = [];
  /** The node's L4 proxy for services (see proxy.ts). */
  readonly proxy: ServiceProxy;
  private servicesSync: Promise<void> = Promise.resolve();
  private firstPollDone!: () => void;
  /** Settles after the first poll attempt (answered or failed). */
  private readonly firstPoll = new Promise<void>((resolve) => {
    this.firstPollDone = resolve;
  });

  private constructor(
    readonly identity: Identity,
    private readonly client: AgentClient,
    readonly runtime: DockerRuntime,
    private readonly verifier: LeaseVerifier,
    private readonly opts: AgentOptions,
    private readonly log: Logger,
    private readonly vault: ConfigVault,
  ) {
    this.proxy = new ServiceProxy({ logger: log, ejectMs: opts.proxyEjectMs ?? 10_000, connectTimeoutMs: 2000, ...(opts.serviceIpPrefix ? { ipPrefix: opts.serviceIpPrefix } : {}) });
    this.probes = new ProbeManager(
      runtime.docker,
      {
        kill: (t, reason) => void this.killUnhealthy(t, reason),
        changed: () => {
          this.reportStatuses();
        },
        unhealthy: (t, kind, message) => {
          this.log.debug({ pod: t.podName, container: t.container.name, kind, message }, 'probe failed');
          this.queueEvent({ podId: t.podId, type: 'Warning', reason: 'Unhealthy', message: `${kind[0]?.toUpperCase()}${kind.slice(1)} probe failed: ${message}` });
        },
      },
      opts.probeTimeScale ?? 1,
    );
  }

  /** A liveness (or startup) probe failed past its threshold: kill the container; reconcile restarts it. */
  private async killUnhealthy(t: ProbeTarget, reason: string): Promise<void> {
    this.log.info({ pod: t.podName, container: t.container.name, reason }, 'killing unhealthy container');
    this.queueEvent({ podId: t.podId, type: 'Normal', reason: 'Killing', message: `Container ${t.container.name} failed ${reason}, will be restarted` });
    try {
      const grace = t.spec.terminationGracePeriodSeconds;
      await this.runtime.run({ action: 'stop', containerId: t.containerId, podId: t.podId, reason, ...(grace !== undefined ? { timeoutSec: grace } : {}) });
    } catch (e) {
      this.log.warn({ pod: t.podName, err: (e as Error).message }, 'killing unhealthy container failed');
    }
    this.reconcileWaker.wake();
  }

  /** Enrolls if needed, then starts the loops. Throws EnrollmentRefused on a refused enrollment. */
  static async start(opts: AgentOptions): Promise<Agent> {
    const docker = connectDocker(opts.dockerHost);
    let identity = loadIdentity(opts.dataDir);
    let dockerVersion: string;
    try {
      dockerVersion = (await docker.version()).Version;
    } catch (e) {
      throw new Error(`cannot reach the Docker engine${opts.dockerHost ? ` at ${opts.dockerHost}` : ''}: ${(e as Error).message}`);
    }
    const facts = readFacts(dockerVersion, opts.advertiseAddress);
    if (!identity) {
      if (!opts.token) throw new EnrollmentRefused('this agent is not enrolled yet: pass --token with an enrollment token');
      const keys = await generateNodeKeys();
      const name = (opts.name ?? hostname())
        .toLowerCase()
        .replace(/[^a-z0-9-]/g, '-')
        .replace(/^-+|-+$/g, '')
        .slice(0, 63);
      let res: Awaited<ReturnType<typeof enroll>>;
      for (let attempt = 0; ; attempt++) {
        try {
          res = await enroll(opts.server, { token: opts.token, name, publicKey: keys.signingPublic as never, encryptionKey: keys.encryptionPublic as never, labels: opts.labels ?? {}, facts });
          break;
        } catch (e) {
          // A refusal is final; only an unreachable control plane is retried (a bounded number of times).
          if (e instanceof ApiFailure && e.status < 500) throw new EnrollmentRefused(`enrollment refused: ${e.message}`);
          if (attempt >= 5) throw new Error(`cannot reach the control plane at ${opts.server}: ${(e as Error).message}`);
          await new Promise((r) => setTimeout(r, backoffMs(attempt, opts.retryBaseMs ?? 1000, opts.retryCapMs ?? 30_000)));
        }
      }
      identity = { ...res, server: opts.server, signingKey: keys.signing, encryptionKey: keys.encryption };
      saveIdentity(opts.dataDir, identity);
      opts.logger.info({ node: identity.name, nodeId: identity.nodeId }, 'enrolled');
    }
    const client = new AgentClient(opts.server, identity.nodeId, identity.audience, await signingKeyOf(identity));
    // Published ports go on the address other nodes reach this one at (loopback unless told otherwise).
    const runtime = new DockerRuntime(docker, { nodeId: identity.nodeId, hostIp: nodeIpOf(opts), stopTimeoutSec: opts.stopTimeoutSec ?? 10 });
    const jwksPath = join(opts.dataDir, 'jwks.json');
    const cachedJwks = existsSync(jwksPath) ? (JSON.parse(readFileSync(jwksPath, 'utf8')) as { keys: unknown[] }) : undefined;
    const verifier = new LeaseVerifier(
      () => client.jwks(),
      identity.issuer,
      identity.nodeId,
      (j) => writePrivate(jwksPath, JSON.stringify(j)),
      cachedJwks,
    );
    const log = opts.logger.child({ node: identity.name });
    const agent = new Agent(identity, client, runtime, verifier, opts, log, await ConfigVault.open(opts.dataDir, identity.nodeId));
    agent.outbox.setFacts(facts);
    await agent.loadCachedDesired();
    agent.vault.prune(new Set((agent.desired?.pods ?? []).map((p) => p.id)));
    await agent.runtime.pruneNetworks(new Set((agent.desired?.pods ?? []).map((p) => p.namespace)), agent.networkIdleMs).catch(() => undefined);
    agent.loops.push(agent.pollLoop(), agent.heartbeatLoop(), agent.reconcileLoop(), agent.fenceLoop(), agent.metricsLoop(), agent.eventsLoop());
    return agent;
  }

  /** Stops the loops. Containers keep running: a restarted agent adopts them. */
  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    this.pollWaker.wake();
    this.hbWaker.wake();
    this.reconcileWaker.wake();
    this.fenceWaker.wake();
    this.metricsWaker.wake();
    this.eventsWaker.wake();
    await Promise.allSettled(this.loops);
    this.probes.stopAll();
    await this.servicesSync.catch(() => undefined);
    await this.proxy.close();
  }

  /** The node's name. */
  get name(): string {
    return this.identity.name;
  }

  // ---- desired state and leases ----

  private desiredPath(): string {
    return join(this.opts.dataDir, 'desired.json');
  }

  private async loadCachedDesired(): Promise<void> {
    if (!existsSync(this.desiredPath())) return;
    try {
      const parsed = desiredStateSchema.safeParse(JSON.parse(readFileSync(this.desiredPath(), 'utf8')));
      if (parsed.success) await this.acceptDesired(parsed.data, null, false);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'ignoring unreadable desired-state cache');
    }
  }

  private async acceptDesired(state: DesiredState, etag: string | null, persist: boolean): Promise<void> {
    const now = Date.now();
    const next = new Map<string, LeaseState>();
    for (const p of state.pods) {
      const v = await this.verifier.verify(p.lease, { podId: p.id, specDigest: p.specDigest, minEpoch: this.maxEpoch.get(p.id) ?? 0 }, now);
      if ('refused' in v) {
        // A lease that fails verification: refused, logged, and the pod is not started.
        this.log.warn({ pod: p.name, reason: v.refused }, 'lease refused');
        this.queueEvent({ podId: p.id, type: 'Warning', reason: 'LeaseRejected', message: v.refused });
        next.set(p.id, { token: p.lease, verified: null, refused: v.refused });
      } else {
        // A lease never goes back: one this agent holds (renewed by a heartbeat after this answer
        // was made) or got for the pod before polling it may expire later than the polled one.
        const later = await this.laterLease(p, v, now);
        if (later) p.lease = later.token;
        this.maxEpoch.set(p.id, v.epoch);
        next.set(p.id, { token: p.lease, verified: later?.verified ?? v });
      }
      this.unpolledLeases.delete(p.id);
      this.knownPods.set(p.id, p.epoch);
    }
    this.log.debug({ version: state.version, pods: state.pods.length }, 'desired state received');
    this.leases.clear();
    for (const [k, v] of next) this.leases.set(k, v);
    this.desired = state;
    if (etag !== null) this.etag = etag;
    if (persist) writePrivate(this.desiredPath(), JSON.stringify(state));
    this.reconcileWaker.wake();
    this.fenceWaker.wake();
    void this.prePull();
    this.syncServices();
    void this.releaseVolumes();
    this.serveLogs();
  }

  /** A lease for pod `p` (same epoch, its current spec) that expires later than `v`, from what this agent holds or was given before polling the pod. */
  private async laterLease(p: DesiredPod, v: VerifiedLease, now: number): Promise<{ token: string; verified: VerifiedLease } | null> {
    let best: { token: string; verified: VerifiedLease } | null = null;
    const held = this.leases.get(p.id);
    for (const token of [held?.verified && held.verified.exp > v.exp ? held.token : undefined, this.unpolledLeases.get(p.id)]) {
      if (token === undefined || token === p.lease) continue;
      const w = await this.verifier.verify(token, { podId: p.id, specDigest: p.specDigest, minEpoch: v.epoch }, now);
      if ('refused' in w || w.epoch !== v.epoch || w.exp <= (best?.verified.exp ?? v.exp)) continue;
      best = { token, verified: w };
    }
    return best;
  }

  /** Log requests being served or served already (a stale desired state may list them again). */
  private readonly logsServed = new Set<string>();

  /** Serves operators' `logs` requests for this node's containers (read from the engine, uploaded in chunks). */
  private serveLogs(): void {
    for (const req of this.desired?.logs ?? []) {
      if (this.logsServed.has(req.id)) continue;
      this.logsServed.add(req.id);
      if (this.logsServed.size > 1000) this.logsServed.delete(this.logsServed.values().next().value as string);
      const send = (chunk: { seq: number; data: string; done?: boolean; error?: string }) => this.client.logChunk(req.id, chunk);
      const c = this.lastActual.filter((a) => a.podId === req.podId && a.container === req.container).sort((x, y) => y.restarts - x.restarts)[0];
      const run = c
        ? streamLog(this.runtime.docker, c.id, req, send)
        : send({ seq: 0, data: '', done: true, error: `container ${req.container} of this pod has not been created on node ${this.identity.name} (yet)` }).then(() => undefined);
      void run.catch((e) => {
        this.log.warn({ err: (e as Error).message }, 'serving a log request failed');
        void send({ seq: 1_000_000, data: '', done: true, error: `reading the log failed: ${(e as Error).message}` }).catch(() => undefined);
      });
    }
  }

  private releasing = false;

  /**
   * Removes the volumes of claims deleted with reclaim policy Delete (never one a container still
   * uses: retried on the next reconcile pass) and reports them, so the claims go.
   */
  private async releaseVolumes(): Promise<void> {
    const names = this.desired?.volumeDeletes ?? [];
    if (names.length === 0 || this.releasing) return;
    this.releasing = true;
    try {
      const done: string[] = [];
      for (const n of names) {
        if (await this.runtime.removeVolume(n)) done.push(n);
        else this.log.debug({ volume: n }, 'volume of a deleted claim still in use; retrying');
      }
      if (done.length > 0) {
        await this.client.volumesRemoved(done);
        this.log.info({ volumes: done }, 'removed the volumes of deleted claims');
      }
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'removing the volumes of deleted claims failed; retrying');
    } finally {
      this.releasing = false;
    }
  }

  // ---- services ----

  /** Brings the proxy and the namespaces' hosts files in line with the desired state's services (serialised). */
  private syncServices(): void {
    this.servicesSync = this.servicesSync
      .then(async () => {
        const gateways = await this.runtime.gateways();
        await this.proxy.update(this.desired?.services ?? [], gateways, nodeIpOf(this.opts));
        for (const ns of new Set((this.desired?.pods ?? []).map((p) => p.namespace))) this.writeHosts(ns, gateways.get(ns));
      })
      .catch((e) => this.log.warn({ err: (e as Error).message }, 'updating the service proxy failed'));
  }

  private hostsPath(namespace: string, hostNetwork: boolean): string {
    return join(this.opts.dataDir, 'hosts', `${namespace}${hostNetwork ? '.host' : ''}`);
  }

  /**
   * The hosts files of a namespace's pods: every service of the namespace by name (`web`,
   * `web.NS`, `web.NS.svc`, `web.NS.svc.cluster.local`) at the gateway of the namespace's network
   * (bridge pods) or at the service's address (hostNetwork pods). Rewritten in place, so running
   * containers, which bind the file, see new services at once.
   */
  private writeHosts(namespace: string, gateway: string | undefined): void {
    const svcs = (this.desired?.services ?? []).filter((s) => s.namespace === namespace);
    mkdirSync(join(this.opts.dataDir, 'hosts'), { recursive: true });
    for (const hostNetwork of [false, true]) {
      const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
      for (const s of svcs) {
        const ip = hostNetwork ? this.proxy.localIp(s.clusterIP) : gateway;
        if (ip) lines.push(`${ip}\t${s.name} ${s.name}.${namespace} ${s.name}.${namespace}.svc ${s.name}.${namespace}.svc.cluster.local`);
      }
      const path = this.hostsPath(namespace, hostNetwork);
      const text = `# written by the flotilla agent: services of namespace ${namespace}\n${lines.join('\n')}\n`;
      if (!existsSync(path) || readFileSync(path, 'utf8') !== text) writeFileSync(path, text, { mode: 0o644 });
    }
  }

  /** Kubernetes-style service variables for a new container (the namespace's services known now). */
  private serviceEnv(namespace: string, hostNetwork: boolean, gateway: string | undefined): string[] {
    const out: string[] = [];
    for (const s of this.desired?.services ?? []) {
      if (s.namespace !== namespace) continue;
      const host = hostNetwork ? this.proxy.localIp(s.clusterIP) : gateway;
      const first = s.ports[0];
      if (!host || !first) continue;
      const prefix = s.name.toUpperCase().replace(/-/g, '_');
      out.push(`${prefix}_SERVICE_HOST=${host}`, `${prefix}_SERVICE_PORT=${first.port}`);
      for (const p of s.ports) if (p.name) out.push(`${prefix}_SERVICE_PORT_${p.name.toUpperCase().replace(/-/g, '_')}=${p.port}`);
    }
    return out;
  }

  /**
   * Pulls, in the background, the images the control plane lists for upcoming rollouts (new
   * templates of workloads with old pods here), so an old pod is stopped only once its
   * replacement's image is local.
   */
  private async prePull(): Promise<void> {
    const want = this.desired?.prefetch ?? [];
    if (want.length === 0) return;
    let have: Set<string>;
    try {
      have = await this.runtime.images();
    } catch {
      return; // the engine is unreachable: reconcile reports that
    }
    for (const image of new Set(want.map((p) => p.image))) {
      if (have.has(normalizeImage(image)) || this.pulling.has(image)) continue;
      this.log.info({ image }, 'pre-pulling the image of an upcoming rollout');
      const workloads = new Set(want.filter((p) => p.image === image).map((p) => `${p.namespace}/${p.workload}`));
      this.pull(image, this.podsUsing(image, undefined, workloads)).catch((e) => this.log.warn({ image, err: (e as Error).message.slice(0, 300) }, 'pre-pull failed'));
    }
  }

  /** One pull per image at a time, shared by whoever needs it; with the registry credentials of the pods' `imagePullSecrets`. */
  private pull(image: string, podIds: readonly string[] = []): Promise<void> {
    let p = this.pulling.get(image);
    if (!p) {
      p = this.registryAuth(image, podIds)
        .then((auth) => this.runtime.run({ action: 'pull', image, podId: podIds[0] ?? '', ...(auth ? { auth } : {}) }))
        .finally(() => this.pulling.delete(image));
      this.pulling.set(image, p);
    }
    return p;
  }

  /** Pods whose pull secrets may serve a pull of `image`: `first`, then runnable pods running it, then pods of `workloads` (a pre-pull for their next revision). */
  private podsUsing(image: string, first?: string, workloads?: ReadonlySet<string>): string[] {
    const out = first ? [first] : [];
    for (const p of this.runnable(Date.now())) if (!out.includes(p.id) && (p.spec.containers.some((c) => c.image === image) || workloads?.has(`${p.namespace}/${p.workload}`))) out.push(p.id);
    return out;
  }

  /**
   * Credentials for pulling `image`: from the first `kubernetes.io/dockerconfigjson` Secret named in
   * the `imagePullSecrets` of one of these pods that has an entry for the image's registry, as the
   * kubelet does. A missing or unusable pull secret is a warning event; the pull then goes without
   * credentials (a public image still pulls). The credentials are never logged.
   */
  private async registryAuth(image: string, podIds: readonly string[]): Promise<RegistryAuth | undefined> {
    for (const podId of podIds) {
      const pod = this.desired?.pods.find((p) => p.id === podId);
      const names = (pod?.spec.imagePullSecrets ?? []).map((s) => s.name);
      if (!pod || names.length === 0) continue;
      let cfg: PodConfig;
      try {
        cfg = await this.fetchConfig(podId, true);
      } catch (e) {
        this.queueEvent({ podId, type: 'Warning', reason: 'FailedToRetrieveImagePullSecret', message: `cannot fetch the image pull secrets: ${(e as Error).message.slice(0, 300)}` });
        continue;
      }
      for (const name of names) {
        const secret = cfg.secrets[name];
        const problem = !secret
          ? `secret "${pod.namespace}/${name}" not found`
          : secret.type !== DOCKER_CONFIG_JSON
            ? `secret "${pod.namespace}/${name}" is of type ${secret.type}, not ${DOCKER_CONFIG_JSON}`
            : undefined;
        if (problem) {
          this.queueEvent({
            podId,
            type: 'Warning',
            reason: 'FailedToRetrieveImagePullSecret',
            message: `Unable to retrieve some image pull secrets (${name}): ${problem}; attempting to pull the image without them`,
          });
          continue;
        }
        const auth = credentialsFor(image, secretText(secret?.data['.dockerconfigjson'] ?? ''));
        this.log.debug({ image, pod: pod.name, secret: name, matched: auth !== undefined }, 'image pull secret');
        if (auth) return auth;
      }
    }
    return undefined;
  }

  /** Pulls (started now, or in flight) of the images a workload is moving to that are not here yet: its desired pods' and its pre-pull list. */
  private async pullsFor(namespace: string, workload: string): Promise<Promise<void>[]> {
    const images = new Set<string>();
    for (const p of this.desired?.pods ?? []) if (p.namespace === namespace && p.workload === workload) for (const c of p.spec.containers) images.add(c.image);
    for (const p of this.desired?.prefetch ?? []) if (p.namespace === namespace && p.workload === workload) images.add(p.image);
    if (images.size === 0) return [];
    const have = await this.runtime.images();
    return [...images].filter((i) => !have.has(normalizeImage(i))).map((i) => this.pull(i, this.podsUsing(i, undefined, new Set([`${namespace}/${workload}`]))));
  }

  private async renewLeases(tokens: Record<string, string>): Promise<void> {
    const now = Date.now();
    for (const [podId, token] of Object.entries(tokens)) {
      const pod = this.desired?.pods.find((p) => p.id === podId);
      if (!pod) {
        // Not polled yet: the next poll brings the pod, perhaps with an older lease than this one.
        if (this.unpolledLeases.size >= 10_000) this.unpolledLeases.clear(); // bounded: pods that never come
        this.unpolledLeases.set(podId, token);
        continue;
      }
      const v = await this.verifier.verify(token, { podId, specDigest: pod.specDigest, minEpoch: this.maxEpoch.get(podId) ?? 0 }, now);
      if ('refused' in v) {
        this.log.warn({ pod: pod.name, reason: v.refused }, 'renewed lease refused');
        continue;
      }
      this.maxEpoch.set(podId, v.epoch);
      this.leases.set(podId, { token, verified: v });
      pod.lease = token;
    }
    if (this.desired) writePrivate(this.desiredPath(), JSON.stringify(this.desired));
    this.fenceWaker.wake();
  }

  /**
   * Pods this node may run now: desired, with a verified lease that has not lapsed, or a verified
   * `keep` lease (those pods stay up while the node is disconnected; they never move elsewhere).
   */
  private runnable(now: number): DesiredPod[] {
    return (this.desired?.pods ?? []).filter((p) => {
      const l = this.leases.get(p.id)?.verified;
      return l !== undefined && l !== null && (l.policy === 'keep' || this.stopAtMs(l) > now);
    });
  }

  /**
   * When (ms since the epoch) the agent starts stopping a `stop` lease's pod, so that its containers
   * are dead by the expiry itself (the control plane reuses the slot after expiry plus the skew
   * margin): the stop grace (at most a quarter of the lease TTL) and half a second before it; the
   * fence loop runs on its own timer, so no reconcile period is added. Renewals leave at least 5/12
   * of the TTL, so a connected agent gets here only when a renewal is later than TTL/6 (5/12 - 1/4).
   */
  private stopAtMs(l: VerifiedLease): number {
    const ttlMs = Math.max(0, (l.exp - l.iat) * 1000);
    return l.exp * 1000 - Math.min((this.opts.stopTimeoutSec ?? 10) * 1000, ttlMs / 4) - 500;
  }

  /** When the first pod held under a `stop` lease starts being stopped for want of a renewal (Infinity: none). */
  private firstStopAt(): number {
    let at = Number.POSITIVE_INFINITY;
    for (const p of this.desired?.pods ?? []) {
      const l = this.leases.get(p.id)?.verified;
      if (l?.policy === 'stop') at = Math.min(at, this.stopAtMs(l));
    }
    return at;
  }

  /** A stop because a lease is lapsing gets a grace that ends before the lease does (counted from the moment the stop is sent). */
  private fenceStop(step: Step): Step {
    if (step.action !== 'stop') return step;
    const l = this.leases.get(step.podId)?.verified;
    if (l?.policy !== 'stop' || !this.desired?.pods.some((p) => p.id === step.podId)) return step;
    const graceSec = Math.max(0, Math.floor((l.exp * 1000 - Date.now() - 500) / 1000));
    return { ...step, reason: 'lease expiring', timeoutSec: Math.min(step.timeoutSec ?? this.opts.stopTimeoutSec ?? 10, graceSec) };
  }

  // ---- loops ----

  private async pollLoop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        const waitMs = this.desired?.pollWaitMs ?? 0;
        const r = await this.client.desired(this.etag, waitMs + 15_000, this.abort.signal);
        failures = 0;
        if (r) {
          const parsed = desiredStateSchema.safeParse(r.state);
          if (!parsed.success) throw new Error(`invalid desired state from control plane: ${parsed.error.issues[0]?.message}`);
          await this.acceptDesired(parsed.data, r.etag, true);
        }
        // With long-poll the server already waited. Without it, poll again when a heartbeat says the
        // version changed (the waker), else after the heartbeats' pollIntervalMs; where heartbeats do
        // not say (their version is only a hint), after every heartbeat interval.
        this.firstPollDone();
        if (!r && (this.desired?.pollWaitMs ?? 0) === 0) await this.pollWaker.sleep(this.pollIntervalMs || this.desired?.heartbeatMs || 5000);
      } catch (e) {
        this.firstPollDone();
        if (!this.running) return;
        this.logFailure('poll', e, failures);
        await this.pollWaker.sleep(backoffMs(failures++, this.opts.retryBaseMs ?? 1000, this.opts.retryCapMs ?? 30_000));
      }
    }
  }

  /**
   * Reports resource use every metrics interval (the control plane's, else --metrics-interval):
   * the first sample only starts the CPU counters, so the first report comes one interval later.
   */
  private async metricsLoop(): Promise<void> {
    const sampler = new UsageSampler(this.runtime.docker);
    let first = true;
    let failures = 0;
    while (this.running) {
      const every = this.desired?.metricsMs || this.opts.metricsMs || 30_000;
      try {
        // The reconcile loop's latest view of the containers (re-read every pass): no extra engine call.
        const report = await sampler.sample(this.lastActual);
        if (!first && this.running) await this.client.metrics(report);
        failures = 0;
      } catch (e) {
        if (!this.running) return;
        this.logFailure('metrics report', e, failures++);
      }
      first = false;
      await this.metricsWaker.sleep(every);
    }
  }

  private async heartbeatLoop(): Promise<void> {
    let failures = 0;
    let next = 0;
    while (this.running) {
      await this.hbWaker.sleep(next);
      if (!this.running) return;
      const { body, ack } = this.outbox.next();
      try {
        const res = await this.client.heartbeat(body);
        failures = 0;
        // Acknowledged: only now forget what was sent (nothing acknowledged is lost, nothing unacknowledged is dropped).
        for (const gone of ack()) this.forgetPod(gone.podId);
        if (Object.keys(res.leases).length > 0) {
          this.log.debug({ renewed: Object.keys(res.leases).length }, 'leases renewed');
          await this.renewLeases(res.leases);
          this.reconcileWaker.wake();
        }
        this.pollIntervalMs = res.pollIntervalMs ?? 0;
        if (this.desired && res.desiredVersion !== this.desired.version) this.pollWaker.wake();
        next = res.nextHeartbeatMs;
      } catch (e) {
        if (!this.running) return;
        this.logFailure('heartbeat', e, failures);
        // Capped back-off, but the agent must be awake when the control plane returns while a
        // renewal can still save a lease: a short outage (a control-plane restart, a flaky uplink)
        // must not cost pods that a timely retry would have kept.
        const base = this.opts.retryBaseMs ?? 1000;
        next = retryBefore(backoffMs(failures++, base, this.opts.retryCapMs ?? 30_000), this.firstStopAt() - Date.now(), base);
      }
    }
  }

  private get networkIdleMs(): number {
    return this.opts.networkIdleMs ?? 600_000;
  }

  private async reconcileLoop(): Promise<void> {
    // After a restart, fresh leases from the control plane beat the cached ones (which may have
    // lapsed while the agent was down): wait briefly for the first poll so healthy containers are
    // adopted, not stopped and recreated. Offline, the cache decides after the wait.
    await Promise.race([this.firstPoll, new Promise((r) => setTimeout(r, this.opts.firstPollWaitMs ?? 10_000))]);
    while (this.running) {
      try {
        if (this.desired) await this.reconcileOnce();
        // A claim volume still in use when it was released: tried again once its pods are gone.
        void this.releaseVolumes();
        if ((this.runtime.unusedNetworksDueAt(this.networkIdleMs) ?? Infinity) <= Date.now()) {
          void this.runtime
            .removeUnusedNetworks(this.networkIdleMs)
            .then((removed) => (removed ? this.syncServices() : undefined))
            .catch(() => undefined);
        }
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'reconcile failed');
      }
      await this.reconcileWaker.sleep(this.opts.reconcileMs ?? 2000);
    }
  }

  /**
   * The engine's events: a container of this node that dies (exit, kill, OOM) or is removed wakes
   * the reconcile loop at once, so a killed replica is replaced without waiting for the next
   * periodic pass (`FLOTILLA_RECONCILE_MS`), which stays as the safety net. A lost stream (the
   * engine restarting) is reopened with back-off; opening it wakes a pass too, for what was missed.
   */
  private async eventsLoop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      let opened = false;
      try {
        await this.runtime.followContainerEvents(this.abort.signal, (e) => {
          opened = true;
          if (e?.action === 'die' && e.id) this.dying.set(e.id, Date.now() + 10_000);
          this.reconcileWaker.wake();
        });
      } catch (e) {
        if (this.running) this.log.debug({ err: (e as Error).message }, 'engine events stream failed; reopening');
      }
      if (opened) failures = 0;
      if (this.running) await this.eventsWaker.sleep(backoffMs(failures++, this.opts.retryBaseMs ?? 1000, this.opts.retryCapMs ?? 30_000));
    }
  }

  /**
   * Fencing on its own clock: a reconcile pass can be busy for minutes (an image pull), so the stop
   * of a pod whose `stop` lease is lapsing must not wait for it. Sleeps until the earliest stop
   * deadline (or until leases change); from that deadline until just past the expiry it stops the
   * pod's running containers, checking again every quarter second, so a container whose create was
   * in flight at the deadline is caught too. A stop in flight is never sent twice.
   */
  private async fenceLoop(): Promise<void> {
    while (this.running) {
      const now = Date.now();
      let next = now + 60_000;
      const lapsing = new Set<string>();
      for (const p of this.desired?.pods ?? []) {
        const l = this.leases.get(p.id)?.verified;
        if (l?.policy !== 'stop') continue;
        const at = this.stopAtMs(l);
        if (at > now) next = Math.min(next, at);
        else if (now < l.exp * 1000 + FENCE_WATCH_AFTER_EXP_MS) {
          lapsing.add(p.id);
          next = Math.min(next, now + 250);
        }
      }
      if (lapsing.size > 0) {
        try {
          const actual = await this.runtime.listActual();
          const targets = actual.filter((a) => a.state === 'running' && lapsing.has(a.podId) && !this.stopping.has(a.id));
          if (targets.length > 0) this.log.warn({ pods: [...new Set(targets.map((a) => a.podName))] }, 'leases lapsing without renewal: stopping their containers');
          await Promise.all(targets.map((a) => this.execute({ action: 'stop', containerId: a.id, podId: a.podId, reason: 'lease expiring' }, actual)));
          if (targets.length > 0) this.reconcileWaker.wake();
        } catch (e) {
          this.log.error({ err: (e as Error).message }, 'fencing failed');
        }
      }
      await this.fenceWaker.sleep(Math.max(0, next - Date.now()));
    }
  }

  /** One full reconcile: execute layers of steps until none is left (bounded), then report. */
  async reconcileOnce(): Promise<void> {
    for (let layer = 0; layer < 10 && this.running; layer++) {
      const now = Date.now();
      const actual = await this.runtime.listActual();
      this.lastActual = actual;
      if (layer === 0) this.recheckDying(actual, now);
      const runnable = this.runnable(now);
      // Images matter only for containers still to create: skip the engine call when every one exists.
      const missing = runnable.some((p) => p.spec.containers.some((c) => !actual.some((x) => x.podId === p.id && x.container === c.name)));
      const images = missing ? await this.runtime.images() : new Set(runnable.flatMap((p) => p.spec.containers.map((c) => normalizeImage(c.image))));
      const steps = planSteps(actual, runnable, { now, images, pullRetryAt: this.pullRetryAt, restarts: this.restarts, backoffs: this.backoffs }, this.opts.restartBackoffMs ?? 10_000);
      this.log.debug(
        {
          layer,
          actual: actual.length,
          steps: steps.map((s) => (s.action === 'stop' ? `stop(${s.reason})` : s.action)),
          leases: (this.desired?.pods ?? []).map((p) => `${p.name}:${this.leases.get(p.id)?.verified?.exp ?? 'none'}`),
        },
        'reconcile',
      );
      // A stop runs on its own (an endpoint drain, a wait for the replacement's image, the grace
      // period): the pass does not wait for it, so the node's other pods are not held up (a pod
      // applied while another is stopping starts at once, as with the kubelet's per-pod workers).
      // What depends on it (removing the container, starting its replacement) is planned by the
      // pass that its end wakes.
      const todo = steps.filter((s) => !(s.action === 'stop' && this.stopping.has(s.containerId)));
      if (todo.length === 0) break;
      // Pulls start first, so a stop in the same layer sees them in flight (and waits for them).
      const ordered = [...todo.filter((s) => s.action === 'pull'), ...todo.filter((s) => s.action !== 'pull')];
      await Promise.all(
        ordered.map((s) => {
          const done = this.execute(s, actual);
          if (s.action !== 'stop') return done;
          void done.catch((e) => this.log.error({ err: (e as Error).message }, 'stop failed')).finally(() => this.reconcileWaker.wake());
          return undefined;
        }),
      );
    }
    await this.refreshMountedConfig();
    this.syncProbes();
    this.reportStatuses();
  }

  /** Another pass soon while the engine still lists a container it said died (at most 10 s). */
  private recheckDying(actual: readonly ActualContainer[], now: number): void {
    for (const [id, until] of this.dying) if (until < now || !actual.some((a) => a.id === id && a.state === 'running')) this.dying.delete(id);
    if (this.dying.size > 0) setTimeout(() => this.reconcileWaker.wake(), 50);
  }

  /**
   * A Secret or ConfigMap mounted as files changed (the pod's config version in the desired state
   * moved): fetch it again and swap the files in place (atomically), as Kubernetes does; the
   * containers keep running. Env consumers are rolled by the control plane instead.
   */
  private async refreshMountedConfig(): Promise<void> {
    const running = new Set(this.lastActual.filter((a) => a.state === 'running').map((a) => a.podId));
    for (const p of this.runnable(Date.now())) {
      if (!p.configVersion || !running.has(p.id) || this.appliedConfig.get(p.id) === p.configVersion) continue;
      if (!(p.spec.volumes ?? []).some((v) => v.secret || v.configMap)) {
        this.appliedConfig.set(p.id, p.configVersion);
        continue;
      }
      try {
        const cfg = await this.fetchConfig(p.id);
        writeVolumes(p.spec, cfg, p.namespace, this.volumeBase(), p.id);
        const before = this.appliedConfig.get(p.id);
        this.appliedConfig.set(p.id, p.configVersion);
        if (before !== undefined) this.queueEvent({ podId: p.id, type: 'Normal', reason: 'ConfigUpdated', message: `mounted files updated in place (${p.configVersion})` });
      } catch (e) {
        this.log.warn({ pod: p.name, err: (e as Error).message.slice(0, 300) }, 'refreshing mounted secrets failed; retrying');
      }
    }
  }

  /**
   * Fetches and decrypts a pod's Secrets and ConfigMaps (a JWE only this node's key opens), and keeps
   * a copy sealed under the device key. With `offline`, an unreachable control plane (a network
   * error or a 5xx; never a refusal) falls back to that copy, so a pod can be recreated offline.
   */
  private async fetchConfig(podId: string, offline = false): Promise<PodConfig> {
    let cfg: PodConfig;
    try {
      const r = await this.client.podConfig(podId);
      const key = await importJWK(this.identity.encryptionKey, 'ECDH-ES+A256KW');
      const { plaintext } = await compactDecrypt(r.jwe, key);
      cfg = JSON.parse(new TextDecoder().decode(plaintext)) as PodConfig;
      await this.vault.save(podId, cfg);
    } catch (e) {
      const unreachable = !(e instanceof ApiFailure) || e.status >= 500;
      const copy = offline && unreachable ? await this.vault.load(podId) : undefined;
      if (!copy) throw e;
      this.log.info({ pod: podId }, 'control plane unreachable: using the sealed copy of the pod config kept on this device');
      cfg = copy;
    }
    this.configs.set(podId, { at: Date.now(), cfg });
    return cfg;
  }

  /** Probers follow the running containers of runnable pods. */
  private syncProbes(): void {
    const pods = new Map(this.runnable(Date.now()).map((p) => [p.id, p]));
    const targets: ProbeTarget[] = [];
    for (const a of this.lastActual) {
      const pod = pods.get(a.podId);
      if (!pod || a.state !== 'running' || a.digest !== pod.specDigest) continue;
      const container = pod.spec.containers.find((c) => c.name === a.container);
      if (!container) continue;
      const owner = this.lastActual.find((x) => x.podId === a.podId && x.state === 'running' && x.container === pod.spec.containers[0]?.name);
      targets.push({ containerId: a.id, podId: pod.id, podName: pod.name, container, spec: pod.spec, hostPorts: owner?.hostPorts ?? [] });
    }
    this.probes.sync(targets);
  }

  private async execute(planned: Step, actual: readonly ActualContainer[]): Promise<void> {
    const step = this.fenceStop(planned);
    const pod = this.desired?.pods.find((p) => p.id === step.podId);
    const podLabel = pod?.name ?? actual.find((a) => a.podId === step.podId)?.podName ?? step.podId;
    // A stop already in flight for this container is not sent twice; a pod whose lease lapsed
    // while the pass was planned is not started.
    if (step.action === 'stop' && this.stopping.has(step.containerId)) return;
    if ((step.action === 'create' || step.action === 'start') && !this.runnable(Date.now()).some((p) => p.id === step.podId)) return;
    if (step.action === 'stop') this.stopping.add(step.containerId);
    try {
      if (step.action === 'stop' && (step.reason === 'no longer desired' || step.reason === 'spec changed')) {
        // A pod replaced by a new revision keeps serving until its replacement's image is here.
        const a = actual.find((x) => x.id === step.containerId);
        // Behind a service: give the other nodes' proxies time to drop it as an endpoint first.
        const drain = this.opts.endpointDrainMs ?? 2000;
        if (a && drain > 0 && (this.desired?.services ?? []).some((s) => s.namespace === a.namespace)) await new Promise((r) => setTimeout(r, drain));
        const waits = a ? await this.pullsFor(a.namespace, a.workload) : [];
        if (waits.length > 0) {
          this.log.debug({ pod: podLabel }, 'stop waits for the new image');
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([Promise.allSettled(waits), new Promise((r) => (timer = setTimeout(r, this.opts.prePullWaitMs ?? 120_000)))]);
          clearTimeout(timer);
        }
      }
      if (step.action === 'pull') await this.pull(step.image, this.podsUsing(step.image, step.podId));
      else if (step.action === 'create') await this.runtime.run(await this.withConfig(step));
      else await this.runtime.run(step);
      switch (step.action) {
        case 'pull':
          this.pullRetryAt.delete(step.image);
          this.queueEvent({ podId: step.podId, type: 'Normal', reason: 'Pulled', message: `pulled image ${step.image}` });
          break;
        case 'create': {
          const c = step.pod.spec.containers[step.index];
          this.problems.delete(step.podId);
          this.queueEvent({ podId: step.podId, type: 'Normal', reason: 'Started', message: `started container ${c?.name} (${c?.image})` });
          break;
        }
        case 'stop':
          this.queueEvent({ podId: step.podId, type: 'Normal', reason: 'Killing', message: `stopping container: ${step.reason}` });
          break;
        case 'remove':
          if (step.restartOf) {
            const key = `${step.podId}/${step.restartOf.container}`;
            this.restarts.set(key, step.restartOf.restarts);
            this.backoffs.set(key, step.restartOf.backoff);
            this.lastStates.set(key, step.restartOf.last);
            this.queueEvent({ podId: step.podId, type: 'Warning', reason: 'BackOff', message: `restarting exited container ${step.restartOf.container} (restart ${step.restartOf.restarts})` });
          }
          break;
        case 'start':
          break;
      }
      this.log.debug({ pod: podLabel, action: step.action }, 'step done');
    } catch (e) {
      const msg = (e as Error).message.slice(0, 500);
      this.log.warn({ pod: podLabel, action: step.action, err: msg }, 'step failed');
      if (step.action === 'pull') {
        const failures = (this.problems.get(step.podId)?.reason === 'ErrImagePull' ? 1 : 0) + 1;
        this.pullRetryAt.set(step.image, Date.now() + backoffMs(failures, 5000, 300_000));
        this.problems.set(step.podId, { reason: 'ErrImagePull', message: `pulling ${step.image}: ${msg}` });
        this.queueEvent({ podId: step.podId, type: 'Warning', reason: 'Failed', message: `failed to pull image ${step.image}: ${msg}` });
      } else if (step.action === 'create' && e instanceof ConfigError) {
        // Not started with an empty value or a refused mount: the pod waits with the reason.
        if (this.problems.get(step.podId)?.message !== msg)
          this.queueEvent({ podId: step.podId, type: 'Warning', reason: e.reason === 'FailedMount' ? 'FailedMount' : 'Failed', message: `Error: ${msg}` });
        this.problems.set(step.podId, { reason: e.reason, message: msg });
      } else if (step.action === 'create') {
        this.problems.set(step.podId, { reason: 'CreateContainerError', message: msg });
        this.queueEvent({ podId: step.podId, type: 'Warning', reason: 'Failed', message: `failed to create container: ${msg}` });
      }
      if (step.action === 'start' && /network .* not found/i.test(msg)) {
        // Its namespace's network went away between create and start (removed as unused while the
        // pod was being created): remove the container; the next pass makes both again.
        await this.runtime.removeStale(step.containerId).catch(() => undefined);
        this.reconcileWaker.wake();
      }
    } finally {
      if (step.action === 'stop') this.stopping.delete(step.containerId);
    }
  }

  /** Where Secret and ConfigMap volumes are written: tmpfs (/dev/shm) when there is one, else the data dir. */
  private volumeBase(): string {
    return existsSync('/dev/shm') ? join('/dev/shm', `flotilla-${this.identity.nodeId}`) : join(this.opts.dataDir, 'volumes');
  }

  /**
   * Fills a create step with the container's environment and mounts: the pod's Secrets and
   * ConfigMaps (fetched, encrypted to this node, only for pods that refer to any; kept only in
   * memory, in the pod's volume directory and sealed on the device; never logged), emptyDirs and
   * allowed hostPaths.
   */
  private async withConfig(step: Extract<Step, { action: 'create' }>): Promise<Step> {
    const spec = step.pod.spec;
    const refers = referencedNames(spec, 'Secret').size + referencedNames(spec, 'ConfigMap').size > 0;
    let env: string[] | undefined;
    let dirs: Record<string, string> = {};
    if (refers) {
      const now = Date.now();
      let entry = this.configs.get(step.podId);
      if (!entry || now - entry.at > 5_000 || entry.version !== step.pod.configVersion) {
        try {
          entry = { at: now, cfg: await this.fetchConfig(step.podId, true), version: step.pod.configVersion };
        } catch (e) {
          entry = { at: now, error: `cannot fetch the pod's secrets and config maps: ${(e as Error).message}`, version: step.pod.configVersion };
        }
        this.configs.set(step.podId, entry);
      }
      if (!entry.cfg) throw new ConfigError(entry.error ?? 'no configuration');
      const c = spec.containers[step.index] as PodSpec['containers'][number];
      env = containerEnv(c, entry.cfg, step.pod.namespace);
      dirs = writeVolumes(spec, entry.cfg, step.pod.namespace, this.volumeBase(), step.podId);
      if (step.pod.configVersion) this.appliedConfig.set(step.podId, step.pod.configVersion);
    }
    const mounts = planMounts(step.pod, step.index, this.identity.nodeId, dirs, this.opts.allowedHostPaths ?? []);
    // The pod's network: its namespace's bridge on this node, where the proxy serves the namespace's services.
    const hostNetwork = spec.hostNetwork === true;
    const network = hostNetwork ? undefined : networkName(this.identity.nodeId, step.pod.namespace);
    let gateway: string | undefined;
    if (!hostNetwork) {
      const known = this.runtime.hasNetwork(step.pod.namespace);
      gateway = await this.runtime.ensureNetwork(step.pod.namespace);
      if (!known) this.syncServices();
    }
    this.writeHosts(step.pod.namespace, gateway);
    const c = spec.containers[step.index] as PodSpec['containers'][number];
    const fullEnv = [...(env ?? plainEnv(c)), ...this.serviceEnv(step.pod.namespace, hostNetwork, gateway)];
    return { ...step, env: fullEnv, mounts, ...(network && step.index === 0 ? { network } : {}), hostsFile: this.hostsPath(step.pod.namespace, hostNetwork) };
  }

  /** Computes every pod's status; queues the changed ones (and `gone` for pods fully removed). */
  private reportStatuses(): void {
    const now = Date.now();
    const runnable = new Set(this.runnable(now).map((p) => p.id));
    let changed = false;
    for (const pod of this.desired?.pods ?? []) {
      let s = computePodStatus(pod, pod.epoch, this.lastActual, this.restarts, this.problems.get(pod.id), this.probes, this.lastStates);
      if (!runnable.has(pod.id)) {
        const l = this.leases.get(pod.id);
        s = { ...s, phase: 'Pending', ready: false, reason: l?.refused ? 'LeaseRejected' : 'LeaseExpired', message: l?.refused ?? 'waiting for a valid lease' };
      }
      changed = this.queueStatus(s) || changed;
    }
    const desiredIds = new Set((this.desired?.pods ?? []).map((p) => p.id));
    const withContainers = new Set(this.lastActual.map((a) => a.podId));
    for (const a of this.lastActual) if (!this.knownPods.has(a.podId)) this.knownPods.set(a.podId, a.epoch);
    for (const [podId, epoch] of this.knownPods) {
      if (desiredIds.has(podId) || withContainers.has(podId)) continue;
      changed = this.queueStatus({ podId, epoch, phase: 'Succeeded', ready: false, containers: [], gone: true }) || changed;
    }
    if (changed) this.hbWaker.wake();
  }

  /** Drops what the agent remembered of a pod that is gone for good. */
  private forgetPod(podId: string): void {
    this.knownPods.delete(podId);
    this.configs.delete(podId);
    this.vault.remove(podId);
    this.appliedConfig.delete(podId);
    removeVolumes(this.volumeBase(), podId);
    void this.runtime.removePodVolumes(podId).catch((e) => this.log.warn({ pod: podId, err: (e as Error).message }, "removing the pod's volumes failed"));
    this.maxEpoch.delete(podId);
    this.problems.delete(podId);
    for (const m of [this.restarts, this.backoffs, this.lastStates]) for (const k of m.keys()) if (k.startsWith(`${podId}/`)) m.delete(k);
    // A namespace this node no longer runs pods of: its network goes once no container has used it
    // for networkIdleMs (the reconcile loop removes it then).
    const live = new Set((this.desired?.pods ?? []).map((p) => p.namespace));
    void this.runtime
      .pruneNetworks(live, this.networkIdleMs)
      .then(() => this.syncServices())
      .catch(() => undefined);
  }

  private queueStatus(s: PodStatusReport): boolean {
    return this.outbox.status(s);
  }

  private queueEvent(e: AgentEvent): void {
    this.outbox.event(e);
  }

  private logFailure(what: string, e: unknown, failures: number): void {
    const msg = (e as Error).message;
    if (e instanceof ApiFailure && e.status === 401) this.log.error({ err: msg }, `${what} refused: this node's credentials were rejected (revoked?)`);
    else if (failures === 0 || failures % 10 === 0) this.log.warn({ err: msg, failures: failures + 1 }, `${what} failed; retrying with back-off`);
  }
}
