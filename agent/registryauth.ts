// Registry credentials from `kubernetes.io/dockerconfigjson` Secrets, for pulls of private images
// (`imagePullSecrets`). Pure: the agent hands the result to the engine as the pull's auth config.

/** What the Docker Engine takes as a pull's X-Registry-Auth. */
export interface RegistryAuth {
  username?: string;
  password?: string;
  identitytoken?: string;
  serveraddress: string;
}

const HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const HUB_ADDRESS = 'https://index.docker.io/v1/';

/** The registry host of an image reference (Docker Hub when the first part is not a host), and the repository path. */
export function registryOf(image: string): { host: string; path: string } {
  const noDigest = image.split('@')[0] as string;
  const slash = noDigest.indexOf('/');
  const first = slash < 0 ? '' : noDigest.slice(0, slash);
  const isHost = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  const rest = isHost ? noDigest.slice(slash + 1) : noDigest;
  const path = rest.replace(/:[^/]*$/, ''); // without the tag
  const host = isHost ? first.toLowerCase() : 'docker.io';
  return { host: HUB_ALIASES.has(host) ? 'docker.io' : host, path };
}

/** A `.dockerconfigjson` key (`https://host/v1/`, `host`, `host/some/path`) as host and path prefix. */
function parseKey(key: string): { host: string; path: string } {
  const bare = key.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  const slash = bare.indexOf('/');
  const host = (slash < 0 ? bare : bare.slice(0, slash)).toLowerCase();
  let path = slash < 0 ? '' : bare.slice(slash + 1);
  if (HUB_ALIASES.has(host) && /^v[12]$/.test(path)) path = ''; // https://index.docker.io/v1/ means all of Hub
  return { host: HUB_ALIASES.has(host) ? 'docker.io' : host, path };
}

/**
 * The credentials in a Docker config JSON (`{"auths": {KEY: {username, password} | {auth} |
 * {identitytoken}}}`) for an image: the entry whose registry is the image's and whose path is the
 * longest prefix of the image's repository (like the kubelet). Undefined when none matches.
 */
export function credentialsFor(image: string, dockerConfigJson: string): RegistryAuth | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(dockerConfigJson);
  } catch {
    return undefined;
  }
  const auths = (parsed as { auths?: Record<string, { username?: string; password?: string; auth?: string; identitytoken?: string }> })?.auths;
  if (!auths || typeof auths !== 'object') return undefined;
  const want = registryOf(image);
  let best: { len: number; auth: RegistryAuth } | undefined;
  for (const [key, entry] of Object.entries(auths)) {
    if (!entry || typeof entry !== 'object') continue;
    const k = parseKey(key);
    if (k.host !== want.host) continue;
    if (k.path !== '' && want.path !== k.path && !want.path.startsWith(`${k.path}/`)) continue;
    let { username, password } = entry;
    if ((username === undefined || password === undefined) && typeof entry.auth === 'string') {
      const decoded = atob(entry.auth);
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        username = decoded.slice(0, colon);
        password = decoded.slice(colon + 1);
      }
    }
    const serveraddress = want.host === 'docker.io' ? HUB_ADDRESS : want.host;
    const auth: RegistryAuth = {
      serveraddress,
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(entry.identitytoken ? { identitytoken: entry.identitytoken } : {}),
    };
    if (auth.username === undefined && auth.identitytoken === undefined) continue;
    if (!best || k.path.length > best.len) best = { len: k.path.length, auth };
  }
  return best?.auth;
}
