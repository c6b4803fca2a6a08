#!/usr/bin/env node
import { stringify as stringifyYaml } from 'yaml';
import { type Difference, formatDifference } from '../shared/diff.js';
import { parseDuration } from '../shared/duration.js';
import { CliError, call, streamText } from './api.js';
import { namespaceOf, parse, parseLabelsFlag, target } from './args.js';
import { completionScript } from './completion.js';
import { configPath, contextNameFor, readConfig, writeConfig } from './contexts.js';
import { describe, get, kindOf, top } from './get.js';
import { KIND_ALIASES, pathFor, readManifestFiles } from './manifests.js';
import { table as tableOf } from './output.js';

const USAGE = `flotilla: a container orchestrator for fleets of edge and cloud machines

Usage:
  flotilla server [--host 127.0.0.1] [--port 8080] [--data-dir ./.flotilla] [--no-agent]
  flotilla agent --server URL --token TOKEN [--data-dir DIR] [--name NAME] [--label k=v ...] [--docker-host URL]
                 [--host-ip IP] [--advertise-address ADDR] [--allow-host-path PREFIX ...] [--service-ip-prefix 127.N]
  flotilla token create [--uses N] [--ttl DURATION] [--label k=v ...]
  flotilla token list | token revoke ID
  flotilla api-token create NAME --scope admin|deploy|read [--namespace NS ...] [--ttl DURATION]
  flotilla api-token list | api-token revoke ID
  flotilla apply -f FILE|DIR|- [-R] [-n NS] [--dry-run=server|client] [--wait [--timeout 10m]]
  flotilla get KIND [NAME] [-n NS | -A] [-l SELECTOR] [-o table|wide|json|yaml|name] [-w [--timeout D]]
        KIND: namespaces, nodes, deployments, daemonsets, pods, events, secrets, configmaps, services, endpoints, pvc
  flotilla describe KIND NAME
  flotilla delete (-f FILE|DIR | KIND NAME) [-n NS]   (KIND: deployment, daemonset, secret, configmap, service, pvc)
  flotilla logs POD [-c CONTAINER] [--tail N] [--since 10m] [-f]
  flotilla events [-n NS | -A] [-w]
  flotilla top nodes | top pods [-n NS | -A] [--containers] [--sort-by cpu|memory]
  flotilla scale deployment/NAME --replicas N
  flotilla rollout status|history|undo [--to-revision N]|restart|pause|resume|promote deployment/NAME|daemonset/NAME
  flotilla cordon NODE | uncordon NODE
  flotilla drain NODE [--timeout 5m]
  flotilla label node NODE key=value ... key- ...
  flotilla taint node NODE key[=value]:Effect ... key- ...
  flotilla node revoke NAME
  flotilla keys rotate | rotate-secrets | new-signing-key | new-secret-key | new-admin-token
  flotilla login SERVER --token TOKEN [--context NAME] [-n NS]
  flotilla config get-contexts | current-context | use-context NAME | delete-context NAME | view
  flotilla completion bash|zsh|fish
  flotilla version

Operator commands talk to --server/--token, else FLOTILLA_SERVER/FLOTILLA_TOKEN, else the context
(--context NAME, FLOTILLA_CONTEXT, or the current one in ~/.config/flotilla/config.json, see login),
else http://127.0.0.1:8080 with ./.flotilla/admin.token. Exit codes: 0 done, 1 failed (one line on
stderr says why), 2 bad usage, 3 timed out waiting.`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return cmd === undefined ? 2 : 0;
    case 'version':
    case '--version':
      console.log('flotilla 0.1.0');
      return 0;
    case 'server': {
      const { values } = parse(rest, { host: { type: 'string' }, port: { type: 'string' }, 'data-dir': { type: 'string' }, 'no-agent': { type: 'boolean' } });
      const { runServer } = await import('./server.js');
      return runServer({ host: values.host ?? '127.0.0.1', port: Number(values.port ?? 8080), dataDir: values['data-dir'] ?? './.flotilla', agent: !values['no-agent'] });
    }
    case 'agent': {
      const { values } = parse(rest, {
        'data-dir': { type: 'string' },
        name: { type: 'string' },
        label: { type: 'string', multiple: true },
        'docker-host': { type: 'string' },
        'host-ip': { type: 'string' },
        'advertise-address': { type: 'string' },
        'allow-host-path': { type: 'string', multiple: true },
        'service-ip-prefix': { type: 'string' },
      });
      const server = values.server ?? process.env.FLOTILLA_SERVER;
      if (!server) throw new CliError('--server URL is required', 2);
      const allowedHostPaths = [...(values['allow-host-path'] ?? []), ...(process.env.FLOTILLA_ALLOWED_HOST_PATHS ?? '').split(',')].map((p) => p.trim()).filter(Boolean);
      const relative = allowedHostPaths.find((p) => !p.startsWith('/'));
      if (relative !== undefined) throw new CliError(`--allow-host-path must be an absolute path: "${relative}"`, 2);
      const prefix = values['service-ip-prefix'] ?? process.env.FLOTILLA_SERVICE_IP_PREFIX;
      if (prefix !== undefined && !/^127\.(25[0-5]|2[0-4]\d|1?\d?\d)$/.test(prefix)) throw new CliError(`--service-ip-prefix must be two octets of the loopback range, like 127.78: "${prefix}"`, 2);
      const { runAgent } = await import('./agent-main.js');
      return runAgent({
        server,
        token: values.token ?? process.env.FLOTILLA_ENROLL_TOKEN,
        dataDir: values['data-dir'] ?? '/var/lib/flotilla-agent',
        name: values.name,
        labels: parseLabelsFlag(values.label ?? []),
        dockerHost: values['docker-host'] ?? process.env.DOCKER_HOST,
        hostIp: values['host-ip'],
        advertiseAddress: values['advertise-address'],
        allowedHostPaths,
        serviceIpPrefix: values['service-ip-prefix'] ?? process.env.FLOTILLA_SERVICE_IP_PREFIX,
      });
    }
    case 'token': {
      const [sub, ...more] = rest;
      const { values, positionals } = parse(more, { uses: { type: 'string' }, ttl: { type: 'string' }, label: { type: 'string', multiple: true } });
      const t = target(values);
      if (sub === 'create') {
        const uses = Number(values.uses ?? 1);
        if (!Number.isInteger(uses) || uses < 1) throw new CliError('--uses must be a whole number of at least 1', 2);
        if (values.ttl !== undefined && parseDuration(values.ttl) === null) throw new CliError(`--ttl: not a duration: ${values.ttl} (try 30m, 1h, 7d)`, 2);
        const r = await call<{ token: string; id: string; expiresAt: string }>(t, 'POST', '/v1/enrollment-tokens', { uses, ttl: values.ttl ?? '1h', labels: parseLabelsFlag(values.label ?? []) });
        if (values.output === 'json') console.log(JSON.stringify(r.body, null, 2));
        else {
          console.log(r.body.token);
          console.error(`enrollment token ${r.body.id}: ${uses} use(s), expires ${r.body.expiresAt}`);
        }
        return 0;
      }
      if (sub === 'list') {
        const r = await call<{ items: Array<Record<string, unknown>> }>(t, 'GET', '/v1/enrollment-tokens');
        if (values.output === 'json') console.log(JSON.stringify(r.body, null, 2));
        else
          console.log(
            tableOf(
              ['ID', 'USES', 'STATE', 'LABELS', 'EXPIRES'],
              r.body.items.map((i) => [String(i.id), `${i.uses}/${i.maxUses}`, String(i.state), labelsText(i.labels), String(i.expiresAt)]),
            ),
          );
        return 0;
      }
      if (sub === 'revoke' && positionals[0]) {
        await call(t, 'DELETE', `/v1/enrollment-tokens/${encodeURIComponent(positionals[0])}`);
        console.log(`enrollment token ${positionals[0]} revoked`);
        return 0;
      }
      throw new CliError('usage: flotilla token create|list|revoke ID', 2);
    }
    case 'api-token': {
      const [sub, ...more] = rest;
      const { values, positionals } = parse(more, { scope: { type: 'string' }, ttl: { type: 'string' }, namespace: { type: 'string', short: 'n', multiple: true } });
      const t = target(values);
      if (sub === 'create' && positionals[0]) {
        if (!values.scope) throw new CliError('--scope admin|deploy|read is required', 2);
        const r = await call<{ token: string; id: string }>(t, 'POST', '/v1/api-tokens', {
          name: positionals[0],
          scope: values.scope,
          ...(values.namespace ? { namespaces: values.namespace } : {}),
          ...(values.ttl ? { ttl: values.ttl } : {}),
        });
        console.log(r.body.token);
        console.error(`API token ${r.body.id} (${values.scope})`);
        return 0;
      }
      if (sub === 'list') {
        const r = await call<{ items: Array<Record<string, unknown>> }>(t, 'GET', '/v1/api-tokens');
        console.log(
          tableOf(
            ['ID', 'NAME', 'SCOPE', 'NAMESPACES', 'REVOKED'],
            r.body.items.map((i) => [String(i.id), String(i.name), String(i.scope), i.namespaces ? (i.namespaces as string[]).join(',') : '*', String(i.revoked)]),
          ),
        );
        return 0;
      }
      if (sub === 'revoke' && positionals[0]) {
        await call(t, 'DELETE', `/v1/api-tokens/${encodeURIComponent(positionals[0])}`);
        console.log(`API token ${positionals[0]} revoked`);
        return 0;
      }
      throw new CliError('usage: flotilla api-token create NAME --scope S | list | revoke ID', 2);
    }
    case 'apply': {
      const { values } = parse(rest, {
        filename: { type: 'string', short: 'f', multiple: true },
        recursive: { type: 'boolean', short: 'R' },
        wait: { type: 'boolean' },
        timeout: { type: 'string' },
        'dry-run': { type: 'string' },
      });
      if (!values.filename?.length) throw new CliError('apply needs -f FILE|DIR (or -f - for standard input)', 2);
      if (values.timeout !== undefined && parseDuration(values.timeout) === null) throw new CliError(`--timeout: not a duration: ${values.timeout}`, 2);
      const dry = values['dry-run'];
      if (dry !== undefined && dry !== 'server' && dry !== 'client') throw new CliError(`--dry-run must be server or client: "${dry}"`, 2);
      const docs = values.filename.flatMap((f) => readManifestFiles(f, values.recursive === true));
      const paths = docs.map((d) => pathFor(d, namespaceOf(values))); // validate kinds before changing anything
      if (dry === 'client') {
        for (const { label } of paths) console.log(`${label} (dry run: client, not sent)`);
        return 0;
      }
      const t = target(values);
      if (dry === 'server') {
        // Every document is validated by the server as a real apply would be; nothing is stored.
        let code = 0;
        for (const [i, d] of docs.entries()) {
          const { path, label } = paths[i] as { path: string; label: string };
          try {
            const r = await call<{ outcome: string; changes: Difference[] }>(t, 'PUT', `${path}?dryRun=All`, d);
            console.log(`${label} ${r.body.outcome} (server dry run)`);
            for (const c of r.body.changes ?? []) console.log(`  ${formatDifference(c)}`);
          } catch (e) {
            if (!(e instanceof CliError)) throw e;
            console.error(`error: ${label}: ${e.message}`);
            code = 1;
          }
        }
        return code;
      }
      const workloads: { path: string; kind: string; name: string }[] = [];
      for (const [i, d] of docs.entries()) {
        const { path, label } = paths[i] as { path: string; label: string };
        const r = await call<unknown>(t, 'PUT', path, d);
        const outcome = r.headers.get('flotilla-outcome') ?? (r.status === 201 ? 'created' : 'configured');
        console.log(`${label} ${outcome}`);
        const m = /\/(deployments|daemonsets)\/([^/]+)$/.exec(path);
        if (m) workloads.push({ path, kind: m[1] === 'daemonsets' ? 'daemonset' : 'deployment', name: decodeURIComponent(m[2] as string) });
      }
      // --wait: follow every workload's rollout; the worst exit code wins.
      let code = 0;
      if (values.wait) for (const w of workloads) code = Math.max(code, await rolloutStatus(t, w.path, w.kind, w.name, values.timeout));
      return code;
    }
    case 'logs': {
      const { values, positionals } = parse(rest, { container: { type: 'string', short: 'c' }, tail: { type: 'string' }, since: { type: 'string' }, follow: { type: 'boolean', short: 'f' } });
      const [pod] = positionals;
      if (!pod) throw new CliError('usage: flotilla logs POD [-c CONTAINER] [--tail N] [--since 10m] [-f] [-n NS]', 2);
      const q = new URLSearchParams();
      if (values.container) q.set('container', values.container);
      if (values.tail !== undefined) {
        if (!/^\d+$/.test(values.tail)) throw new CliError(`--tail must be a number of lines: "${values.tail}"`, 2);
        q.set('tailLines', values.tail);
      }
      if (values.since !== undefined) {
        const ms = parseDuration(values.since);
        if (ms === null || ms < 1000) throw new CliError(`--since: not a duration of at least 1s: ${values.since} (try 30s, 10m, 2h)`, 2);
        q.set('sinceSeconds', String(Math.floor(ms / 1000)));
      }
      if (values.follow) q.set('follow', '1');
      const path = `/v1/namespaces/${encodeURIComponent(namespaceOf(values))}/pods/${encodeURIComponent(pod)}/log?${q}`;
      await streamText(target(values), path, (s) => process.stdout.write(s), values.follow ? undefined : 120_000);
      return 0;
    }
    case 'get': {
      const { values, positionals } = parse(rest, {
        'all-namespaces': { type: 'boolean', short: 'A' },
        selector: { type: 'string', short: 'l' },
        watch: { type: 'boolean', short: 'w' },
        timeout: { type: 'string' },
      });
      const [kindArg, name] = positionals;
      const kind = kindOf(kindArg, 'get');
      const o = { namespace: namespaceOf(values), all: values['all-namespaces'] === true, output: values.output, selector: values.selector, watch: values.watch, timeout: values.timeout };
      return get(target(values), kind, name, o);
    }
    case 'describe': {
      const { values, positionals } = parse(rest, {});
      const [a, b] = positionals;
      const [kindArg, name] = a?.includes('/') ? (a.split('/', 2) as [string, string]) : [a, b];
      const kind = kindOf(kindArg, 'describe');
      if (!name) throw new CliError('usage: flotilla describe KIND NAME (or KIND/NAME)', 2);
      return describe(target(values), kind, name, { namespace: namespaceOf(values), all: false });
    }
    case 'events': {
      const { values } = parse(rest, { 'all-namespaces': { type: 'boolean', short: 'A' }, watch: { type: 'boolean', short: 'w' }, timeout: { type: 'string' } });
      return get(target(values), 'events', undefined, { namespace: namespaceOf(values), all: values['all-namespaces'] === true, output: values.output, watch: values.watch, timeout: values.timeout });
    }
    case 'top': {
      const { values, positionals } = parse(rest, { 'all-namespaces': { type: 'boolean', short: 'A' }, containers: { type: 'boolean' }, 'sort-by': { type: 'string' } });
      const sort = values['sort-by'];
      if (sort !== undefined && sort !== 'cpu' && sort !== 'memory') throw new CliError(`--sort-by must be cpu or memory: "${sort}"`, 2);
      return top(target(values), positionals[0], { namespace: namespaceOf(values), all: values['all-namespaces'] === true, output: values.output, containers: values.containers, sort });
    }
    case 'login': {
      const { values, positionals } = parse(rest, {});
      const server = positionals[0];
      if (!server || !values.token) throw new CliError('usage: flotilla login SERVER --token TOKEN [--context NAME] [-n NAMESPACE]', 2);
      const name = values.context ?? contextNameFor(server);
      // Checked before saving: the server answers and takes the token.
      await call(target({ server, token: values.token }), 'GET', '/v1/namespaces');
      const cfg = readConfig();
      cfg.contexts[name] = { server, token: values.token, ...(values.namespace ? { namespace: values.namespace } : {}) };
      cfg.currentContext = name;
      writeConfig(cfg);
      console.log(`logged in to ${server}; context "${name}" saved in ${configPath()} and selected`);
      return 0;
    }
    case 'config': {
      const [sub, ...more] = rest;
      const { values, positionals } = parse(more, {});
      const cfg = readConfig();
      if (sub === 'get-contexts') {
        const names = Object.keys(cfg.contexts).sort();
        if (values.output === 'name') for (const n of names) console.log(n);
        else if (names.length === 0) console.error(`No contexts in ${configPath()} (flotilla login SERVER --token T adds one).`);
        else
          console.log(
            tableOf(
              ['CURRENT', 'NAME', 'SERVER', 'NAMESPACE'],
              names.map((n) => [n === cfg.currentContext ? '*' : '', n, cfg.contexts[n]?.server ?? '', cfg.contexts[n]?.namespace ?? 'default']),
            ),
          );
        return 0;
      }
      if (sub === 'current-context') {
        if (!cfg.currentContext) throw new CliError('no current context (flotilla config use-context NAME)');
        console.log(cfg.currentContext);
        return 0;
      }
      if ((sub === 'use-context' || sub === 'delete-context') && positionals[0]) {
        const n = positionals[0];
        if (!cfg.contexts[n]) throw new CliError(`no context "${n}" (have: ${Object.keys(cfg.contexts).join(', ') || 'none'})`);
        if (sub === 'use-context') cfg.currentContext = n;
        else {
          delete cfg.contexts[n];
          if (cfg.currentContext === n) cfg.currentContext = undefined;
        }
        writeConfig(cfg);
        console.log(sub === 'use-context' ? `switched to context "${n}" (${cfg.contexts[n]?.server})` : `deleted context "${n}"`);
        return 0;
      }
      if (sub === 'view') {
        const shown = { ...cfg, contexts: Object.fromEntries(Object.entries(cfg.contexts).map(([k, v]) => [k, { ...v, token: 'REDACTED' }])) };
        console.log(values.output === 'json' ? JSON.stringify(shown, null, 2) : stringifyYaml(shown).trimEnd());
        return 0;
      }
      throw new CliError('usage: flotilla config get-contexts | current-context | use-context NAME | delete-context NAME | view', 2);
    }
    case 'completion': {
      const shell = rest[0];
      if (shell !== 'bash' && shell !== 'zsh' && shell !== 'fish') throw new CliError('usage: flotilla completion bash|zsh|fish', 2);
      process.stdout.write(completionScript(shell));
      return 0;
    }
    case 'delete': {
      const { values, positionals } = parse(rest, { filename: { type: 'string', short: 'f' } });
      const t = target(values);
      const targets: Array<{ path: string; label: string }> = [];
      if (values.filename) for (const d of readManifestFiles(values.filename, false)) targets.push(pathFor(d, namespaceOf(values)));
      else {
        const [kindArg, name] = positionals;
        const plural = KIND_ALIASES[kindArg ?? ''];
        if (!['deployments', 'daemonsets', 'secrets', 'configmaps', 'services', 'persistentvolumeclaims'].includes(plural ?? '') || !name)
          throw new CliError('usage: flotilla delete -f FILE | flotilla delete deployment|daemonset|secret|configmap|service|pvc NAME', 2);
        const apps = plural === 'deployments' || plural === 'daemonsets';
        targets.push({
          path: `/v1/namespaces/${encodeURIComponent(namespaceOf(values))}/${plural}/${encodeURIComponent(name)}`,
          label: `${(plural as string).slice(0, -1)}${apps ? '.apps' : ''}/${name}`,
        });
      }
      for (const x of targets) {
        if (x.label.startsWith('namespace/')) throw new CliError('deleting namespaces is not supported yet');
        await call(t, 'DELETE', x.path);
        console.log(`${x.label} deleted`);
      }
      return 0;
    }
    case 'scale': {
      const { values, positionals } = parse(rest, { replicas: { type: 'string' } });
      const name = deploymentName(positionals);
      const replicas = Number(values.replicas);
      if (!name || values.replicas === undefined || !Number.isInteger(replicas) || replicas < 0) throw new CliError('usage: flotilla scale deployment/NAME --replicas N', 2);
      await call(target(values), 'PUT', `/v1/namespaces/${encodeURIComponent(namespaceOf(values))}/deployments/${encodeURIComponent(name)}/scale`, { spec: { replicas } });
      console.log(`deployment.apps/${name} scaled`);
      return 0;
    }
    case 'rollout': {
      const [sub, ...more] = rest;
      const { values, positionals } = parse(more, { 'to-revision': { type: 'string' }, timeout: { type: 'string' } });
      const w = workloadRef(positionals);
      const usage = 'usage: flotilla rollout status|history|undo [--to-revision N]|restart|pause|resume|promote deployment/NAME|daemonset/NAME';
      if (!w || !['history', 'pause', 'resume', 'undo', 'restart', 'status', 'promote'].includes(sub ?? '')) throw new CliError(usage, 2);
      if (w.kind === 'daemonsets' && ['pause', 'resume', 'promote'].includes(sub ?? '')) throw new CliError(`rollout ${sub}: only for deployments`, 2);
      const { name } = w;
      const singular = w.kind === 'daemonsets' ? 'daemonset' : 'deployment';
      const base = `/v1/namespaces/${encodeURIComponent(namespaceOf(values))}/${w.kind}/${encodeURIComponent(name)}`;
      const t = target(values);
      if (sub === 'history') {
        const r = await call<{ items: Array<{ revision: number; current: boolean; images: string[]; changeCause: string | null; createdAt: string }> }>(t, 'GET', `${base}/revisions`);
        if (values.output === 'json') console.log(JSON.stringify(r.body, null, 2));
        else
          console.log(
            tableOf(
              ['REVISION', 'IMAGES', 'CHANGE-CAUSE', 'CREATED'],
              r.body.items.map((x) => [`${x.revision}${x.current ? ' (current)' : ''}`, x.images.join(','), x.changeCause ?? '<none>', x.createdAt]),
            ),
          );
        return 0;
      }
      if (sub === 'undo') {
        const to = values['to-revision'];
        if (to !== undefined && !/^[1-9]\d*$/.test(to)) throw new CliError('--to-revision must be a revision number', 2);
        await call(t, 'POST', `${base}/rollback`, to === undefined ? {} : { toRevision: Number(to) });
        console.log(`${singular}.apps/${name} rolled back${to ? ` to revision ${to}` : ''}`);
        return 0;
      }
      if (sub === 'status') return rolloutStatus(t, base, singular, name, values.timeout);
      await call(t, 'POST', `${base}/${sub}`);
      console.log(`${singular}.apps/${name} ${{ pause: 'paused', resume: 'resumed', restart: 'restarted', promote: 'promoted' }[sub as string]}`);
      return 0;
    }
    case 'cordon':
    case 'uncordon': {
      const { values, positionals } = parse(rest, {});
      if (!positionals[0]) throw new CliError(`usage: flotilla ${cmd} NODE`, 2);
      await call(target(values), 'POST', `/v1/nodes/${encodeURIComponent(positionals[0])}/${cmd}`);
      console.log(`node/${positionals[0]} ${cmd}ed`);
      return 0;
    }
    case 'drain': {
      const { values, positionals } = parse(rest, { timeout: { type: 'string' } });
      const node = positionals[0];
      if (!node) throw new CliError('usage: flotilla drain NODE [--timeout 5m]', 2);
      const timeoutMs = values.timeout ? parseDuration(values.timeout) : 300_000;
      if (timeoutMs === null) throw new CliError(`--timeout: not a duration: ${values.timeout}`, 2);
      const t = target(values);
      const r = await call<{ remainingPods: string[] }>(t, 'POST', `/v1/nodes/${encodeURIComponent(node)}/drain`);
      console.log(`node/${node} cordoned`);
      // Deployment pods move off once their replacements are Ready; DaemonSet pods stay (as kubectl's --ignore-daemonsets).
      const deadline = Date.now() + timeoutMs;
      let remaining = r.body.remainingPods;
      let shown = '';
      while (remaining.length > 0) {
        const line = `waiting for ${remaining.length} pod(s) to move off ${node}: ${remaining.slice(0, 5).join(', ')}${remaining.length > 5 ? ', ...' : ''}`;
        if (line !== shown) console.log(line);
        shown = line;
        if (Date.now() > deadline) throw new CliError(`drain of ${node} timed out with ${remaining.length} pod(s) left (their replacements are not Ready: see flotilla get pods)`);
        await new Promise((res) => setTimeout(res, 1000));
        const pods = await call<{ items: Array<{ metadata: { name: string; namespace: string; ownerReferences?: Array<{ kind: string }> }; spec: { nodeName: string | null } }> }>(
          t,
          'GET',
          '/v1/pods',
        );
        remaining = pods.body.items.filter((p) => p.spec.nodeName === node && p.metadata.ownerReferences?.[0]?.kind !== 'DaemonSet').map((p) => `${p.metadata.namespace}/${p.metadata.name}`);
      }
      console.log(`node/${node} drained`);
      return 0;
    }
    case 'label':
    case 'taint': {
      const { values, positionals } = parse(rest, {});
      const [kindArg, node, ...changes] = positionals;
      if (KIND_ALIASES[kindArg ?? ''] !== 'nodes' || !node || changes.length === 0)
        throw new CliError(`usage: flotilla ${cmd} node NODE ${cmd === 'label' ? 'key=value ... key-' : 'key[=value]:Effect ... key-'}`, 2);
      const t = target(values);
      const current = await call<{ metadata: { labels: Record<string, string> }; spec: { taints?: Array<{ key: string; value?: string; effect: string }> } }>(
        t,
        'GET',
        `/v1/nodes/${encodeURIComponent(node)}`,
      );
      let body: Record<string, unknown>;
      if (cmd === 'label') {
        const labels = { ...current.body.metadata.labels };
        for (const c of changes) {
          if (c.endsWith('-')) delete labels[c.slice(0, -1)];
          else {
            const eq = c.indexOf('=');
            if (eq <= 0) throw new CliError(`label: "${c}" is not key=value or key-`, 2);
            labels[c.slice(0, eq)] = c.slice(eq + 1);
          }
        }
        body = { labels };
      } else {
        let taints = [...(current.body.spec.taints ?? [])];
        for (const c of changes) {
          if (c.endsWith('-')) {
            const [key, effect] = c.slice(0, -1).split(':');
            taints = taints.filter((x) => !(x.key === key && (!effect || x.effect === effect)));
            continue;
          }
          const m = /^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/.exec(c);
          if (!m) throw new CliError(`taint: "${c}" is not key[=value]:NoSchedule|PreferNoSchedule|NoExecute or key-`, 2);
          taints = taints.filter((x) => !(x.key === m[1] && x.effect === m[3]));
          taints.push({ key: m[1] as string, ...(m[2] ? { value: m[2] } : {}), effect: m[3] as string });
        }
        body = { taints };
      }
      await call(t, 'PATCH', `/v1/nodes/${encodeURIComponent(node)}`, body);
      console.log(`node/${node} ${cmd === 'label' ? 'labeled' : 'tainted'}`);
      return 0;
    }
    case 'node': {
      const [sub, ...more] = rest;
      const { values, positionals } = parse(more, {});
      if (sub !== 'revoke' || !positionals[0]) throw new CliError('usage: flotilla node revoke NAME', 2);
      await call(target(values), 'POST', `/v1/nodes/${encodeURIComponent(positionals[0])}/revoke`);
      console.log(`node/${positionals[0]} revoked`);
      return 0;
    }
    case 'keys': {
      const [sub, ...more] = rest;
      const { values } = parse(more, {});
      if (sub === 'new-signing-key') {
        // For `wrangler secret put FLOTILLA_SIGNING_KEY`: generated here, never sent anywhere.
        const { generateSigningKey } = await import('../control-plane/keys.js');
        console.log(JSON.stringify((await generateSigningKey(Date.now())).privateJwk));
        return 0;
      }
      if (sub === 'new-admin-token') {
        const { randomToken } = await import('../shared/digest.js');
        console.log(`flo_${randomToken(32)}`);
        return 0;
      }
      if (sub === 'new-secret-key') {
        // For FLOTILLA_SECRET_KEY (or `wrangler secret put FLOTILLA_SECRET_KEY`): generated here, never sent anywhere.
        const { newMasterKey } = await import('../shared/secretbox.js');
        console.log(newMasterKey());
        return 0;
      }
      if (sub === 'rotate-secrets') {
        const r = await call<{ kid: string; resealed: number; remaining: number }>(target(values), 'POST', '/v1/keys/rotate-secrets');
        console.log(
          `${r.body.resealed} secret(s) re-sealed under key ${r.body.kid}; ${r.body.remaining === 0 ? 'none is left under a previous key: FLOTILLA_SECRET_KEY_PREVIOUS can be removed' : `${r.body.remaining} still under a previous key (changed meanwhile): run it again`}`,
        );
        return r.body.remaining === 0 ? 0 : 1;
      }
      if (sub !== 'rotate') throw new CliError('usage: flotilla keys rotate | rotate-secrets | new-signing-key | new-secret-key | new-admin-token', 2);
      const r = await call<{ kid: string }>(target(values), 'POST', '/v1/keys/rotate');
      console.log(`lease-signing key rotated: now signing with ${r.body.kid}; previous keys stay published until their leases expire`);
      return 0;
    }
    default:
      throw new CliError(`unknown command "${cmd}" (see flotilla --help)`, 2);
  }
}

interface RolloutView {
  revision: number;
  state: 'Progressing' | 'Complete' | 'Paused' | 'CanaryHold' | 'Failed';
  reason: string;
  message: string;
  rolledBack?: { from: number; to: number; reason: string; message: string };
}

/**
 * Follows a rollout like `kubectl rollout status`, from the rollout controller's record: progress
 * (a bar on a terminal, a line per change otherwise); exit 0 once the revision it started with is
 * fully rolled out, 1 when that revision failed or was rolled back (with the reason), 3 on timeout.
 * A newer revision applied meanwhile is followed instead.
 */
export async function rolloutStatus(t: ReturnType<typeof target>, base: string, kind: string, name: string, timeout: string | undefined): Promise<number> {
  const timeoutMs = timeout ? parseDuration(timeout) : 600_000;
  if (timeoutMs === null) throw new CliError(`--timeout: not a duration: ${timeout}`, 2);
  const deadline = Date.now() + timeoutMs;
  const tty = process.stdout.isTTY === true;
  let watching: number | undefined;
  let last = '';
  const show = (line: string) => {
    if (line === last) return;
    if (tty) process.stdout.write(`\r\x1b[2K${line}`);
    else console.log(line);
    last = line;
  };
  const done = (line: string) => {
    if (tty) process.stdout.write('\r\x1b[2K');
    console.log(line);
  };
  for (;;) {
    const d = (
      await call<{
        spec: { replicas?: number; paused?: boolean };
        status: {
          replicas?: number;
          updatedReplicas?: number;
          availableReplicas?: number;
          desiredNumberScheduled?: number;
          updatedNumberScheduled?: number;
          numberAvailable?: number;
          rollout: RolloutView;
        };
      }>(t, 'GET', base)
    ).body;
    const r = d.status.rollout;
    watching ??= r.revision;
    if (r.revision !== watching) {
      if (r.rolledBack?.from === watching) {
        done(
          `error: ${kind} "${name}" revision ${watching} failed (${r.rolledBack.reason}: ${r.rolledBack.message}); rolled back to the template of revision ${r.rolledBack.to} (now revision ${r.revision})`,
        );
        return 1;
      }
      watching = r.revision; // a newer revision was applied: follow it
    }
    if (r.state === 'Complete') {
      done(`${kind} "${name}" successfully rolled out (revision ${r.revision})`);
      return 0;
    }
    if (r.state === 'Failed') {
      done(`error: ${kind} "${name}" revision ${r.revision} failed: ${r.reason}: ${r.message}`);
      return 1;
    }
    const want = d.spec.replicas ?? d.status.desiredNumberScheduled ?? 0;
    const updated = d.status.updatedReplicas ?? d.status.updatedNumberScheduled ?? 0;
    const available = d.status.availableReplicas ?? d.status.numberAvailable ?? 0;
    const total = d.status.replicas ?? updated;
    const counts = `${updated} of ${want} updated, ${Math.min(available, want)} available${total > updated ? `, ${total - updated} old` : ''}`;
    const state = r.state === 'CanaryHold' ? `canary held: ${r.message}` : r.state === 'Paused' ? 'paused' : 'rolling out';
    const bar = tty && want > 0 ? `[${'#'.repeat(Math.round((updated / want) * 20)).padEnd(20, '-')}] ` : '';
    show(`${bar}${kind} "${name}" revision ${r.revision}: ${counts} (${state})`);
    if (Date.now() > deadline) {
      if (tty) process.stdout.write('\n');
      throw new CliError(`timed out waiting for the rollout of ${kind} "${name}": ${counts} (${state})`, 3);
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}

/** `deployment/NAME`, `daemonset/NAME` (or `deploy/NAME`, `ds NAME`...) -> kind and name. */
function workloadRef(positionals: string[]): { kind: 'deployments' | 'daemonsets'; name: string } | undefined {
  const [a, b] = positionals;
  if (!a) return undefined;
  const [kindArg, name] = a.includes('/') ? (a.split('/', 2) as [string, string]) : [a, b];
  const kind = KIND_ALIASES[kindArg];
  return (kind === 'deployments' || kind === 'daemonsets') && name ? { kind, name } : undefined;
}

/** `deployment/NAME`, `deployment NAME` or `deploy/NAME` -> NAME (only Deployments). */
function deploymentName(positionals: string[]): string | undefined {
  const [a, b] = positionals;
  if (!a) return undefined;
  const [kind, name] = a.includes('/') ? (a.split('/', 2) as [string, string]) : [a, b];
  return KIND_ALIASES[kind] === 'deployments' && name ? name : undefined;
}

function labelsText(l: unknown): string {
  return (
    Object.entries((l ?? {}) as Record<string, string>)
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || '<none>'
  );
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0 || !['server', 'agent'].includes(process.argv[2] ?? '')) process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof CliError) {
      console.error(`error: ${e.message}`);
      process.exitCode = e.exitCode;
    } else {
      console.error(`error: ${(e as Error).message}`);
      if (process.env.FLOTILLA_DEBUG) console.error((e as Error).stack);
      process.exitCode = 1;
    }
  },
);
