// Encryption at rest for Secrets: AES-256-GCM through WebCrypto (the same code on Workers and Node)
// under a 32-byte master key. Every sealed value names its key (`kid`, from the key's SHA-256), so
// a wrong key is detected before anything is decrypted or overwritten, and rotation can tell old
// ciphertexts from new ones. The additional data binds a ciphertext to its object: a value copied
// to another row does not decrypt.

/** A sealed value as stored. */
export interface Sealed {
  kid: string;
  iv: string;
  ct: string;
}

function b64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function unb64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Parses a master key: base64 of exactly 32 bytes. The error never contains the key. */
export function parseMasterKey(text: string): Uint8Array {
  let raw: Uint8Array;
  try {
    raw = unb64(text.trim());
  } catch {
    throw new Error('FLOTILLA_SECRET_KEY is not base64 (expected 32 random bytes, base64: `openssl rand -base64 32`)');
  }
  if (raw.length !== 32) throw new Error(`FLOTILLA_SECRET_KEY must be 32 bytes (base64 of 32 random bytes); it decodes to ${raw.length}`);
  return raw;
}

/** A fresh master key, base64. */
export function newMasterKey(): string {
  return b64(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * Seals under the current master key; opens under it or under a previous one (during a rotation:
 * `FLOTILLA_SECRET_KEY_PREVIOUS`), chosen by the sealed value's key id.
 */
export class SecretBox {
  private constructor(
    readonly kid: string,
    private readonly keys: ReadonlyMap<string, CryptoKey>,
  ) {}

  static async fromKey(raw: Uint8Array, previous: readonly Uint8Array[] = []): Promise<SecretBox> {
    const keys = new Map<string, CryptoKey>();
    let current = '';
    for (const [i, k] of [raw, ...previous].entries()) {
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', k as BufferSource));
      const kid = [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
      if (i === 0) current = kid;
      keys.set(kid, await crypto.subtle.importKey('raw', k as BufferSource, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']));
    }
    return new SecretBox(current, keys);
  }

  /** Whether values sealed under `kid` can be opened. */
  knows(kid: string): boolean {
    return this.keys.has(kid);
  }

  async seal(plaintext: Uint8Array, aad: string): Promise<Sealed> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(aad) }, this.keys.get(this.kid) as CryptoKey, plaintext as BufferSource));
    return { kid: this.kid, iv: b64(iv), ct: b64(ct) };
  }

  async open(s: Sealed, aad: string): Promise<Uint8Array> {
    const key = this.keys.get(s.kid);
    if (!key) throw new Error(`sealed under key ${s.kid}, which is neither the configured key ${this.kid} nor a previous one`);
    const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unb64(s.iv) as BufferSource, additionalData: new TextEncoder().encode(aad) }, key, unb64(s.ct) as BufferSource);
    return new Uint8Array(pt);
  }
}

/** Parses `FLOTILLA_SECRET_KEY_PREVIOUS`: base64 keys, comma-separated. */
export function parsePreviousKeys(text: string | undefined): Uint8Array[] {
  return (text ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => parseMasterKey(t));
}

export { b64 as toBase64, unb64 as fromBase64 };
