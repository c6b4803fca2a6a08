import { describe, expect, it } from 'vitest';
import { credentialsFor, registryOf } from '../../agent/registryauth.js';

const cfg = (auths: Record<string, unknown>) => JSON.stringify({ auths });

describe('registry credentials from a dockerconfigjson Secret', () => {
  it('finds the registry of an image reference', () => {
    expect(registryOf('busybox')).toEqual({ host: 'docker.io', path: 'busybox' });
    expect(registryOf('library/busybox:1.36')).toEqual({ host: 'docker.io', path: 'library/busybox' });
    expect(registryOf('127.0.0.1:5000/team/app:2')).toEqual({ host: '127.0.0.1:5000', path: 'team/app' });
    expect(registryOf('Registry.Example.com/app@sha256:abc')).toEqual({ host: 'registry.example.com', path: 'app' });
    expect(registryOf('localhost/app')).toEqual({ host: 'localhost', path: 'app' });
    expect(registryOf('index.docker.io/library/nginx')).toEqual({ host: 'docker.io', path: 'library/nginx' });
  });

  it('matches by host whatever the key form (scheme, /v1/, Docker Hub aliases); decodes "auth"', () => {
    expect(credentialsFor('127.0.0.1:5000/app:1', cfg({ 'http://127.0.0.1:5000/': { username: 'u', password: 'p' } }))).toEqual({ username: 'u', password: 'p', serveraddress: '127.0.0.1:5000' });
    expect(credentialsFor('nginx', cfg({ 'https://index.docker.io/v1/': { auth: btoa('hub:se:cret') } }))).toEqual({
      username: 'hub',
      password: 'se:cret',
      serveraddress: 'https://index.docker.io/v1/',
    });
    expect(credentialsFor('docker.io/team/app', cfg({ 'docker.io': { username: 'a', password: 'b' } }))?.username).toBe('a');
    expect(credentialsFor('ghcr.io/x/y', cfg({ 'registry.example.com': { username: 'a', password: 'b' } }))).toBeUndefined();
    expect(credentialsFor('ghcr.io/x/y', cfg({ 'ghcr.io': { identitytoken: 'tok' } }))).toEqual({ identitytoken: 'tok', serveraddress: 'ghcr.io' });
  });

  it('prefers the longest matching path; a path that does not match is skipped', () => {
    const c = cfg({ 'r.example.com': { username: 'all', password: '1' }, 'r.example.com/team': { username: 'team', password: '2' }, 'r.example.com/other': { username: 'other', password: '3' } });
    expect(credentialsFor('r.example.com/team/app:1', c)?.username).toBe('team');
    expect(credentialsFor('r.example.com/teamx/app', c)?.username).toBe('all');
    expect(credentialsFor('r.example.com/x', cfg({ 'r.example.com/team': { username: 'team', password: '2' } }))).toBeUndefined();
  });

  it('is undefined for malformed config or entries without credentials', () => {
    expect(credentialsFor('a.io/x', 'not json')).toBeUndefined();
    expect(credentialsFor('a.io/x', '{}')).toBeUndefined();
    expect(credentialsFor('a.io/x', cfg({ 'a.io': { email: 'x@y' } }))).toBeUndefined();
    expect(credentialsFor('a.io/x', cfg({ 'a.io': null }))).toBeUndefined();
  });
});
