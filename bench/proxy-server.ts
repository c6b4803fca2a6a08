// A child process of the proxy benchmark: the agent's service proxy, serving one service whose one
// endpoint is argv[3], on argv[2] (host:port). Prints "ready" once listening.
import { ServiceProxy } from '../agent/proxy.js';
import { silentLogger } from '../control-plane/config.js';

const [listen, endpoint] = process.argv.slice(2) as [string, string];
const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];
const [eip, eport] = [endpoint.slice(0, endpoint.lastIndexOf(':')), Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))];
const proxy = new ServiceProxy({ logger: silentLogger, ejectMs: 10_000, connectTimeoutMs: 2000 });
await proxy.update([{ namespace: 'bench', name: 'web', clusterIP: host, type: 'ClusterIP', balance: 'round-robin', ports: [{ port, endpoints: [{ ip: eip, port: eport }] }] }], new Map(), '127.0.0.1');
if (proxy.listening().length !== 1) throw new Error(`proxy is not listening on ${listen}`);
console.log('ready');
process.on('SIGTERM', () => void proxy.close().then(() => process.exit(0)));
