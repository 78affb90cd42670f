/**
 * IMDSv2 session tokens: `PUT /latest/api/token` with
 * `X-aws-ec2-metadata-token-ttl-seconds: 1..21600` gives a token bound to
 * the calling VM, valid for that many seconds. Tokens are stateless
 * (`<vm>.<expiry>.<HMAC-SHA256>` in base64url, under a key made per
 * process), so nothing grows with the number of tokens handed out; a
 * restarted worker's tokens are new ones (cloud-init asks again on 401).
 * Expiry uses the monotonic clock.
 *
 * @example
 * ```ts
 * const tokens = await Tokens.create();
 * const t = await tokens.issue("vm-1", 60);
 * await tokens.valid(t, "vm-1"); // true
 * await tokens.valid(t, "vm-2"); // false
 * ```
 */

/** The longest TTL a token may ask for (EC2's limit). */
export const MAX_TTL_SECONDS = 21600;

const enc = new TextEncoder();

function b64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-")
    .replace(/\//g, "_").replace(/=+$/, "");
}

/** Issues and checks tokens (see the module comment). */
export class Tokens {
  private constructor(
    readonly key: CryptoKey,
    readonly now: () => number,
  ) {}

  /** A token issuer with a fresh random key; `now` in ms (monotonic). */
  static async create(
    { now = () => performance.now() }: { now?: () => number } = {},
  ): Promise<Tokens> {
    const key = await crypto.subtle.generateKey(
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    return new Tokens(key, now);
  }

  /** A token for `vm` valid `ttlSeconds` (1..{@linkcode MAX_TTL_SECONDS}). */
  async issue(vm: string, ttlSeconds: number): Promise<string> {
    if (
      !Number.isInteger(ttlSeconds) || ttlSeconds < 1 ||
      ttlSeconds > MAX_TTL_SECONDS
    ) {
      throw new RangeError(`Token TTL out of range: ${ttlSeconds}`);
    }
    const body = `${vm}.${Math.ceil(this.now() + ttlSeconds * 1000)}`;
    const mac = await crypto.subtle.sign("HMAC", this.key, enc.encode(body));
    return `${b64url(enc.encode(body))}.${b64url(new Uint8Array(mac))}`;
  }

  /** Whether `token` was issued by this process for `vm` and is unexpired. */
  async valid(token: string, vm: string): Promise<boolean> {
    const [body64, mac64, extra] = token.split(".");
    if (!body64 || !mac64 || extra !== undefined) return false;
    let body: Uint8Array<ArrayBuffer>, mac: Uint8Array<ArrayBuffer>;
    try {
      body = fromB64url(body64);
      mac = fromB64url(mac64);
    } catch {
      return false;
    }
    const ok = await crypto.subtle.verify("HMAC", this.key, mac, body);
    if (!ok) return false;
    const text = new TextDecoder().decode(body);
    const dot = text.lastIndexOf(".");
    return text.slice(0, dot) === vm &&
      Number(text.slice(dot + 1)) > this.now();
  }
}

function fromB64url(s: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]+$/.test(s)) throw new TypeError("not base64url");
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
