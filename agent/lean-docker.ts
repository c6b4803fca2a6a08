import Module, { createRequire } from 'node:module';

// dockerode loads, when it is first imported, two things an agent rarely needs: docker-modem's SSH
// transport (the `ssh2` package, for DOCKER_HOST=ssh://...) and dockerode's BuildKit session
// (`@grpc/grpc-js` and `@grpc/proto-loader`, for image builds, which the agent never does).
// Together they are ~30 MB of the agent's resident memory on a device that may have 512 MB. This
// module, imported before dockerode, puts a stand-in for each in the CommonJS module cache: the
// real module is loaded the first time it is called, so an ssh:// engine still works.

const fromDockerode = createRequire(createRequire(import.meta.url).resolve('dockerode'));

/** The CommonJS modules deferred until first use, as resolved from dockerode. */
export const DEFERRED = {
  ssh: fromDockerode.resolve('docker-modem/lib/ssh.js'),
  session: fromDockerode.resolve('./session.js'),
} as const;

/** Loads the real module behind a stand-in (replacing the stand-in in the cache). */
export function loadDeferred(path: string): (...args: unknown[]) => unknown {
  const cached = fromDockerode.cache[path] as (Module & { deferred?: boolean }) | undefined;
  if (cached?.deferred) delete fromDockerode.cache[path];
  return fromDockerode(path) as (...args: unknown[]) => unknown;
}

function defer(path: string): void {
  if (fromDockerode.cache[path]) return; // already loaded for real: nothing to save
  const standIn = new Module(path) as Module & { deferred?: boolean };
  standIn.filename = path;
  standIn.loaded = true;
  standIn.deferred = true;
  // Both modules export one function (`ssh(opts)` makes an HTTP agent; `withSession(...)` runs a build).
  standIn.exports = function deferred(this: unknown, ...args: unknown[]) {
    return loadDeferred(path).apply(this, args);
  };
  fromDockerode.cache[path] = standIn;
}

defer(DEFERRED.ssh);
defer(DEFERRED.session);
