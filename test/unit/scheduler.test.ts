import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { matchesAffinity, schedule, tolerates } from '../../control-plane/core/scheduler.js';
import type { NodeView, PodView } from '../../control-plane/core/types.js';
import { constraints, nodeView, podView } from '../lib/fixtures.js';

const GiB = 1024 ** 3;

describe('schedule: filters', () => {
  it('counts why nothing fits, like Kubernetes', () => {
    const nodes = [
      nodeView('n1', { ready: false }),
      nodeView('n2', { cordoned: true }),
      nodeView('n3', { labels: { site: 'a' } }),
      nodeView('n4', { labels: { site: 'b' }, allocatable: { cpu: 1000, memory: GiB } }),
      nodeView('n5', { labels: { site: 'b' }, allocatable: { cpu: 1000, memory: GiB } }),
    ];
    const plan = schedule({ nodes, placed: [], pending: [podView('big', { memory: 2 * GiB, constraints: constraints({ nodeSelector: { site: 'b' } }) })] });
    expect(plan.assign).toEqual([]);
    expect(plan.unschedulable).toEqual([{ podId: 'big', reason: '0/5 nodes available: 2 insufficient memory, 1 cordoned, 1 node selector mismatch, 1 not ready' }]);
  });

  it('never exceeds allocatable: the third 1-CPU pod on a 2-CPU node goes elsewhere', () => {
    const nodes = [nodeView('a', { allocatable: { cpu: 2000, memory: 8 * GiB } }), nodeView('b', { allocatable: { cpu: 2000, memory: 8 * GiB } })];
    const pods = ['p1', 'p2', 'p3'].map((id, i) => podView(id, { cpu: 1000, createdAt: i }));
    expect(schedule({ nodes, placed: [], pending: pods }).assign.map((a) => a.nodeId)).toEqual(['a', 'a', 'b']);
  });

  it('counts every node in the reason when identical pods have filled them in the same plan', () => {
    const nodes = [nodeView('a', { allocatable: { cpu: 1000, memory: GiB } }), nodeView('b', { allocatable: { cpu: 1000, memory: GiB } }), nodeView('c', { ready: false })];
    const pods = ['p1', 'p2', 'p3'].map((id, i) => podView(id, { cpu: 800, createdAt: i }));
    const plan = schedule({ nodes, placed: [], pending: pods });
    expect(plan.assign.map((a) => a.nodeId)).toEqual(['a', 'b']);
    expect(plan.unschedulable).toEqual([{ podId: 'p3', reason: '0/3 nodes available: 2 insufficient cpu, 1 not ready' }]);
  });

  it('respects host ports', () => {
    const nodes = [nodeView('a'), nodeView('b')];
    const placed = [podView('x', { nodeId: 'a', hostPorts: ['TCP/8080'] })];
    const plan = schedule({ nodes, placed, pending: [podView('p', { hostPorts: ['TCP/8080'] }), podView('q', { hostPorts: ['UDP/8080'], createdAt: 1 })] });
    expect(plan.assign).toEqual([
      { podId: 'p', nodeId: 'b' },
      { podId: 'q', nodeId: 'a' },
    ]);
  });

  it('taints keep pods without a toleration off; PreferNoSchedule only lowers the score', () => {
    const nodes = [nodeView('a', { taints: [{ key: 'edge', value: 'cam', effect: 'NoSchedule' }] }), nodeView('b', { taints: [{ key: 'busy', effect: 'PreferNoSchedule' }] })];
    const plain = schedule({ nodes, placed: [], pending: [podView('p')] });
    expect(plain.assign).toEqual([{ podId: 'p', nodeId: 'b' }]);
    const tolerant = schedule({ nodes, placed: [], pending: [podView('p', { constraints: constraints({ tolerations: [{ key: 'edge', operator: 'Exists' }] }) })] });
    expect(tolerant.assign).toEqual([{ podId: 'p', nodeId: 'a' }]);
    const none = schedule({ nodes: [nodes[0] as NodeView], placed: [], pending: [podView('p')] });
    expect(none.unschedulable[0]?.reason).toBe('0/1 nodes available: 1 untolerated taint');
  });

  it('required node affinity: In, NotIn, Exists, DoesNotExist, Gt', () => {
    const labels = { site: 'berlin', tier: 'edge', gen: '3' };
    expect(matchesAffinity(labels, [[{ key: 'site', operator: 'In', values: ['berlin', 'paris'] }]])).toBe(true);
    expect(matchesAffinity(labels, [[{ key: 'site', operator: 'NotIn', values: ['berlin'] }]])).toBe(false);
    expect(
      matchesAffinity(labels, [
        [
          { key: 'gpu', operator: 'DoesNotExist' },
          { key: 'tier', operator: 'Exists' },
        ],
      ]),
    ).toBe(true);
    expect(matchesAffinity(labels, [[{ key: 'gen', operator: 'Gt', values: ['2'] }]])).toBe(true);
    // terms are ORed
    expect(matchesAffinity(labels, [[{ key: 'site', operator: 'In', values: ['rome'] }], [{ key: 'tier', operator: 'In', values: ['edge'] }]])).toBe(true);
  });

  it('toleration matching follows Kubernetes', () => {
    expect(tolerates({ operator: 'Exists' }, { key: 'any', effect: 'NoExecute' })).toBe(true);
    expect(tolerates({ key: 'k', operator: 'Equal', value: 'v', effect: 'NoSchedule' }, { key: 'k', value: 'v', effect: 'NoExecute' })).toBe(false);
    expect(tolerates({ key: 'k', operator: 'Equal', value: 'v' }, { key: 'k', value: 'w', effect: 'NoSchedule' })).toBe(false);
  });
});

describe('schedule: scoring', () => {
  it('packs by default and spreads with LeastAllocated', () => {
    const nodes = [nodeView('a'), nodeView('b'), nodeView('c')];
    const pods = ['p1', 'p2', 'p3'].map((id, i) => podView(id, { createdAt: i }));
    expect(new Set(schedule({ nodes, placed: [], pending: pods }).assign.map((a) => a.nodeId)).size).toBe(1);
    const spread = pods.map((p) => ({ ...p, constraints: constraints({ scoring: 'LeastAllocated' }) }));
    expect(new Set(schedule({ nodes, placed: [], pending: spread }).assign.map((a) => a.nodeId)).size).toBe(3);
  });

  it('topology spread over a node label keeps the skew within maxSkew', () => {
    const nodes = [nodeView('a1', { labels: { site: 'a' } }), nodeView('a2', { labels: { site: 'a' } }), nodeView('b1', { labels: { site: 'b' } })];
    const c = constraints({ topologySpread: [{ maxSkew: 1, topologyKey: 'site', whenUnsatisfiable: 'DoNotSchedule' }] });
    const pods = ['p1', 'p2', 'p3', 'p4'].map((id, i) => podView(id, { createdAt: i, constraints: c }));
    const plan = schedule({ nodes, placed: [], pending: pods });
    const site = (n: string) => n.slice(0, 1);
    const perSite: Record<string, number> = {};
    for (const a of plan.assign) perSite[site(a.nodeId)] = (perSite[site(a.nodeId)] ?? 0) + 1;
    expect(perSite).toEqual({ a: 2, b: 2 });
  });
});

// ---- properties ----

const nodeArb = fc.record({
  cpu: fc.integer({ min: 0, max: 8000 }),
  memory: fc.integer({ min: 0, max: 16 }).map((g) => g * 512 * 1024 ** 2),
  site: fc.constantFrom('a', 'b', 'c'),
  ready: fc.boolean(),
  taint: fc.boolean(),
});
const podArb = fc.record({
  cpu: fc.integer({ min: 0, max: 4000 }),
  memory: fc.integer({ min: 0, max: 8 }).map((g) => g * 256 * 1024 ** 2),
  site: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: undefined }),
  port: fc.option(fc.constantFrom(80, 443, 8080), { nil: undefined }),
  tolerate: fc.boolean(),
  workload: fc.constantFrom('w1', 'w2'),
});

type Gen<A> = A extends fc.Arbitrary<infer T> ? T : never;

function build(ns: Gen<typeof nodeArb>[], ps: Gen<typeof podArb>[]): { nodes: NodeView[]; pending: PodView[] } {
  const nodes = ns.map((n, i) =>
    nodeView(`n${String(i).padStart(2, '0')}`, {
      allocatable: { cpu: n.cpu, memory: n.memory },
      labels: { site: n.site },
      ready: n.ready,
      taints: n.taint ? [{ key: 'dedicated', value: 'x', effect: 'NoSchedule' }] : [],
    }),
  );
  const pending = ps.map((p, i) =>
    podView(`p${String(i).padStart(3, '0')}`, {
      createdAt: i,
      deploymentId: p.workload,
      cpu: p.cpu,
      memory: p.memory,
      hostPorts: p.port ? [`TCP/${p.port}`] : [],
      constraints: constraints({ nodeSelector: p.site ? { site: p.site } : {}, tolerations: p.tolerate ? [{ key: 'dedicated', operator: 'Exists' }] : [] }),
    }),
  );
  return { nodes, pending };
}

describe('schedule: properties (fast-check)', () => {
  const input = fc.tuple(fc.array(nodeArb, { minLength: 1, maxLength: 12 }), fc.array(podArb, { maxLength: 40 }));

  it('never over-commits allocatable and always respects readiness, selectors, taints and host ports', () => {
    fc.assert(
      fc.property(input, ([ns, ps]) => {
        const { nodes, pending } = build(ns, ps);
        const plan = schedule({ nodes, placed: [], pending });
        const byId = new Map(nodes.map((n) => [n.id, n]));
        const pod = new Map(pending.map((p) => [p.id, p]));
        const used = new Map<string, { cpu: number; memory: number; ports: Set<string> }>();
        for (const a of plan.assign) {
          const n = byId.get(a.nodeId) as NodeView;
          const p = pod.get(a.podId) as PodView;
          const u = used.get(n.id) ?? { cpu: 0, memory: 0, ports: new Set<string>() };
          u.cpu += p.cpu;
          u.memory += p.memory;
          expect(u.cpu).toBeLessThanOrEqual(n.allocatable.cpu);
          expect(u.memory).toBeLessThanOrEqual(n.allocatable.memory);
          for (const hp of p.hostPorts) {
            expect(u.ports.has(hp)).toBe(false);
            u.ports.add(hp);
          }
          used.set(n.id, u);
          expect(n.ready).toBe(true);
          for (const [k, v] of Object.entries(p.constraints?.nodeSelector ?? {})) expect(n.labels[k]).toBe(v);
          if (n.taints.length > 0) expect(p.constraints?.tolerations.length).toBeGreaterThan(0);
        }
        // every pod is either assigned or explained, never both
        expect(plan.assign.length + plan.unschedulable.length).toBe(pending.length);
      }),
      { numRuns: 300 },
    );
  });

  it('is deterministic: the same input, in any order, gives the same plan', () => {
    fc.assert(
      fc.property(input, fc.integer(), ([ns, ps], seed) => {
        const { nodes, pending } = build(ns, ps);
        const shuffled = <T>(xs: T[]) =>
          xs
            .map((x, i) => [((i + 1) * (seed | 1)) % 1009, x] as const)
            .sort((a, b) => a[0] - b[0])
            .map(([, x]) => x);
        expect(schedule({ nodes: shuffled(nodes), placed: [], pending: shuffled(pending) })).toEqual(schedule({ nodes, placed: [], pending }));
      }),
      { numRuns: 200 },
    );
  });

  it('bin packing packs: uses no more nodes than LeastAllocated for the same pods, and fewer when there is room', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 10 }), fc.array(fc.integer({ min: 100, max: 1000 }), { minLength: 2, maxLength: 20 }), (n, cpus) => {
        const nodes = Array.from({ length: n }, (_, i) => nodeView(`n${String(i).padStart(2, '0')}`, { allocatable: { cpu: 16_000, memory: 64 * GiB } }));
        const pods = cpus.map((c, i) => podView(`p${i}`, { cpu: c, createdAt: i }));
        const packed = new Set(schedule({ nodes, placed: [], pending: pods }).assign.map((a) => a.nodeId)).size;
        const spread = new Set(schedule({ nodes, placed: [], pending: pods.map((p) => ({ ...p, constraints: constraints({ scoring: 'LeastAllocated' }) })) }).assign.map((a) => a.nodeId)).size;
        expect(packed).toBeLessThanOrEqual(spread);
        expect(packed).toBe(1); // 20 pods of at most 1 CPU fit on one 16-CPU node
        expect(spread).toBe(Math.min(n, cpus.length));
      }),
      { numRuns: 200 },
    );
  });
});

describe('schedule: large fleets', () => {
  it('LeastAllocated spreads over every node even when only a sample of nodes is scanned per pod', () => {
    const nodes = Array.from({ length: 1500 }, (_, i) => nodeView(`n${String(i).padStart(4, '0')}`));
    const pods = Array.from({ length: 1500 }, (_, i) => podView(`p${i}`, { createdAt: i, constraints: constraints({ scoring: 'LeastAllocated' }) }));
    const plan = schedule({ nodes, placed: [], pending: pods });
    expect(new Set(plan.assign.map((a) => a.nodeId)).size).toBe(1500);
  });

  it('MostAllocated packs a large fleet onto the first nodes', () => {
    const nodes = Array.from({ length: 1500 }, (_, i) => nodeView(`n${String(i).padStart(4, '0')}`, { allocatable: { cpu: 4000, memory: 8 * GiB } }));
    const pods = Array.from({ length: 160 }, (_, i) => podView(`p${i}`, { createdAt: i, cpu: 250 }));
    expect(new Set(schedule({ nodes, placed: [], pending: pods }).assign.map((a) => a.nodeId)).size).toBe(10);
  });
});
