/**
 * The metadata service's HTTP app: refusals first, then the trees. Each
 * request carries, as Hono bindings, the listener it arrived on and the
 * connection's source address (workers/metadata/listeners.ts); from them
 * alone the caller is identified (identity.ts). In order:
 *
 * 1. a forwarding header (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`,
 *    `Via`, `X-Forwarded-Host`): 403; a proxy (an SSRF inside the VM, or
 *    anything in between) is no VM;
 * 2. a source address that names no port of this host (the host itself,
 *    another host, an unknown or ambiguous address): 403;
 * 3. `PUT /latest/api/token` (IMDSv2): a token for the caller's VM, with
 *    `X-aws-ec2-metadata-token-ttl-seconds` 1..21600 (else 400);
 * 4. a request carrying `X-aws-ec2-metadata-token` must carry a valid one
 *    of the caller's VM (401); with `requireToken`, every tree needs one;
 * 5. only GET and HEAD (405); the VM's metadata from the cache (404 when
 *    the VM has no document, 503 when it is not read within `dataTimeoutMs`),
 *    then `/latest/` and the dated EC2 versions,
 *    `/openstack/`, `/nocloud/`.
 *
 * Refusals are logged once per source address and reason per minute; no
 * request body or token is logged.
 *
 * @example
 * ```ts
 * const app = createMetadataApp({ identify: (l, r) => table.identify(l, r), data: (vm) => cache.get(vm), tokens, log });
 * await app.request("/latest/meta-data/instance-id", {}, { listener: { kind: "ipv6" }, remote: "fd00::1" });
 * ```
 */
import { Hono } from "hono";
import type { Logger } from "../../core/log.ts";
import type { VmMetadata } from "../../resources/vms/metadata.ts";
import { EC2_VERSIONS, ec2Tree } from "./ec2.ts";
import type { MetadataEnv } from "./env.ts";
import type { Identified, ListenerKind, Refused } from "./identity.ts";
import { nocloudTree } from "./nocloud.ts";
import { openstackTree } from "./openstack.ts";
import { MAX_TTL_SECONDS, type Tokens } from "./token.ts";

/** Headers a proxy adds; a request with one is refused. */
export const FORWARDING_HEADERS = [
  "x-forwarded-for",
  "forwarded",
  "x-real-ip",
  "via",
  "x-forwarded-host",
] as const;

export const TOKEN_HEADER = "x-aws-ec2-metadata-token";
export const TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds";

/** Options of {@linkcode createMetadataApp}. */
export interface MetadataAppOptions {
  identify: (listener: ListenerKind, remote: string) => Identified | Refused;
  data: (vm: string) => Promise<VmMetadata | null>;
  tokens: Tokens;
  /** Every request needs an IMDSv2 token (config `metadata.requireToken`). */
  requireToken?: boolean;
  log: Logger;
  /** Monotonic ms, for the refusal log's pace. */
  now?: () => number;
  /**
   * How long a request waits for the VM's metadata (its first read, e.g.
   * while etcd is away) before it gets 503.
   */
  dataTimeoutMs?: number;
}

/** Default of {@linkcode MetadataAppOptions.dataTimeoutMs}. */
const DATA_TIMEOUT_MS = 5_000;

/** A refusal is logged once per source address and reason per this. */
const REFUSAL_LOG_MS = 60_000;
/** Remembered refusals; past this many the memory starts afresh. */
const REFUSAL_LOG_MAX = 4096;

/** The app (see the module comment). */
export function createMetadataApp(
  {
    identify,
    data,
    tokens,
    requireToken = false,
    log,
    now = () => performance.now(),
    dataTimeoutMs = DATA_TIMEOUT_MS,
  }: MetadataAppOptions,
): Hono<MetadataEnv> {
  const app = new Hono<MetadataEnv>({ strict: false });
  // A VM repeating a refused request must not flood the log.
  const logged = new Map<string, number>();
  const refuse = (
    status: 400 | 401 | 403 | 405,
    why: string,
    f: Record<string, unknown>,
  ) => {
    const key = `${f.remote} ${status} ${why}`;
    const t = now(), last = logged.get(key);
    if (last === undefined || t - last > REFUSAL_LOG_MS) {
      if (logged.size >= REFUSAL_LOG_MAX) logged.clear();
      logged.set(key, t);
      log.info("metadata request refused", { status, why, ...f });
    }
    return new Response(`${why}\n`, {
      status,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  };
  app.use(async (c, next) => {
    const f = {
      remote: c.env.remote,
      listener: c.env.listener,
      method: c.req.method,
      path: c.req.path,
    };
    const fwd = FORWARDING_HEADERS.find((h) => c.req.header(h) !== undefined);
    if (fwd) return refuse(403, `forwarded request (${fwd})`, f);
    const who = identify(c.env.listener, c.env.remote);
    if ("refused" in who) return refuse(403, `caller: ${who.refused}`, f);
    c.set("who", who);
    const vf = { ...f, vm: who.vm };
    if (c.req.method === "PUT" && c.req.path === "/latest/api/token") {
      const ttl = c.req.header(TTL_HEADER) ?? "";
      const n = /^\d{1,5}$/.test(ttl) ? Number(ttl) : NaN;
      if (!(n >= 1 && n <= MAX_TTL_SECONDS)) {
        return refuse(400, `${TTL_HEADER} must be 1..${MAX_TTL_SECONDS}`, vf);
      }
      return c.text(await tokens.issue(who.vm, n), 200, { [TTL_HEADER]: ttl });
    }
    const token = c.req.header(TOKEN_HEADER);
    if (token !== undefined && !(await tokens.valid(token, who.vm))) {
      return refuse(401, "invalid or expired token", vf);
    }
    if (token === undefined && requireToken) {
      return refuse(401, "a token is required (PUT /latest/api/token)", vf);
    }
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      return refuse(405, "method not allowed", vf);
    }
    const meta = await withTimeout(data(who.vm), dataTimeoutMs);
    if (meta === TIMED_OUT) {
      return c.text("metadata not available yet, try again\n", 503, {
        "retry-after": "1",
      });
    }
    if (!meta) return c.text("no metadata for this VM\n", 404);
    c.set("meta", meta);
    await next();
  });
  app.get("/", (c) => c.text(["latest", ...EC2_VERSIONS].join("\n")));
  for (const v of ["latest", ...EC2_VERSIONS]) app.route(`/${v}`, ec2Tree());
  app.route("/openstack", openstackTree());
  app.route("/nocloud", nocloudTree());
  app.onError((err, c) => {
    log.error("metadata request failed", {
      path: c.req.path,
      error: String(err),
    });
    return c.text("internal error\n", 500);
  });
  return app;
}

const TIMED_OUT = Symbol("timed out");

/** `p`'s value, or TIMED_OUT when it takes longer than `ms`. */
async function withTimeout<T>(
  p: Promise<T>,
  ms: number,
): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
