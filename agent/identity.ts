import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { EnrollResponse } from '../shared/protocol.js';

/** What the agent keeps about itself after enrolling (`identity.json`, mode 0600). */
export interface Identity extends EnrollResponse {
  server: string;
  signingKey: JWK;
  encryptionKey: JWK;
}

/** Fresh key pairs: Ed25519 to sign requests, X25519 to receive encrypted secrets. */
export async function generateNodeKeys(): Promise<{ signing: JWK; signingPublic: JWK; encryption: JWK; encryptionPublic: JWK }> {
  const s = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const e = await generateKeyPair('ECDH-ES+A256KW', { crv: 'X25519', extractable: true });
  return { signing: await exportJWK(s.privateKey), signingPublic: await exportJWK(s.publicKey), encryption: await exportJWK(e.privateKey), encryptionPublic: await exportJWK(e.publicKey) };
}

/** Writes a file atomically with mode 0600 (write to a temporary name, then rename). */
export function writePrivate(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Loads the identity from the data dir, or null before enrollment. */
export function loadIdentity(dataDir: string): Identity | null {
  const p = join(dataDir, 'identity.json');
  if (!existsSync(p)) return null;
  return JSON.parse(readFileSync(p, 'utf8')) as Identity;
}

/** Persists the identity (private keys included) with mode 0600 in a 0700 data dir. */
export function saveIdentity(dataDir: string, id: Identity): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writePrivate(join(dataDir, 'identity.json'), JSON.stringify(id, null, 2));
}

/** Imports the node's signing key. */
export async function signingKeyOf(id: Identity): Promise<CryptoKey> {
  return (await importJWK(id.signingKey, 'EdDSA')) as CryptoKey;
}
