/**
 * The EC2 metadata tree (the part cloud-init's EC2 reader uses), mounted
 * at `/latest/` and at dated versions, which are aliases of it:
 * `meta-data/` (`instance-id`, `local-hostname`, `hostname`,
 * `public-keys/<i>/openssh-key`) and `user-data` (404 when none). Listings
 * are lines; a directory ends with `/`. The IMDSv2 token PUT is in app.ts.
 *
 * @example
 * ```ts
 * app.route("/latest", ec2Tree());
 * ```
 */
import { Hono } from "hono";
import type { MetadataEnv } from "./env.ts";

/** The versions served besides `latest` (cloud-init tries these). */
export const EC2_VERSIONS = [
  "2009-04-04",
  "2016-09-02",
  "2018-09-24",
  "2021-03-23",
] as const;

const lines = (items: string[]) => items.join("\n");

/** The tree of one version (see the module comment). */
export function ec2Tree(): Hono<MetadataEnv> {
  const t = new Hono<MetadataEnv>({ strict: false });
  t.get("/", (c) =>
    c.text(lines([
      "meta-data/",
      ...(c.get("meta").userData === undefined ? [] : ["user-data"]),
    ])));
  t.get("/meta-data", (c) =>
    c.text(lines([
      "hostname",
      "instance-id",
      "local-hostname",
      ...(c.get("meta").keys.length ? ["public-keys/"] : []),
    ])));
  t.get("/meta-data/instance-id", (c) => c.text(c.get("meta").instanceId));
  t.get("/meta-data/hostname", (c) => c.text(c.get("meta").hostname));
  t.get("/meta-data/local-hostname", (c) => c.text(c.get("meta").hostname));
  t.get("/meta-data/public-keys", (c) => {
    const names = c.get("meta").keyNames;
    if (!names.length) return c.notFound();
    return c.text(lines(names.map((n, i) => `${i}=${n}`)));
  });
  t.get("/meta-data/public-keys/:i", (c) => {
    if (keyAt(c.get("meta").keys, c.req.param("i")) === undefined) {
      return c.notFound();
    }
    return c.text("openssh-key");
  });
  t.get("/meta-data/public-keys/:i/openssh-key", (c) => {
    const k = keyAt(c.get("meta").keys, c.req.param("i"));
    return k === undefined ? c.notFound() : c.text(`${k}\n`);
  });
  t.get("/user-data", (c) => {
    const u = c.get("meta").userData;
    if (u === undefined) return c.notFound();
    return c.body(u, 200, { "content-type": "application/octet-stream" });
  });
  return t;
}

/** The key at index `i` (decimal digits only), or undefined. */
function keyAt(ks: string[], i: string): string | undefined {
  return /^(0|[1-9]\d{0,3})$/.test(i) ? ks[Number(i)] : undefined;
}
