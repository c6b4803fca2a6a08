import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pruneChanges } from '../../control-plane/store/changes.js';
import { newMasterKey, parseMasterKey, SecretBox } from '../../shared/secretbox.js';
import { ADMIN, FACTS, nodeKeys, testControlPlane } from '../lib/cp.js';
import { d1TestDb, libsqlTestDb, type TestDb } from '../lib/db.js';
import { deploymentManifest } from '../lib/fixtures.js';

type Obj = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string }; data?: Record<string, string> };
type List = { items: Obj[]; metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number } };
type Watch = { kind: string; items: Array<{ type: string; object: Obj }>; metadata: { resourceVersion: string } };

const configMap = (name: string, value: string, labels: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels }, data: { value } });

// Lists and watches, on an embedded libSQL file and on a local D1 inside workerd (the API the CLI and automation use).
describe.each([
  ['libSQL file', libsqlTestDb],
  ['D1 (workerd)', d1TestDb],
])('lists and watches on %s', (_name, open) => {
  let t: TestDb;
  let cp: Awaited<ReturnType<typeof testControlPlane>>;
  beforeAll(async () => {
    t = await open();
    cp = await testControlPlane(t.db, {}, { secrets: await SecretBox.fromKey(parseMasterKey(newMasterKey())) });
  });
  afterAll(async () => t?.close());

  const json = async <T>(r: Response | Promise<Response>, status = 200): Promise<T> => {
    const res = await r;
    const body = await res.json();
    expect(res.status, JSON.stringify(body)).toBe(status);
    return body as T;
  };
  const put = (o: ReturnType<typeof configMap>, ns = 'default') => cp.req('PUT', `/v1/namespaces/${ns}/configmaps/${o.metadata.name}`, o);

  it('a list of a new cluster says resourceVersion 0, and a watch from there sees the first changes', async () => {
    const empty = await json<List>(cp.req('GET', '/v1/namespaces/first/configmaps'));
    expect(empty.metadata.resourceVersion).toBe('0');
    await json(put(configMap('first', '1'), 'first'), 201);
    const w = await json<Watch>(cp.req('GET', `/v1/namespaces/first/configmaps?watch=1&resourceVersion=${empty.metadata.resourceVersion}&timeoutSeconds=0`));
    expect(w.items.map((e) => [e.type, e.object.metadata.name])).toEqual([['ADDED', 'first']]);
    // Without a version, a watch starts from now.
    expect((await json<Watch>(cp.req('GET', '/v1/namespaces/first/configmaps?watch=1&timeoutSeconds=0'))).items).toEqual([]);
  });

  it('filters any list by label selector, and refuses a bad selector with its path', async () => {
    for (const [name, labels] of [
      ['sel-a', { app: 'web', tier: 'front' }],
      ['sel-b', { app: 'web', tier: 'back' }],
      ['sel-c', { app: 'db' }],
    ] as const)
      await json(put(configMap(name, '1', labels)), 201);
    const names = async (sel: string) => (await json<List>(cp.req('GET', `/v1/namespaces/default/configmaps?labelSelector=${encodeURIComponent(sel)}`))).items.map((o) => o.metadata.name).sort();
    expect(await names('app=web')).toEqual(['sel-a', 'sel-b']);
    expect(await names('app=web,tier!=back')).toEqual(['sel-a']);
    expect(await names('app in (db, web),!tier')).toEqual(['sel-c']);
    expect(await names('tier')).toEqual(['sel-a', 'sel-b']);
    expect(await names('app notin (web)')).toContain('sel-c');
    const bad = await json<{ errors: Array<{ path: string }> }>(cp.req('GET', '/v1/namespaces/default/configmaps?labelSelector=app%20in%20(web'), 422);
    expect(bad.errors[0]?.path).toBe('labelSelector');
  });

  it('pages a list with limit and continue: every object once, in order, across pages', async () => {
    for (let i = 0; i < 7; i++) await json(put(configMap(`page-${i}`, String(i), { set: 'paging' }), 'paging'), 201);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const l = await json<List>(cp.req('GET', `/v1/namespaces/paging/configmaps?limit=3${token ? `&continue=${token}` : ''}`));
      expect(l.items.length).toBeLessThanOrEqual(3);
      expect(Number(l.metadata.resourceVersion)).toBeGreaterThan(0);
      seen.push(...l.items.map((o) => o.metadata.name));
      token = l.metadata.continue;
      if (token) expect(l.metadata.remainingItemCount).toBe(7 - seen.length);
      pages++;
    } while (token && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4', 'page-5', 'page-6']);
    const bad = await json<{ errors: Array<{ path: string }> }>(cp.req('GET', '/v1/namespaces/paging/configmaps?limit=3&continue=nonsense'), 422);
    expect(bad.errors[0]?.path).toBe('continue');
    await json(cp.req('GET', '/v1/namespaces/paging/configmaps?limit=-1'), 422);
  });

  it('under concurrent writers a watcher sees every change exactly once and in order', async () => {
    const start = await json<List>(cp.req('GET', '/v1/namespaces/watch/configmaps'));
    const writers = 4;
    const writes = 8;
    // Writers run concurrently; each updates its own ConfigMap `writes` times, then deletes it.
    const writing = Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < writes; i++) await json(put(configMap(`w${w}`, String(i)), 'watch'), i === 0 ? 201 : 200);
        await json(cp.req('DELETE', `/v1/namespaces/watch/configmaps/w${w}`));
      }),
    );
    const seen = new Map<string, string[]>();
    let rv = start.metadata.resourceVersion;
    let total = 0;
    const want = writers * (writes + 1);
    for (let round = 0; round < 500 && total < want; round++) {
      const batch = await json<Watch>(cp.req('GET', `/v1/namespaces/watch/configmaps?watch=1&resourceVersion=${rv}&timeoutSeconds=0`));
      expect(Number(batch.metadata.resourceVersion)).toBeGreaterThanOrEqual(Number(rv));
      rv = batch.metadata.resourceVersion;
      for (const e of batch.items) {
        const list = seen.get(e.object.metadata.name) ?? [];
        list.push(e.type === 'DELETED' ? 'DELETED' : `${e.type}:${e.object.data?.value}`);
        seen.set(e.object.metadata.name, list);
        total++;
      }
      if (total < want) await new Promise((r) => setTimeout(r, 5));
    }
    await writing;
    // Nothing more arrives afterwards (no repeats).
    const after = await json<Watch>(cp.req('GET', `/v1/namespaces/watch/configmaps?watch=1&resourceVersion=${rv}&timeoutSeconds=0`));
    expect(after.items).toEqual([]);
    expect(total).toBe(want);
    for (let w = 0; w < writers; w++) expect(seen.get(`w${w}`)).toEqual(['ADDED:0', ...Array.from({ length: writes - 1 }, (_, i) => `MODIFIED:${i + 1}`), 'DELETED']);
  });

  it('watches workloads, pods and secrets (never with values), each from its own resourceVersion; a pruned one is gone (410)', async () => {
    const rv = (await json<List>(cp.req('GET', '/v1/namespaces/apps/pods'))).metadata.resourceVersion;
    const m = deploymentManifest('watched', { replicas: 2 });
    await json(cp.req('PUT', '/v1/namespaces/apps/deployments/watched', m), 201);
    await cp.settle();
    const deps = await json<Watch>(cp.req('GET', `/v1/namespaces/apps/deployments?watch=1&resourceVersion=${rv}&timeoutSeconds=0`));
    expect(deps.items.map((e) => [e.type, e.object.kind, e.object.metadata.name])).toContainEqual(['ADDED', 'Deployment', 'watched']);
    const pods = await json<Watch>(cp.req('GET', `/v1/namespaces/apps/pods?watch=1&resourceVersion=${rv}&timeoutSeconds=0`));
    const added = pods.items.filter((e) => e.type === 'ADDED').map((e) => e.object.metadata.name);
    expect(added).toHaveLength(2);
    expect(added.every((n) => n.startsWith('watched-'))).toBe(true);
    // All namespaces: the same pod changes, among others.
    const all = await json<Watch>(cp.req('GET', `/v1/pods?watch=1&resourceVersion=${rv}&timeoutSeconds=0`));
    expect(all.items.filter((e) => e.type === 'ADDED').map((e) => e.object.metadata.name)).toEqual(added);

    const value = 'hunter2-very-secret';
    await json(cp.req('PUT', '/v1/namespaces/apps/secrets/db', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, stringData: { password: value } }), 201);
    const res = await cp.req('GET', `/v1/namespaces/apps/secrets?watch=1&resourceVersion=${rv}&timeoutSeconds=0`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).toContain('"name":"db"');
    expect(text).not.toContain(value);
    expect(text).not.toContain(btoa(value));
    const { items } = await json<List>(cp.req('GET', '/v1/namespaces/apps/secrets'));
    expect(items.map((o) => o.metadata.name)).toEqual(['db']);

    await json(cp.req('GET', '/v1/namespaces/apps/pods?watch=1&resourceVersion=abc'), 422);
    // Everything older than the retention is pruned: a watch from before is refused, a fresh list works again.
    await t.db.batch(pruneChanges(t.db, -60_000) as never);
    const g = await json<{ type: string; detail: string }>(cp.req('GET', `/v1/namespaces/apps/pods?watch=1&resourceVersion=${rv}&timeoutSeconds=0`), 410);
    expect(g.type).toMatch(/gone$/);
    expect(g.detail).toContain('list again');
    const fresh = await json<List>(cp.req('GET', '/v1/namespaces/apps/pods'));
    await json<Watch>(cp.req('GET', `/v1/namespaces/apps/pods?watch=1&resourceVersion=${fresh.metadata.resourceVersion}&timeoutSeconds=0`));
  });

  it('every object has a resourceVersion; a write with a stale one (If-Match or in the body) gets 409 saying what changed and changes nothing', async () => {
    const created = await cp.req('PUT', '/v1/namespaces/occ/configmaps/settings', configMap('settings', 'one', { v: '1' }));
    expect(created.status).toBe(201);
    const rv1 = ((await created.json()) as Obj).metadata.resourceVersion as string;
    expect(rv1).toMatch(/^\d+$/);
    expect(created.headers.get('etag')).toBe(`"${rv1}"`);
    const got = await json<Obj>(cp.req('GET', '/v1/namespaces/occ/configmaps/settings'));
    expect(got.metadata.resourceVersion).toBe(rv1);
    const listed = await json<List>(cp.req('GET', '/v1/namespaces/occ/configmaps'));
    expect(listed.items[0]?.metadata.resourceVersion).toBe(rv1);
    // A write conditional on the current version goes through and gets a new one.
    const ok = await cp.app.request('/v1/namespaces/occ/configmaps/settings', {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', 'if-match': `"${rv1}"` },
      body: JSON.stringify(configMap('settings', 'two', { v: '2' })),
    });
    expect(ok.status).toBe(200);
    const rv2 = ((await ok.json()) as Obj).metadata.resourceVersion as string;
    expect(Number(rv2)).toBeGreaterThan(Number(rv1));
    // The same stale version again: 409, what changed, nothing written.
    for (const send of [
      () =>
        cp.app.request('/v1/namespaces/occ/configmaps/settings', {
          method: 'PUT',
          headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', 'if-match': rv1 },
          body: JSON.stringify(configMap('settings', 'three')),
        }),
      () => cp.req('PUT', '/v1/namespaces/occ/configmaps/settings', { ...configMap('settings', 'three'), metadata: { name: 'settings', resourceVersion: rv1 } }),
    ]) {
      const stale = await json<{ detail: string; errors: Array<{ path: string }> }>(send(), 409);
      expect(stale.detail).toContain(`changed since resourceVersion ${rv1} (now ${rv2}: labels, data changed)`);
      expect(stale.errors[0]?.path).toBe('metadata.resourceVersion');
    }
    const after = await json<Obj>(cp.req('GET', '/v1/namespaces/occ/configmaps/settings'));
    expect(after.data?.value).toBe('two');
    expect(after.metadata.resourceVersion).toBe(rv2);
    // Deployments too, and a conditional delete.
    const d = await json<Obj>(cp.req('PUT', '/v1/namespaces/occ/deployments/app', deploymentManifest('app', { replicas: 1 })), 201);
    const del = await cp.app.request('/v1/namespaces/occ/deployments/app', { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}`, 'if-match': rv1 } });
    expect(del.status).toBe(409);
    await json(cp.req('GET', '/v1/namespaces/occ/deployments/app'));
    const del2 = await cp.app.request('/v1/namespaces/occ/deployments/app', { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}`, 'if-match': d.metadata.resourceVersion ?? '' } });
    expect(del2.status).toBe(200);
    await json(cp.req('PUT', '/v1/namespaces/occ/configmaps/settings', { ...configMap('settings', 'x'), metadata: { name: 'settings', resourceVersion: 'abc' } }), 422);
  });

  it('a server-side dry run validates like a real write, shows the changes, and stores nothing', async () => {
    const before = (await json<List>(cp.req('GET', '/v1/configmaps'))).metadata.resourceVersion;
    const create = await json<{ outcome: string; changes: unknown[] }>(cp.req('PUT', '/v1/namespaces/dry/configmaps/c?dryRun=All', configMap('c', 'v1', { a: '1' })));
    expect(create.outcome).toBe('created');
    await json(cp.req('GET', '/v1/namespaces/dry/configmaps/c'), 404);
    await json(cp.req('PUT', '/v1/namespaces/dry/configmaps/c', configMap('c', 'v1', { a: '1' })), 201);
    const same = await json<{ outcome: string; changes: unknown[] }>(cp.req('PUT', '/v1/namespaces/dry/configmaps/c?dryRun=All', configMap('c', 'v1', { a: '1' })));
    expect(same).toMatchObject({ outcome: 'unchanged', changes: [] });
    const change = await json<{ outcome: string; changes: Array<{ path: string; op: string; from?: unknown; to?: unknown }> }>(
      cp.req('PUT', '/v1/namespaces/dry/configmaps/c?dryRun=All', configMap('c', 'v2', { b: '2' })),
    );
    expect(change.outcome).toBe('configured');
    expect(change.changes).toEqual(
      expect.arrayContaining([
        { path: 'metadata.labels.a', op: 'remove', from: '1' },
        { path: 'metadata.labels.b', op: 'add', to: '2' },
        { path: 'data.value', op: 'replace', from: 'v1', to: 'v2' },
      ]),
    );
    expect((await json<Obj>(cp.req('GET', '/v1/namespaces/dry/configmaps/c'))).data?.value).toBe('v1');
    // A deployment: the change of image is shown, not applied; a bad one is refused as a real write would be.
    await json(cp.req('PUT', '/v1/namespaces/dry/deployments/web', deploymentManifest('web', { replicas: 1 })), 201);
    const m = deploymentManifest('web', { replicas: 3 });
    const dep = await json<{ outcome: string; changes: Array<{ path: string }> }>(cp.req('PUT', '/v1/namespaces/dry/deployments/web?dryRun=All', m));
    expect(dep.outcome).toBe('configured');
    expect(dep.changes, JSON.stringify(dep.changes)).toHaveLength(1);
    expect(dep.changes.map((x) => x.path)).toEqual(['spec.replicas']);
    const bad = await json<{ errors: Array<{ path: string }> }>(cp.req('PUT', '/v1/namespaces/dry/deployments/web?dryRun=All', { ...m, spec: { ...m.spec, replicas: -1 } }), 422);
    expect(bad.errors[0]?.path).toBe('spec.replicas');
    const del = await json<{ outcome: string }>(cp.req('DELETE', '/v1/namespaces/dry/deployments/web?dryRun=All'));
    expect(del.outcome).toBe('deleted');
    const still = await json<{ spec: { replicas: number } }>(cp.req('GET', '/v1/namespaces/dry/deployments/web'));
    expect(still.spec.replicas).toBe(1);
    // Where a dry run is not implemented it is refused, not carried out for real.
    const scale = await json<{ errors: Array<{ path: string }> }>(cp.req('PUT', '/v1/namespaces/dry/deployments/web/scale?dryRun=All', { spec: { replicas: 5 } }), 422);
    expect(scale.errors[0]?.path).toBe('dryRun');
    await json(cp.req('POST', '/v1/namespaces/dry/deployments?dryRun=All', deploymentManifest('other', { replicas: 1 })), 422);
    expect((await json<{ spec: { replicas: number } }>(cp.req('GET', '/v1/namespaces/dry/deployments/web'))).spec.replicas).toBe(1);
    await json(cp.req('GET', '/v1/namespaces/dry/deployments/other'), 404);
    // Nothing a dry run did is in the change log.
    const w = await json<Watch>(cp.req('GET', `/v1/namespaces/dry/configmaps?watch=1&resourceVersion=${before}&timeoutSeconds=0`));
    expect(w.items.map((e) => `${e.type}:${e.object.data?.value}`)).toEqual(['ADDED:v1']);
  });

  it('a namespace-limited token cannot watch another namespace, and its cluster-wide watch shows only its own', async () => {
    const tok = await json<{ token: string }>(cp.req('POST', '/v1/api-tokens', { name: 'watch-reader', scope: 'read', namespaces: ['paging'] }), 201);
    const r = await cp.req('GET', '/v1/namespaces/watch/configmaps?watch=1&timeoutSeconds=0', undefined, { token: tok.token });
    expect(r.status).toBe(403);
    const before = (await json<List>(cp.req('GET', '/v1/configmaps'))).metadata.resourceVersion;
    await json(put(configMap('other-ns', 'x'), 'elsewhere'), 201);
    await json(put(configMap('page-0', 'changed', { set: 'paging' }), 'paging'));
    const w = await json<Watch>(cp.req('GET', `/v1/configmaps?watch=1&resourceVersion=${before}&timeoutSeconds=0`, undefined, { token: tok.token }));
    expect(w.items.map((e) => `${e.object.metadata.namespace}/${e.object.metadata.name}`)).toEqual(['paging/page-0']);
  });

  it('pages pods and nodes (read a page at a time in SQL) like any list: each once, in order; nodes count their pods; a token sees only its namespaces', async () => {
    type Pod = Obj & { spec: { nodeName: string | null } };
    type Node = Obj & { status: { pods?: number } };
    const walk = async <T extends Obj>(path: string, limit: number, token?: string) => {
      const seen: T[] = [];
      let cont: string | undefined;
      let pages = 0;
      do {
        const sep = path.includes('?') ? '&' : '?';
        const l = await json<{ items: T[]; metadata: List['metadata'] }>(cp.req('GET', `${path}${sep}limit=${limit}${cont ? `&continue=${cont}` : ''}`, undefined, { token }));
        expect(l.items.length).toBeLessThanOrEqual(limit);
        for (const o of l.items) expect(o.metadata.resourceVersion, `${o.metadata.name} has a resourceVersion`).toMatch(/^\d+$/);
        seen.push(...l.items);
        cont = l.metadata.continue;
        if (cont) expect(l.metadata.remainingItemCount).toBeGreaterThan(0);
        pages++;
      } while (cont && pages < 50);
      return { seen, pages };
    };
    const enrollment = await json<{ token: string }>(cp.req('POST', '/v1/enrollment-tokens', { uses: 5, ttl: '1h' }), 201);
    for (let i = 0; i < 5; i++) {
      const keys = await nodeKeys();
      const r = await cp.app.request('/v1/agent/enroll', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: enrollment.token, name: `pg-node-${i}`, publicKey: keys.publicKey, facts: FACTS }),
      });
      expect(r.status).toBe(201);
    }
    await json(cp.req('PUT', '/v1/namespaces/pg-a/deployments/web', deploymentManifest('web', { replicas: 7 })), 201);
    await json(cp.req('PUT', '/v1/namespaces/pg-b/deployments/web', deploymentManifest('web', { replicas: 4 })), 201);
    await cp.settle();

    // One namespace: 7 pods over 3 pages, the same as the whole list, in name order.
    const all = (await json<{ items: Pod[] }>(cp.req('GET', '/v1/namespaces/pg-a/pods'))).items.map((p) => p.metadata.name);
    expect(all).toHaveLength(7);
    const a = await walk<Pod>('/v1/namespaces/pg-a/pods', 3);
    expect(a.pages).toBe(3);
    expect(a.seen.map((p) => p.metadata.name)).toEqual([...all].sort());
    // Every namespace: each pod once, ordered by namespace then name, each with its node.
    const everyPod = (await json<{ items: Pod[] }>(cp.req('GET', '/v1/pods'))).items;
    const allPods = await walk<Pod>('/v1/pods', 4);
    expect(allPods.seen.map((p) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual(everyPod.map((p) => `${p.metadata.namespace}/${p.metadata.name}`));
    expect(allPods.seen.map((p) => p.spec.nodeName)).toEqual(everyPod.map((p) => p.spec.nodeName));
    expect(allPods.seen.filter((p) => p.metadata.namespace === 'pg-a' && p.spec.nodeName?.startsWith('pg-node-'))).toHaveLength(7);
    // Nodes: pages of 2, each once; a node's pod count is the number of pods placed on it.
    const nodes = await walk<Node>('/v1/nodes', 2);
    const names = nodes.seen.map((n) => n.metadata.name);
    expect(names).toEqual([...names].sort());
    expect(names.filter((n) => n.startsWith('pg-node-'))).toEqual(['pg-node-0', 'pg-node-1', 'pg-node-2', 'pg-node-3', 'pg-node-4']);
    for (const n of nodes.seen) expect(n.status.pods ?? 0, n.metadata.name).toBe(everyPod.filter((p) => p.spec.nodeName === n.metadata.name && p.metadata.namespace !== undefined).length);
    // The GET of one node counts its pods as the list does.
    for (const n of nodes.seen.filter((x) => x.metadata.name.startsWith('pg-node-')))
      expect((await json<Node>(cp.req('GET', `/v1/nodes/${n.metadata.name}`))).status.pods, n.metadata.name).toBe(n.status.pods ?? 0);
    // A token of namespace pg-b pages the cluster-wide pod list through its own pods only.
    const tok = await json<{ token: string }>(cp.req('POST', '/v1/api-tokens', { name: 'pg-b-reader', scope: 'read', namespaces: ['pg-b'] }), 201);
    const mine = await walk<Pod>('/v1/pods', 3, tok.token);
    expect(mine.seen.map((p) => p.metadata.namespace)).toEqual(['pg-b', 'pg-b', 'pg-b', 'pg-b']);
    expect(mine.pages).toBe(2);
    // A label selector still pages (filtered, then paged).
    const sel = await walk<Pod>(`/v1/namespaces/pg-a/pods?labelSelector=${encodeURIComponent('app=web')}`, 5);
    expect(sel.seen.map((p) => p.metadata.name)).toEqual([...all].sort());
  });

  it('without long-poll, a renewing heartbeat answers with the current desired version, read by its renewal statement', async () => {
    const token = (await json<{ token: string }>(cp.req('POST', '/v1/enrollment-tokens', { uses: 1, ttl: '1h' }), 201)).token;
    const keys = await nodeKeys();
    const enrolled = await cp.app.request('/v1/agent/enroll', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, name: 'renewer', publicKey: keys.publicKey, facts: FACTS }),
    });
    const me = await json<{ nodeId: string; audience: string }>(enrolled, 201);
    const beat = async () =>
      json<{ desiredVersion: string; leases: Record<string, string> }>(
        cp.app.request('/v1/agent/heartbeat', {
          method: 'POST',
          headers: { authorization: `Bearer ${await keys.sign({ sub: me.nodeId, aud: me.audience })}`, 'content-type': 'application/json' },
          body: '{}',
        }),
      );
    const start = Number((await beat()).desiredVersion);
    await json(cp.req('PUT', '/v1/namespaces/renew/deployments/web', deploymentManifest('web', { nodeSelector: { 'kubernetes.io/hostname': 'renewer' } })), 201);
    await cp.settle();
    cp.advance(cp.deps.config.renewPeriodMs * 1.25); // past this node's renewal point
    const before = t.statements?.length ?? 0;
    const renewing = await beat();
    expect(Object.keys(renewing.leases)).toHaveLength(1);
    expect(Number(renewing.desiredVersion)).toBeGreaterThan(start);
    // On D1 (what Workers bill by the statement) the version came back with the renewal: no read of its own.
    if (t.statements) expect(t.statements.slice(before).filter((q) => /^select "desired_version" from "nodes"/i.test(q))).toEqual([]);
    await json(cp.req('DELETE', '/v1/namespaces/renew/deployments/web'));
    await cp.settle();
  });

  it('a watch event shows its object as a GET does: pods with their node, a workload with its counts, a node with its conditions', async () => {
    // Runs after the paging test: its five nodes and two workloads exist.
    const rv = (await json<List>(cp.req('GET', '/v1/nodes'))).metadata.resourceVersion;
    await json(cp.req('PATCH', '/v1/nodes/pg-node-1', { labels: { watched: 'yes' } }));
    await json(cp.req('PUT', '/v1/namespaces/pg-a/deployments/web', deploymentManifest('web', { replicas: 8 })));
    await cp.settle();
    // The agents report every pod Running and Ready (a trigger logs each as a change).
    await t.db.run(sql`UPDATE pods SET phase = 'Running', ready = 1, ready_since = ${cp.now()} WHERE namespace = 'pg-a' AND desired = 'run' AND node_id IS NOT NULL`);
    const latest = async (path: string) => {
      const w = await json<Watch>(cp.req('GET', `${path}?watch=1&resourceVersion=${rv}&timeoutSeconds=0`));
      const last = new Map<string, Obj>();
      for (const e of w.items) if (e.type !== 'DELETED') last.set(e.object.metadata.name, e.object);
      return last;
    };
    const pods = await latest('/v1/namespaces/pg-a/pods');
    expect(pods.size).toBe(8);
    for (const [name, o] of pods) {
      expect((o as Obj & { spec: { nodeName?: string } }).spec.nodeName, name).toMatch(/^pg-node-\d$/);
      expect(o, name).toEqual(await json(cp.req('GET', `/v1/namespaces/pg-a/pods/${name}`)));
    }
    const web = (await latest('/v1/namespaces/pg-a/deployments')).get('web') as Obj & { status: { readyReplicas?: number } };
    expect(web.status.readyReplicas).toBe(8);
    expect(web).toEqual(await json(cp.req('GET', '/v1/namespaces/pg-a/deployments/web')));
    const node = (await latest('/v1/nodes')).get('pg-node-1') as Obj & { status: { conditions: Array<{ type: string; status: string }> } };
    expect(node.metadata.labels).toMatchObject({ watched: 'yes' });
    expect(node.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(node).toEqual(await json(cp.req('GET', '/v1/nodes/pg-node-1')));
  });
});

describe('rate limits', () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await libsqlTestDb();
  });
  afterAll(async () => t?.close());

  it('an address that fails authentication too often gets 429 with Retry-After, then recovers', async () => {
    const cp = await testControlPlane(t.db, { authFailuresPerMinute: 3 });
    for (let i = 0; i < 3; i++) expect((await cp.req('GET', '/v1/nodes', undefined, { token: `flo_wrong-${i}` })).status).toBe(401);
    const limited = await cp.req('GET', '/v1/nodes', undefined, { token: 'flo_wrong-again' });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await limited.json()) as { detail: string }).detail).toMatch(/too many failed authentications/);
    // While limited, the address is refused before any token is checked (the good one too).
    expect((await cp.req('GET', '/v1/nodes')).status).toBe(429);
    cp.advance(20_000); // 3 a minute: one comes back every 20 s
    expect((await cp.req('GET', '/v1/nodes')).status).toBe(200);
  });

  it('enrollment is limited per address, and refused tokens count as failures', async () => {
    const cp = await testControlPlane(t.db, { enrollRate: 0.01, enrollBurst: 2, authFailuresPerMinute: 100 });
    const enroll = async (token: string, name: string) => {
      const keys = await nodeKeys();
      return cp.app.request('/v1/agent/enroll', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, name, publicKey: keys.publicKey, facts: FACTS }) });
    };
    const tok = ((await (await cp.req('POST', '/v1/enrollment-tokens', { uses: 5, ttl: '1h' })).json()) as { token: string }).token;
    expect((await enroll(tok, 'rl-a')).status).toBe(201);
    expect((await enroll(tok, 'rl-b')).status).toBe(201);
    const third = await enroll(tok, 'rl-c');
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBeTruthy();
    const nodes = (await (await cp.req('GET', '/v1/nodes')).json()) as List;
    expect(nodes.items.map((n) => n.metadata.name)).not.toContain('rl-c');
  });
});
