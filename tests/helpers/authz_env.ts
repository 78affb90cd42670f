/**
 * The environment of the auth matrix: a real slapd (alice admin, bob,
 * carol) and etcd, the real app with the identity auth, and the calls the
 * matrix makes on it: `call()` records every answer for the leak check,
 * credential headers, `createSeed()` and `exchange()` for bearer tokens.
 * `withAuthzEnv()` runs a test body in it and tears it down after.
 */
import assert from "node:assert/strict";
import { createApp } from "../../api/app.ts";
import { createIdentity } from "../../api/identity.ts";
import { parseConfig } from "../../core/config.ts";
import { startEtcd } from "../../core/etcd_server.ts";
import { importHostKey, newHostKey } from "../../core/secrets.ts";
import { Store } from "../../core/store.ts";
import { noSanitize } from "./api.ts";
import type { Answer } from "./authz_expect.ts";
import { captureLog } from "./otp.ts";
import { readUntilSynced } from "./sse.ts";
import { type KeptAnswer, SecretSet } from "./secrets_log.ts";
import {
  BASE_DN,
  groupLdif,
  SERVICE_DN,
  SERVICE_PW,
  startSlapd,
  userLdif,
} from "./slapd.ts";

type Headers_ = Record<string, string>;

/** What a test body gets from `withAuthzEnv()`. */
export interface AuthzEnv {
  /** The temp dir (etcd data, state, CLI config). */
  dir: string;
  store: Store;
  /** A sub-step with sanitizers off. */
  step: (name: string, fn: () => Promise<void>) => Promise<boolean>;
  hostKeys: Awaited<ReturnType<typeof importHostKey>>;
  log: ReturnType<typeof captureLog>;
  identity: Awaited<ReturnType<typeof createIdentity>>;
  app: ReturnType<typeof createApp>;
  /** Every answer, with the secrets it may legitimately hold. */
  answers: KeptAnswer[];
  secrets: SecretSet;
  /** The TOTP seeds made by `createSeed()`, by name. */
  seeds: Record<string, string>;
  /** Calls the app and records the answer. */
  call: (
    method: string,
    path: string,
    init?: { headers?: Headers_; json?: unknown },
  ) => Promise<Answer>;
  totpHeaders: (name: string, token: string) => Headers_;
  bearerHeaders: (token: string) => Headers_;
  cookieOf: (token: string) => Headers_;
  /**
   * Creates (or replaces) the seed of `name`, expecting 201; a rotation
   * sends `more`: the current `token`, or an admin's `headers`.
   */
  createSeed: (
    name: string,
    password: string,
    replace?: boolean,
    more?: { token?: string; headers?: Headers_ },
  ) => Promise<string>;
  /** Exchanges a TOTP token of `name` for a bearer token. */
  exchange: (name: string, token: string) => Promise<string>;
}

/** Runs `body` against a fresh slapd, etcd and app and cleans up after. */
export async function withAuthzEnv(
  t: Deno.TestContext,
  body: (env: AuthzEnv) => Promise<void>,
): Promise<void> {
  const slapd = await startSlapd();
  const dir = await Deno.makeTempDir({ prefix: "ucloud-authz-test-" });
  const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
  const store = Store.connect({
    endpoints: [etcd.endpoint],
    prefix: "/authz",
  });
  const step = (name: string, fn: () => Promise<void>) =>
    t.step({ name, ...noSanitize, fn });
  try {
    await slapd.add(
      [
        userLdif("alice", "alice-pw"),
        userLdif("bob", "bob-pw"),
        // Used only by the CLI step: none of its TOTP steps is used yet.
        userLdif("carol", "carol-pw"),
        groupLdif("ucloud-admins", ["alice"]),
      ].join("\n"),
    );
    const config = parseConfig({
      stateDir: dir,
      etcd: { endpoints: [etcd.endpoint], prefix: "/authz" },
      images: { uploadDir: `${dir}/www` },
      identity: {
        ldap: {
          url: slapd.url,
          baseDn: BASE_DN,
          bindDn: SERVICE_DN,
          bindPassword: SERVICE_PW,
          timeoutMs: 2000,
        },
        otp: { serviceRealms: { svc: { admin: false } } },
        // The matrix fails on purpose many times per name.
        rateLimit: {
          perName: { limit: 10_000, windowSeconds: 300 },
          perAddress: { limit: 10_000, windowSeconds: 300 },
          seedPerUser: { limit: 10_000, windowSeconds: 300 },
        },
      },
    }, () => undefined);
    assert.equal(config.identity.enabled, true);
    const hostKeys = await importHostKey(newHostKey());
    const log = captureLog();
    const identity = await createIdentity({
      store,
      config,
      keys: hostKeys,
      log,
    });
    const app = createApp({ store, config, identity, log });

    /** Every answer, with the secrets it may legitimately hold. */
    const answers: KeptAnswer[] = [];
    const secrets = new SecretSet();
    const call = async (
      method: string,
      path: string,
      { headers = {}, json }: {
        headers?: Record<string, string>;
        json?: unknown;
      } = {},
    ): Promise<Answer> => {
      const h: Record<string, string> = { ...headers };
      if (json !== undefined) h["content-type"] = "application/json";
      const res = await app.request(path, {
        method,
        headers: h,
        body: json === undefined ? undefined : JSON.stringify(json),
      });
      // An event stream never ends by itself: read up to its snapshot.
      const text =
        /^text\/event-stream/.test(res.headers.get("content-type") ?? "")
          ? await readUntilSynced(res)
          : await res.text();
      let body: unknown = null;
      try {
        body = JSON.parse(text);
      } catch { /* not JSON */ }
      const a = { status: res.status, text, body, headers: res.headers };
      answers.push({ text, allowed: [] });
      return a;
    };
    const totpHeaders = (name: string, token: string) => ({
      "X-Otp-Name": name,
      "X-Otp-Realm": "ucloud",
      "X-Otp-Token": token,
    });
    const bearerHeaders = (token: string) => ({
      authorization: `Bearer ${token}`,
    });

    const seeds: Record<string, string> = {};
    const createSeed = async (
      name: string,
      password: string,
      replace = false,
      { token, headers }: { token?: string; headers?: Headers_ } = {},
    ) => {
      if (token) secrets.add(token);
      const r = await call("POST", "/v1/auth/seed", {
        headers,
        json: { name, password, replace, ...(token ? { token } : {}) },
      });
      assert.equal(r.status, 201, r.text);
      const b = r.body as { seed: string; otpauthUri: string };
      assert.match(b.seed, /^[A-Z2-7]{32}$/);
      assert.ok(b.otpauthUri.startsWith("otpauth://totp/ucloud%3A"));
      answers[answers.length - 1].allowed.push(b.seed);
      secrets.add(b.seed);
      seeds[name] = b.seed;
      return b.seed;
    };
    const exchange = async (name: string, token: string) => {
      secrets.add(token);
      const r = await call("POST", "/v1/auth/token", {
        headers: totpHeaders(name, token),
      });
      assert.equal(r.status, 200, r.text);
      const b = r.body as { token: string; expiresIn: number };
      assert.equal(b.expiresIn, 900);
      answers[answers.length - 1].allowed.push(b.token);
      secrets.add(b.token);
      return b.token;
    };
    const cookieOf = (token: string) => ({
      cookie: `ucloud_session=${token}`,
    });
    await body({
      dir,
      store,
      step,
      hostKeys,
      log,
      identity,
      app,
      answers,
      secrets,
      seeds,
      call,
      totpHeaders,
      bearerHeaders,
      cookieOf,
      createSeed,
      exchange,
    });
  } finally {
    store.close();
    await slapd.close();
    await etcd.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
