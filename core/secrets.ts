/**
 * Host secrets of the identity module: one 32-byte host key (base64 in host
 * configuration) from which the keys are derived with HKDF-SHA256: one to
 * encrypt TOTP seeds at rest (AES-256-GCM), one to sign bearer tokens
 * (HMAC-SHA256) and one to name replay records (HMAC-SHA256). Also TOTP seed generation (160 random bits, base32 as
 * authenticator apps, oathtool and ungleich-otp expect) and base32 itself.
 *
 * @example
 * ```ts
 * const keys = await importHostKey(Deno.readTextFileSync(keyFile));
 * const seed = newSeed();
 * const sealed = await encryptSecret(keys.seal, seed, "otp-seed/ucloud/alice");
 * await decryptSecret(keys.seal, sealed, "otp-seed/ucloud/alice"); // seed
 * ```
 */
import { Buffer } from "node:buffer";

/** The keys derived from the host key. None is extractable. */
export interface HostKeys {
  /** AES-256-GCM: seeds at rest. */
  seal: CryptoKey;
  /** HMAC-SHA256: bearer tokens. */
  sign: CryptoKey;
  /** HMAC-SHA256: names replay records without storing the token itself. */
  tag: CryptoKey;
}

const HOST_KEY_BYTES = 32;
const IV_BYTES = 12;
const SEALED_PREFIX = "v1.";

/** Returns a new random host key, base64 (for bootstrap scripts). */
export function newHostKey(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(HOST_KEY_BYTES)))
    .toString("base64");
}

/**
 * Decodes a base64 host key (surrounding whitespace, e.g. a key file's final
 * newline, is ignored). Throws when it is not exactly 32 bytes of base64.
 */
export function parseHostKey(text: string): Uint8Array<ArrayBuffer> {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t) || t.length % 4 !== 0) {
    throw new TypeError("Cannot parse host key: not base64");
  }
  const raw = new Uint8Array(Buffer.from(t, "base64"));
  if (raw.length !== HOST_KEY_BYTES) {
    throw new TypeError(
      `Cannot parse host key: ${raw.length} bytes, need ${HOST_KEY_BYTES}`,
    );
  }
  return raw;
}

/** Parses a base64 host key and derives the seal, sign and tag keys from it. */
export async function importHostKey(text: string): Promise<HostKeys> {
  const master = await crypto.subtle.importKey(
    "raw",
    parseHostKey(text),
    "HKDF",
    false,
    ["deriveKey"],
  );
  const hkdf = (info: string) => ({
    name: "HKDF",
    hash: "SHA-256",
    salt: new Uint8Array(0),
    info: new TextEncoder().encode(info),
  });
  const seal = await crypto.subtle.deriveKey(
    hkdf("ucloud otp seed encryption v1"),
    master,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
  const hmac = (info: string) =>
    crypto.subtle.deriveKey(
      hkdf(info),
      master,
      { name: "HMAC", hash: "SHA-256", length: 256 },
      false,
      ["sign", "verify"],
    );
  return {
    seal,
    sign: await hmac("ucloud bearer token signing v1"),
    tag: await hmac("ucloud otp replay tag v1"),
  };
}

/**
 * Encrypts `plaintext` with AES-GCM under a fresh random IV. `context` (e.g.
 * the etcd key) is authenticated but not stored: a sealed value copied to
 * another context does not decrypt. Returns `v1.<base64 iv|ciphertext|tag>`.
 */
export async function encryptSecret(
  key: CryptoKey,
  plaintext: string,
  context: string,
): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(context) },
    key,
    new TextEncoder().encode(plaintext),
  );
  return SEALED_PREFIX +
    Buffer.concat([iv, new Uint8Array(ct)]).toString("base64");
}

/** Raised when a sealed secret was tampered with, or the key or context differ. */
export class SecretDecryptError extends Error {
  override name = "SecretDecryptError";
}

/** Decrypts what `encryptSecret` returned for the same key and context. */
export async function decryptSecret(
  key: CryptoKey,
  sealed: string,
  context: string,
): Promise<string> {
  if (!sealed.startsWith(SEALED_PREFIX)) {
    throw new SecretDecryptError(
      `Cannot decrypt secret for ${context}: unknown format`,
    );
  }
  const raw = Buffer.from(sealed.slice(SEALED_PREFIX.length), "base64");
  if (raw.length < IV_BYTES + 16) {
    throw new SecretDecryptError(
      `Cannot decrypt secret for ${context}: too short`,
    );
  }
  try {
    const pt = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: raw.subarray(0, IV_BYTES),
        additionalData: new TextEncoder().encode(context),
      },
      key,
      raw.subarray(IV_BYTES),
    );
    return new TextDecoder().decode(pt);
  } catch (err) {
    throw new SecretDecryptError(
      `Cannot decrypt secret for ${context}: wrong key or tampered data`,
      { cause: err },
    );
  }
}

const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 base32 without padding. */
export function base32Encode(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * Decodes RFC 4648 base32; case, spaces and `=` padding are ignored (as
 * authenticator apps do). Throws on any other character.
 */
export function base32Decode(text: string): Uint8Array<ArrayBuffer> {
  const s = text.toUpperCase().replace(/[\s=]/g, "");
  const out = new Uint8Array(Math.floor(s.length * 5 / 8));
  let bits = 0;
  let value = 0;
  let n = 0;
  for (const ch of s) {
    const v = B32.indexOf(ch);
    if (v < 0) throw new TypeError("Cannot decode base32: invalid character");
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out[n++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return out;
}

/** A new TOTP seed: 160 random bits (RFC 4226's recommendation) as 32 base32 characters. */
export function newSeed(): string {
  return base32Encode(crypto.getRandomValues(new Uint8Array(20)));
}
