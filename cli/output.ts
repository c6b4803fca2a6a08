import { formatAge } from '../shared/duration.js';

type Obj = Record<string, unknown> & { metadata: { name: string; namespace?: string; creationTimestamp?: string; labels?: Record<string, string> } };

/** Renders rows as an aligned table with a header, like kubectl. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const age = (o: Obj, now: number) => (o.metadata.creationTimestamp ? formatAge(now - Date.parse(o.metadata.creationTimestamp)) : '');

/** Table rows for nodes. */
export function nodeTable(items: Obj[], now: number): string {
  return table(
    ['NAME', 'STATUS', 'PODS', 'CPUS', 'MEMORY', 'ALLOCATABLE', 'TAINTS', 'DOCKER', 'LABELS', 'AGE'],
    items.map((n) => {
      const st = n.status as {
        conditions: Array<{ status: string }>;
        capacity: { cpu: string; memory: string };
        allocatable?: { cpu: string; memory: string };
        nodeInfo: { containerRuntimeVersion: string };
        pods?: number;
        draining?: boolean;
      };
      const spec = n.spec as { unschedulable?: boolean; taints?: Array<{ key: string; value?: string; effect: string }> };
      const taints = (spec.taints ?? []).map((t) => `${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`).join(',') || '<none>';
      const ready = st.conditions[0]?.status === 'True' ? 'Ready' : 'NotReady';
      const labels =
        Object.entries(n.metadata.labels ?? {})
          .filter(([k]) => k !== 'kubernetes.io/hostname')
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '<none>';
      return [
        n.metadata.name,
        spec.unschedulable ? `${ready},SchedulingDisabled${st.draining ? ',Draining' : ''}` : ready,
        String(st.pods ?? ''),
        st.capacity.cpu,
        `${Math.round(Number(st.capacity.memory) / 2 ** 20)}Mi`,
        st.allocatable ? `${st.allocatable.cpu}/${st.allocatable.memory}` : '',
        taints,
        st.nodeInfo.containerRuntimeVersion.replace('docker://', ''),
        labels,
        age(n, now),
      ];
    }),
  );
}

/** Table rows for deployments. */
export function deploymentTable(items: Obj[], now: number, allNamespaces: boolean): string {
  return table(
    [...(allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'REVISION', 'AGE'],
    items.map((d) => {
      const st = d.status as { readyReplicas: number; updatedReplicas: number; availableReplicas: number };
      const spec = d.spec as { replicas: number };
      const meta = d.metadata as { annotations?: Record<string, string> };
      return [
        ...(allNamespaces ? [d.metadata.namespace ?? ''] : []),
        d.metadata.name,
        `${st.readyReplicas}/${spec.replicas}`,
        String(st.updatedReplicas),
        String(st.availableReplicas),
        meta.annotations?.['deployment.kubernetes.io/revision'] ?? '',
        age(d, now),
      ];
    }),
  );
}

/** Table rows for pods: node, phase, ready, restarts, host ports; `wide` adds the reason in full. */
export function podTable(items: Obj[], now: number, allNamespaces: boolean, wide = false): string {
  return table(
    [...(allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'READY', 'STATUS', 'RESTARTS', 'NODE', 'PORTS', 'AGE', ...(wide ? ['MESSAGE'] : [])],
    items.map((p) => {
      const st = p.status as {
        phase: string;
        reason?: string;
        message?: string;
        containerStatuses: Array<{ ready: boolean; restartCount: number }>;
        hostPorts: Array<{ hostIP: string; hostPort: number; containerPort: number; protocol: string }>;
      };
      const spec = p.spec as { containers: unknown[]; nodeName: string | null };
      const ready = st.containerStatuses.filter((c) => c.ready).length;
      const restarts = st.containerStatuses.reduce((n, c) => n + c.restartCount, 0);
      // Like kubectl: a one-word reason (ContainerCreating, CrashLoopBackOff) replaces the phase; a
      // pod the scheduler cannot place shows Unschedulable (the counted reason is in -o wide).
      const unschedulable = st.phase === 'Pending' && spec.nodeName === null && st.reason?.startsWith('0/');
      const status = unschedulable ? 'Unschedulable' : st.phase !== 'Terminating' && st.reason && !/\s/.test(st.reason) ? st.reason : st.phase;
      const ports = st.hostPorts.map((h) => `${h.hostIP}:${h.hostPort}->${h.containerPort}/${h.protocol.toLowerCase()}`).join(',') || '<none>';
      const message = unschedulable ? (st.reason ?? '') : (st.message ?? (st.reason && /\s/.test(st.reason) ? st.reason : ''));
      return [
        ...(allNamespaces ? [p.metadata.namespace ?? ''] : []),
        p.metadata.name,
        `${ready}/${spec.containers.length}`,
        status,
        String(restarts),
        spec.nodeName ?? '<none>',
        ports,
        age(p, now),
        ...(wide ? [message || '<none>'] : []),
      ];
    }),
  );
}

/** Table rows for DaemonSets. */
export function daemonSetTable(items: Obj[], now: number, allNamespaces: boolean): string {
  return table(
    [...(allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'DESIRED', 'CURRENT', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'NODE SELECTOR', 'AGE'],
    items.map((d) => {
      const st = d.status as { desiredNumberScheduled: number; currentNumberScheduled: number; numberReady: number; updatedNumberScheduled: number; numberAvailable: number };
      const sel = (d.spec as { template: { spec: { nodeSelector?: Record<string, string> } } }).template.spec.nodeSelector ?? {};
      return [
        ...(allNamespaces ? [d.metadata.namespace ?? ''] : []),
        d.metadata.name,
        String(st.desiredNumberScheduled),
        String(st.currentNumberScheduled),
        String(st.numberReady),
        String(st.updatedNumberScheduled),
        String(st.numberAvailable),
        Object.entries(sel)
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '<none>',
        age(d, now),
      ];
    }),
  );
}

/** Secrets and ConfigMaps: keys (names only), version, who uses them. Never a Secret's values. */
export function configTable(items: Obj[], now: number, allNamespaces: boolean): string {
  return table(
    [...(allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'TYPE', 'KEYS', 'VERSION', 'USED BY', 'AGE'],
    items.map((d) => {
      const x = d as unknown as { kind: string; type?: string; keys: { name: string; size: number }[]; version: number; usedBy: string[] };
      return [
        ...(allNamespaces ? [d.metadata.namespace ?? ''] : []),
        d.metadata.name,
        x.kind === 'Secret' ? (x.type ?? 'Opaque') : 'ConfigMap',
        x.keys.map((k) => `${k.name} (${k.size}B)`).join(', ') || '<none>',
        String(x.version),
        x.usedBy.join(', ') || '<none>',
        age(d, now),
      ];
    }),
  );
}

/** Services: type, address, ports (with nodePorts), ready endpoints, selector. */
export function serviceTable(items: Obj[], now: number, allNamespaces: boolean): string {
  return table(
    [...(allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'TYPE', 'CLUSTER-IP', 'PORT(S)', 'ENDPOINTS', 'SELECTOR', 'AGE'],
    items.map((d) => {
      const x = d as unknown as {
        spec: { type: string; clusterIP: string; selector?: Record<string, string>; ports: { port: number; nodePort?: number; name?: string }[] };
        status: { readyEndpoints: number; message?: string };
      };
      return [
        ...(allNamespaces ? [d.metadata.namespace ?? ''] : []),
        d.metadata.name,
        x.spec.type,
        x.spec.clusterIP,
        x.spec.ports.map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/TCP`).join(','),
        String(x.status.readyEndpoints),
        Object.entries(x.spec.selector ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '<none>',
        age(d, now),
      ];
    }),
  );
}

/** Endpoints: ready addresses (ip:port per pod, with the node), the not-ready ones, and why there are none. */
export function endpointsTable(items: Obj[]): string {
  const rows = items.map((d) => {
    const x = d as unknown as {
      subsets: { addresses?: { ip: string; nodeName: string; targetRef: { name: string } }[]; notReadyAddresses?: { ip: string }[]; ports: { port: number }[] }[];
      message?: string;
    };
    const ready = x.subsets.flatMap((s) => (s.addresses ?? []).flatMap((a) => s.ports.map((p) => `${a.ip}:${p.port}`)));
    const notReady = x.subsets.flatMap((s) => (s.notReadyAddresses ?? []).flatMap((a) => s.ports.map((p) => `${a.ip}:${p.port}`)));
    const nodes = [...new Set(x.subsets.flatMap((s) => (s.addresses ?? []).map((a) => a.nodeName)))];
    return [d.metadata.name, ready.join(',') || '<none>', notReady.join(',') || '-', nodes.join(',') || '-', x.message ?? ''];
  });
  return table(['NAME', 'ENDPOINTS', 'NOT READY', 'NODES', 'MESSAGE'], rows);
}

/** PersistentVolumeClaims: phase, the node holding the data, size, access modes, class, reclaim policy. */
export function claimTable(items: Obj[], now: number, allNamespaces: boolean): string {
  return table(
    [...(allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'STATUS', 'NODE', 'CAPACITY', 'ACCESS MODES', 'STORAGECLASS', 'RECLAIM', 'AGE'],
    items.map((d) => {
      const x = d as unknown as { spec: { storageClassName: string; accessModes: string[] }; status: { phase: string; node?: string; capacity: { storage: string }; reclaimPolicy: string } };
      return [
        ...(allNamespaces ? [d.metadata.namespace ?? ''] : []),
        d.metadata.name,
        x.status.phase,
        x.status.node ?? '<none>',
        x.status.capacity.storage,
        x.spec.accessModes.map((m) => (m === 'ReadWriteOnce' ? 'RWO' : m)).join(','),
        x.spec.storageClassName,
        x.status.reclaimPolicy,
        age(d, now),
      ];
    }),
  );
}
