/**
 * Who may scrape a `/metrics` endpoint (the API's, api/metrics_access.ts,
 * and each worker's, workers/metrics_server.ts), from their
 * {@linkcode MetricsConfig}: a client whose address is in `allow`, or one
 * that sends `Authorization: Bearer <token>` with the token kept in
 * `bearerTokenFile` (read at each scrape, so it can be replaced without a
 * restart). A wrong token is refused (401) even from an allowed address;
 * an unknown address without a token is refused (403), and so is a
 * request without an address (no network peer).
 *
 * @example
 * ```ts
 * const check = scrapeAccess({ allow: ["127.0.0.1", "::1"] }, log);
 * const verdict = await check({ address: "::1", authorization: undefined });
 * if (!verdict.ok) console.log(verdict.status); // 401 or 403
 * ```
 */
import { timingSafeEqual } from "node:crypto";
import { addressIn, parseTrustedProxies } from "./client_address.ts";
import type { MetricsConfig } from "./config_metrics.ts";
import type { Logger } from "./log.ts";

/** The shortest bearer token `bearerTokenFile` may hold. */
export const MIN_METRICS_TOKEN = 16;

/** What a scrape may do: go on, or be refused with the status and why. */
export type ScrapeVerdict =
  | { ok: true }
  | { ok: false; status: 401; reason: "token" }
  | { ok: false; status: 403; reason: "address" };

/** A scrape as the access check sees it. */
export interface ScrapeRequest {
  /** The client's address (after trusted proxies); undefined: none. */
  address?: string;
  /** The `Authorization` header, if any. */
  authorization?: string;
}

async function readToken(file: string, log: Logger): Promise<string | null> {
  try {
    const token = (await Deno.readTextFile(file)).trim();
    if (token.length >= MIN_METRICS_TOKEN) return token;
    log.error("metrics token file holds too short a token", {
      file,
      min: MIN_METRICS_TOKEN,
    });
  } catch (err) {
    log.error("cannot read the metrics token file", {
      file,
      error: (err as Error).message,
    });
  }
  return null;
}

function sameToken(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The access check of `config` (see the module comment); refusals are
 * logged with the address and the reason.
 */
export function scrapeAccess(
  { allow = ["127.0.0.1", "::1"], bearerTokenFile }: Partial<MetricsConfig>,
  log: Logger,
): (req: ScrapeRequest) => Promise<ScrapeVerdict> {
  const allowed = parseTrustedProxies(allow);
  return async ({ address, authorization }) => {
    if (authorization !== undefined && bearerTokenFile !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      const token = await readToken(bearerTokenFile, log);
      if (m && token !== null && sameToken(m[1], token)) return { ok: true };
      log.warn("metrics scrape refused", { address, reason: "token" });
      return { ok: false, status: 401, reason: "token" };
    }
    if (address !== undefined && addressIn(address, allowed)) {
      return { ok: true };
    }
    log.warn("metrics scrape refused", { address, reason: "address" });
    return { ok: false, status: 403, reason: "address" };
  };
}
