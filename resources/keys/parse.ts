/**
 * Validating an OpenSSH public key line (`type base64 [comment]`, one line
 * of authorized_keys without options): the type is one sshd accepts for
 * users, the base64 blob decodes and parses in SSH wire format (RFC 4251
 * strings and mpints) as a key of that type, every byte consumed; RSA keys
 * have at least 2048 bits, ECDSA points lie on the named curve. The
 * fingerprint is what `ssh-keygen -l -E sha256` prints.
 *
 * @example
 * ```ts
 * const key = parsePublicKey("ssh-ed25519 AAAAC3Nza... alice@laptop");
 * key.fingerprint; // "SHA256:..."
 * ```
 */
import { InvalidError } from "../../core/errors.ts";
import { isCurve, onCurve, pointBytes } from "./ec_point.ts";

/** The longest key line accepted, in bytes (UTF-8). */
export const MAX_KEY_LINE_BYTES = 16 * 1024;
/** The smallest RSA modulus accepted, in bits. */
export const MIN_RSA_BITS = 2048;
/** The largest RSA modulus accepted, in bits (OpenSSH's own limit). */
export const MAX_RSA_BITS = 16384;

/** The key types accepted. */
export const KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;
export type KeyType = typeof KEY_TYPES[number];

/** A validated public key. */
export interface PublicKey {
  type: KeyType;
  /** The line as authorized_keys takes it: `type base64[ comment]`. */
  line: string;
  /** `SHA256:` and the unpadded base64 of the blob's SHA-256. */
  fingerprint: string;
  /** The modulus size of an RSA key, the curve size of ECDSA, 256 for Ed25519. */
  bits: number;
  comment?: string;
}

const FIELD = "publicKey";

function invalid(message: string): InvalidError {
  return new InvalidError(FIELD, `publicKey: ${message}`);
}

/** A short, printable excerpt of user input for messages (never a secret). */
function excerpt(text: string): string {
  const safe = text.replace(/[^\x21-\x7e]/g, "?");
  return safe.length > 40 ? `${safe.slice(0, 40)}...` : safe;
}

/**
 * Parses and checks an OpenSSH public key line; a trailing newline is
 * allowed. Throws InvalidError (field `publicKey`) saying what is wrong.
 */
export async function parsePublicKey(text: string): Promise<PublicKey> {
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > MAX_KEY_LINE_BYTES) {
    throw invalid(
      `the key line has ${bytes} bytes, more than the ${MAX_KEY_LINE_BYTES} allowed`,
    );
  }
  const trimmed = text.replace(/\r?\n$/, "").trim();
  if (/^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(trimmed)) {
    throw invalid(
      "this is a private key; give the public key (the .pub file)",
    );
  }
  if (/[\r\n]/.test(trimmed)) {
    throw invalid("give one key on one line, not several lines");
  }
  if (trimmed === "") throw invalid("the key line is empty");
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x08\x0b-\x1f\x7f]/.test(trimmed)) {
    throw invalid("the key line holds control characters");
  }
  const [, type, b64, rest] = trimmed.match(
    /^([^ \t]+)(?:[ \t]+([^ \t]+))?(?:[ \t]+(.*))?$/,
  )!;
  if (!isKeyType(type)) throw invalid(unknownType(type, b64));
  if (b64 === undefined) throw invalid(`no base64 key data after ${type}`);
  const blob = decodeBase64(b64);
  const bits = checkBlob(type, blob);
  const comment = rest || undefined;
  return {
    type,
    line: [type, b64, ...(comment ? [comment] : [])].join(" "),
    fingerprint: await fingerprint(blob),
    bits,
    ...(comment ? { comment } : {}),
  };
}

function isKeyType(word: string): word is KeyType {
  return (KEY_TYPES as readonly string[]).includes(word);
}

/**
 * Why `word` is not a key type: authorized_keys options (`next`, the word
 * after it, is then often the type), a certificate, or unknown.
 */
function unknownType(word: string, next: string | undefined): string {
  const allowed = `allowed: ${KEY_TYPES.join(", ")}`;
  if (
    /[=,"]/.test(word) || /^(no-|restrict|cert-authority)/.test(word) ||
    (next !== undefined && isKeyType(next))
  ) {
    return `authorized_keys options (${
      excerpt(word)
    }) are not allowed: give only "type base64 [comment]"`;
  }
  if (word.includes("-cert-v01@openssh.com")) {
    return `certificates (${excerpt(word)}) are not accepted; ${allowed}`;
  }
  return `unknown key type "${excerpt(word)}"; ${allowed}`;
}

/** Strict base64 (padded, canonical) to bytes. */
function decodeBase64(b64: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw invalid(
      "the key data is not valid base64 (letters, digits, '+', '/', padded with '=')",
    );
  }
  const bin = atob(b64);
  const blob = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  if (btoa(bin) !== b64) {
    throw invalid("the key data is not canonical base64");
  }
  return blob;
}

/** `SHA256:` + unpadded base64 of SHA-256(blob), as `ssh-keygen -l -E sha256`. */
export async function fingerprint(blob: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", blob as Uint8Array<ArrayBuffer>),
  );
  return `SHA256:${btoa(String.fromCharCode(...digest)).replace(/=+$/, "")}`;
}

/** Reads SSH wire-format fields (RFC 4251) from a blob. */
class WireReader {
  #at = 0;
  constructor(readonly blob: Uint8Array) {}

  /** A `string`: uint32 length and that many bytes. */
  bytes(what: string): Uint8Array {
    if (this.#at + 4 > this.blob.length) {
      throw invalid(`the key data ends before its ${what}`);
    }
    const view = new DataView(this.blob.buffer, this.blob.byteOffset);
    const n = view.getUint32(this.#at);
    this.#at += 4;
    if (n > this.blob.length - this.#at) {
      throw invalid(`the key data ends inside its ${what}`);
    }
    const out = this.blob.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  /** A `string` holding ASCII text. */
  text(what: string): string {
    return String.fromCharCode(...this.bytes(what));
  }

  /** A positive `mpint`, as its magnitude without leading zeros. */
  mpint(what: string): Uint8Array {
    const b = this.bytes(what);
    if (b.length === 0 || (b[0] & 0x80) !== 0 || b.every((x) => x === 0)) {
      throw invalid(`the ${what} is not a positive number`);
    }
    if (b[0] === 0 && (b[1] & 0x80) === 0) {
      throw invalid(`the ${what} has a needless leading zero`);
    }
    return b[0] === 0 ? b.subarray(1) : b;
  }

  /** Throws unless every byte was read. */
  end(): void {
    if (this.#at !== this.blob.length) {
      throw invalid(
        `the key data has ${this.blob.length - this.#at} bytes after the key`,
      );
    }
  }
}

/** Checks the blob is a key of `type`; returns its size in bits. */
function checkBlob(type: KeyType, blob: Uint8Array): number {
  const r = new WireReader(blob);
  const inner = r.text("key type");
  if (inner !== type) {
    throw invalid(
      `the line says ${type} but the key data holds "${excerpt(inner)}"`,
    );
  }
  let bits: number;
  if (type === "ssh-ed25519" || type === "sk-ssh-ed25519@openssh.com") {
    const key = r.bytes("Ed25519 key");
    if (key.length !== 32) {
      throw invalid(`the Ed25519 key has ${key.length} bytes, not 32`);
    }
    bits = 256;
  } else if (type === "ssh-rsa") {
    r.mpint("RSA exponent");
    const n = r.mpint("RSA modulus");
    bits = n.length * 8 - Math.clz32(n[0]) + 24;
    if (bits < MIN_RSA_BITS) {
      throw invalid(
        `the RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are needed`,
      );
    }
    if (bits > MAX_RSA_BITS) {
      throw invalid(
        `the RSA key has ${bits} bits; at most ${MAX_RSA_BITS} are accepted`,
      );
    }
  } else {
    const curve = type.match(/nistp\d+/)![0];
    const named = r.text("curve name");
    if (named !== curve || !isCurve(curve)) {
      throw invalid(
        `the key type names curve ${curve} but the key data names "${
          excerpt(named)
        }"`,
      );
    }
    const point = r.bytes("ECDSA point");
    if (point.length !== pointBytes(curve) || point[0] !== 4) {
      throw invalid(`the ECDSA point is not an uncompressed ${curve} point`);
    }
    if (!onCurve(curve, point)) {
      throw invalid(`the ECDSA point is not on curve ${curve}`);
    }
    bits = Number(curve.slice(5));
  }
  if (type.startsWith("sk-")) r.text("security key application");
  r.end();
  return bits;
}
