import Docker from 'dockerode';
import { LABELS } from '../../shared/protocol.js';

/** The engine tests use; fails with instructions when it is not running (never a silent skip). */
export async function requireDocker(): Promise<Docker> {
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
  try {
    await docker.version();
  } catch (e) {
    throw new Error(
      `These tests need a Docker engine at /var/run/docker.sock and none answered (${(e as Error).message}). ` +
        'Start one: apt-get install -y docker.io busybox-static docker-registry apache2-utils && (dockerd >/var/log/dockerd.log 2>&1 &) ' +
        '&& bash test/images/build.sh — or run the whole suite with: bash .ci/run',
    );
  }
  try {
    await docker.getImage('local/busybox:1').inspect();
  } catch {
    throw new Error('test image local/busybox:1 is missing: run bash test/images/build.sh');
  }
  return docker;
}

/** Containers a node created, as the engine lists them. */
export async function nodeContainers(docker: Docker, nodeId: string, all = true) {
  return docker.listContainers({ all, filters: { label: [`${LABELS.node}=${nodeId}`] } });
}

/** Removes every container of the given nodes (test clean-up). */
export async function removeNodeContainers(docker: Docker, nodeIds: readonly string[]): Promise<void> {
  for (const id of nodeIds)
    for (const c of await nodeContainers(docker, id))
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
  // The agents' namespace networks go with them.
  for (const id of nodeIds)
    for (const n of await docker.listNetworks({ filters: { label: [`${LABELS.node}=${id}`] } }))
      await docker
        .getNetwork(n.Id)
        .remove()
        .catch(() => undefined);
}

/** Runs a command in a container (docker exec); its exit code and output (stdout and stderr). */
export async function execIn(docker: Docker, containerId: string, cmd: string[]): Promise<{ code: number; out: string }> {
  const e = await docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  // The attach stream multiplexes stdout and stderr in frames (an 8-byte header whose last 4 bytes
  // are the payload's length, big-endian); a chunk may hold several frames or part of one.
  let buf = Buffer.alloc(0);
  const payloads: Buffer[] = [];
  for await (const chunk of (await e.start({})) as unknown as AsyncIterable<Buffer>) {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 8 && buf.length >= 8 + buf.readUInt32BE(4)) {
      const end = 8 + buf.readUInt32BE(4);
      payloads.push(buf.subarray(8, end));
      buf = buf.subarray(end);
    }
  }
  return { code: (await e.inspect()).ExitCode ?? -1, out: Buffer.concat(payloads).toString() };
}
