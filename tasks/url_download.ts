/**
 * Downloads a URL to a file for `image.fetch`, safely: only http and https;
 * unless private URLs are allowed, the host name is resolved (A and AAAA),
 * every address is checked (core/url_policy.ts) and the connection goes to
 * a checked address (node:http's `lookup` returns it), so DNS rebinding
 * cannot switch it; redirects are followed here, each target checked the
 * same way, at most 5; the body streams to the file and stops past
 * `maxBytes`; the whole download has a deadline.
 *
 * @example
 * ```ts
 * const { bytes } = await download("https://example.com/d.qcow2", "/tmp/d", {
 *   maxBytes: 1 << 30, timeoutMs: 60_000, allowPrivate: false,
 * });
 * ```
 */
import type { IncomingMessage } from "node:http";
import http from "node:http";
import https from "node:https";
import {
  blockedAddress,
  literalHost,
  schemeProblem,
} from "../core/url_policy.ts";

/** Redirects followed at most. */
export const MAX_REDIRECTS = 5;

export interface DownloadOptions {
  maxBytes: number;
  timeoutMs: number;
  /** Admins allow loopback, link-local and private addresses. */
  allowPrivate: boolean;
  signal?: AbortSignal;
  /** Called now and then with the bytes so far and the total if known. */
  onProgress?: (bytes: number, total?: number) => void;
}

/** Why a download is refused or failed; the message is the image's reason. */
export class DownloadError extends Error {
  override name = "DownloadError";
}

/**
 * The address to connect to for `url`: the literal, or the first address
 * the host name resolves to, every one of them checked unless `allowPrivate`.
 */
export async function checkedAddress(
  url: URL,
  allowPrivate: boolean,
): Promise<string> {
  const scheme = schemeProblem(url);
  if (scheme) throw new DownloadError(scheme);
  const literal = literalHost(url);
  if (literal !== null) {
    const bad = allowPrivate ? null : blockedAddress(literal);
    if (bad) throw new DownloadError(`${literal} is a ${bad} address`);
    return literal;
  }
  const host = url.hostname;
  const found: string[] = [];
  const errors: string[] = [];
  for (const type of ["A", "AAAA"] as const) {
    try {
      found.push(...await Deno.resolveDns(host, type));
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (!found.length) {
    throw new DownloadError(
      `Cannot resolve ${host}: ${errors.join("; ") || "no address"}`,
    );
  }
  if (!allowPrivate) {
    for (const a of found) {
      const bad = blockedAddress(a);
      if (bad) {
        throw new DownloadError(`${host} resolves to ${a}, a ${bad} address`);
      }
    }
  }
  return found[0];
}

type LookupCallback = (
  err: Error | null,
  address: string | { address: string; family: number }[],
  family?: number,
) => void;

/** One GET to `url` connected to `address`; resolves with the response. */
function get(
  url: URL,
  address: string,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const family = address.includes(":") ? 6 : 4;
  const lookup = (
    _host: string,
    opts: { all?: boolean },
    cb: LookupCallback,
  ) => opts?.all ? cb(null, [{ address, family }]) : cb(null, address, family);
  const mod = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, {
      method: "GET",
      headers: { "user-agent": "ucloud-image-fetch", accept: "*/*" },
      lookup,
      signal,
    }, resolve);
    req.on("error", reject);
    req.end();
  });
}

/**
 * Downloads `url` into `dest` (created or truncated). Throws DownloadError
 * with the reason for a refused address, a bad status, too many redirects,
 * a body over `maxBytes`, or the deadline.
 */
export async function download(
  url: string,
  dest: string,
  opts: DownloadOptions,
): Promise<{ bytes: number; url: string }> {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal
    ? AbortSignal.any([opts.signal, timeout])
    : timeout;
  let current = new URL(url);
  try {
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const address = await checkedAddress(current, opts.allowPrivate);
      const res = await get(current, address, signal);
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.destroy();
        current = new URL(res.headers.location, current);
        continue;
      }
      if (status !== 200) {
        res.destroy();
        throw new DownloadError(`${current.href} answered HTTP ${status}`);
      }
      const bytes = await save(res, dest, opts);
      return { bytes, url: current.href };
    }
    throw new DownloadError(`More than ${MAX_REDIRECTS} redirects from ${url}`);
  } catch (err) {
    if (err instanceof DownloadError || opts.signal?.aborted) throw err;
    if (timeout.aborted) {
      throw new DownloadError(
        `Fetching ${url} took longer than ${opts.timeoutMs / 1000} s`,
      );
    }
    throw new DownloadError(
      `Cannot fetch ${current.href}: ${(err as Error).message}`,
    );
  }
}

/** Streams the response body into `dest`, refusing past `maxBytes`. */
async function save(
  res: IncomingMessage,
  dest: string,
  { maxBytes, onProgress }: DownloadOptions,
): Promise<number> {
  const length = Number(res.headers["content-length"] ?? NaN);
  const total = Number.isFinite(length) ? length : undefined;
  const tooLarge = () =>
    new DownloadError(
      `The image is larger than the limit of ${maxBytes} bytes`,
    );
  if (total !== undefined && total > maxBytes) {
    res.destroy();
    throw tooLarge();
  }
  const file = await Deno.open(dest, {
    create: true,
    write: true,
    truncate: true,
  });
  let bytes = 0;
  let told = 0;
  try {
    for await (const chunk of res as AsyncIterable<Uint8Array>) {
      if (bytes + chunk.length > maxBytes) {
        res.destroy();
        throw tooLarge();
      }
      for (let at = 0; at < chunk.length;) {
        at += await file.write(chunk.subarray(at));
      }
      bytes += chunk.length;
      if (onProgress && bytes - told >= 8 << 20) {
        told = bytes;
        onProgress(bytes, total);
      }
    }
  } finally {
    file.close();
  }
  if (total !== undefined && bytes !== total) {
    throw new DownloadError(`The body ended after ${bytes} of ${total} bytes`);
  }
  return bytes;
}
