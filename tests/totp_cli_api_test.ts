/**
 * The CLI and the API agree on TOTP: at each RFC 6238 test time (SHA-1, the
 * RFC seed), the token the CLI sends to `POST /v1/auth/token` is the RFC's
 * value (its last 6 digits, as the API uses 6), and the API's verifier
 * (`totpAuth` with `LocalVerifier`, a real slapd for the user) accepts it.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { totpAuth } from "../api/auth.ts";
import { authRoutes } from "../api/auth_routes.ts";
import { MemoryRevocationList } from "../api/revocations.ts";
import { BearerTokens } from "../api/tokens.ts";
import type { AppEnv } from "../api/env.ts";
import { onError } from "../api/errors.ts";
import { type Files, main } from "../cli/main.ts";
import { Directory, IdentityConfig } from "../core/ldap.ts";
import { AuthLimiter } from "../core/rate_limit.ts";
import { importHostKey, newHostKey } from "../core/secrets.ts";
import {
  LocalVerifier,
  MemoryReplayStore,
  MemorySeedStore,
} from "../core/totp.ts";
import { hotp, totpCounter } from "../core/totp_token.ts";
import {
  BASE_DN,
  SERVICE_DN,
  SERVICE_PW,
  startSlapd,
  userLdif,
} from "./helpers/slapd.ts";

// RFC 6238 appendix B (SHA-1): the ASCII secret "12345678901234567890".
const RFC_SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const VECTORS: [number, string][] = [
  [59, "94287082"],
  [1111111109, "07081804"],
  [1234567890, "89005924"],
  [2000000000, "69279037"],
  [20000000000, "65353130"],
];
const API = "http://api.test";

/** The CLI's files in memory: a stored login for `API`. */
function memoryFiles(): Files {
  const files = new Map<string, string>([[
    "/cfg/ucloud/config.json",
    JSON.stringify({
      api: API,
      name: "alice",
      realm: "ucloud",
      seed: RFC_SEED,
    }),
  ]]);
  return {
    read: (path) => Promise.resolve(files.get(path) ?? null),
    writePrivate: (path, text) => {
      files.set(path, text);
      return Promise.resolve();
    },
    remove: (path) => {
      files.delete(path);
      return Promise.resolve();
    },
  };
}

Deno.test({
  name:
    "the CLI's TOTP and the API's LocalVerifier agree on the RFC 6238 SHA-1 vectors",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const slapd = await startSlapd();
    try {
      await slapd.add(userLdif("alice", "alice-pw"));
      const users = new Directory(
        IdentityConfig.parse({
          ldap: {
            url: slapd.url,
            baseDn: BASE_DN,
            bindDn: SERVICE_DN,
            bindPassword: SERVICE_PW,
            timeoutMs: 2000,
          },
        }).ldap,
      );
      const clock = { t: 0 };
      const seeds = new MemorySeedStore();
      seeds.set("ucloud", "alice", RFC_SEED);
      const bearer = new BearerTokens({
        key: (await importHostKey(newHostKey())).sign,
        revocations: new MemoryRevocationList(),
      });
      const app = new Hono<AppEnv>();
      app.onError(onError);
      app.use(
        "/v1/*",
        totpAuth({
          verifier: new LocalVerifier({
            seeds,
            replay: new MemoryReplayStore({ now: () => clock.t }),
            now: () => clock.t,
          }),
          users,
          bearer,
          limiter: new AuthLimiter({ now: () => clock.t }),
        }),
      );
      app.route("/v1/auth", authRoutes({ bearer }));
      app.get("/v1/auth/whoami", (c) => c.json(c.get("principal")));
      const sent: string[] = [];
      const fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
        const token = new Headers(init?.headers).get("x-otp-token");
        if (token) sent.push(token);
        return app.request(input, init);
      }) as typeof globalThis.fetch;

      for (const [t, want] of VECTORS) {
        clock.t = t * 1000;
        assert.equal(hotp(RFC_SEED, totpCounter(clock.t), 8), want);
        let out = "";
        let err = "";
        const code = await main(["whoami"], {
          fetch,
          files: memoryFiles(),
          env: { UCLOUD_API: API, XDG_CONFIG_HOME: "/cfg" },
          stdout: { write: (s: string) => void (out += s) },
          stderr: { write: (s: string) => void (err += s) },
          now: () => clock.t,
        });
        assert.equal(code, 0, `at ${t} s: ${err}`);
        assert.equal(out, "alice\n");
        assert.equal(sent.at(-1), want.slice(2), `token sent at ${t} s`);
      }
      assert.equal(sent.length, VECTORS.length);
    } finally {
      await slapd.close();
    }
  },
});
