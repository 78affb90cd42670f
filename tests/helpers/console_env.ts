/**
 * The console tests' environment: a real etcd, the API app with real
 * bearer and session tokens (etcd revocations) for alice and bob served
 * on a loopback port (websockets need a server), and helpers to make a VM
 * look running on a host and to ask for tickets.
 */
import { createApp } from "../../api/app.ts";
import { totpAuth } from "../../api/auth.ts";
import { authRoutes } from "../../api/auth_routes.ts";
import { EtcdRevocationList } from "../../api/revocations.ts";
import { BearerTokens, SESSION_COOKIE } from "../../api/tokens.ts";
import { type Config, parseConfig } from "../../core/config.ts";
import { ConsoleConfig } from "../../core/config_console.ts";
import { type EtcdServer, startEtcd } from "../../core/etcd_server.ts";
import { keys } from "../../core/keys.ts";
import { logger } from "../../core/log.ts";
import { AuthLimiter } from "../../core/rate_limit.ts";
import { Vm } from "../../core/schemas.ts";
import { importHostKey, newHostKey } from "../../core/secrets.ts";
import { Store } from "../../core/store.ts";
import { LocalVerifier } from "../../core/totp.ts";
import { MemoryReplayStore } from "../../core/totp_replay.ts";
import { MemorySeedStore } from "../../core/totp_seeds.ts";

/** What a console test gets. */
export interface ConsoleEnv {
  etcd: EtcdServer;
  store: Store;
  config: Config;
  /** The API's origin, e.g. `http://127.0.0.1:41234`. */
  origin: string;
  bearer: BearerTokens;
  sessions: BearerTokens;
  /** The session cookie of a user (`ucloud_session=...`). */
  cookie: (user: string) => Promise<{ cookie: string; jti: string }>;
  /** `Authorization: Bearer ...` of a user. */
  authorization: (user: string) => Promise<string>;
  /** Sets VM `id`'s status to running on `host` with `handle`. */
  markRunning: (id: string, host: string, handle?: unknown) => Promise<void>;
  /** POST /v1/vms/{id}/console with `headers`. */
  ticket: (
    id: string,
    headers: Record<string, string>,
  ) => Promise<{ status: number; body: Record<string, unknown> }>;
  /** Creates VM `name` for the user of `headers`; returns its id. */
  createVm: (name: string, headers: Record<string, string>) => Promise<string>;
}

/** Runs `body` with a fresh etcd and API server; tears both down after. */
export async function withConsoleEnv(
  console: Partial<ConsoleConfig>,
  body: (env: ConsoleEnv) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-console-" });
  const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
  const env: Record<string, string> = {
    UCLOUD_ETCD: etcd.endpoint,
    UCLOUD_PREFIX: "/console-test",
    UCLOUD_STATE: `${dir}/state`,
  };
  const config = parseConfig({ console }, (n) => env[n]);
  const store = Store.connect(config.etcd);
  const hostKeys = await importHostKey(newHostKey());
  const revocations = new EtcdRevocationList(store);
  const bearer = new BearerTokens({ key: hostKeys.sign, revocations });
  const sessions = new BearerTokens({
    key: hostKeys.sign,
    revocations,
    purpose: "session",
  });
  const log = logger({ component: "api" });
  const auth = totpAuth({
    verifier: new LocalVerifier({
      seeds: new MemorySeedStore(),
      replay: new MemoryReplayStore(),
    }),
    users: { lookup: () => Promise.resolve(null) },
    bearer,
    sessions,
    limiter: new AuthLimiter({
      perName: { limit: 100, windowMs: 60_000 },
      perAddress: { limit: 1000, windowMs: 60_000 },
    }),
    log,
  });
  const app = createApp({
    store,
    config,
    identity: { auth, routes: authRoutes({ bearer }), sessions },
    log,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    app.fetch,
  );
  const origin = `http://127.0.0.1:${server.addr.port}`;
  const admin = (u: string) => u === "alice";
  const cookie = async (user: string) => {
    const { token } = await sessions.issue({ name: user, admin: admin(user) });
    const r = await sessions.verify(token);
    if (!r.ok) throw new Error("Cannot verify the session just issued");
    return { cookie: `${SESSION_COOKIE}=${token}`, jti: r.claims.jti };
  };
  const authorization = async (user: string) =>
    `Bearer ${(await bearer.issue({ name: user, admin: admin(user) })).token}`;
  const markRunning = async (id: string, host: string, handle?: unknown) => {
    const kv = await store.get(keys.vm(id), Vm);
    if (!kv) throw new Error(`Cannot mark VM ${id}: it does not exist`);
    const vm = {
      ...kv.value,
      desired: "running",
      status: {
        ...kv.value.status,
        phase: "running",
        host,
        ...(handle === undefined ? {} : { handle }),
      },
    };
    const r = await store.txn().ifModRevision(kv.key, kv.modRevision)
      .put(kv.key, vm).commit();
    if (!r.ok) throw new Error(`Cannot mark VM ${id}: it changed`);
  };
  const ticket = async (id: string, headers: Record<string, string>) => {
    const res = await fetch(`${origin}/v1/vms/${id}/console`, {
      method: "POST",
      headers,
    });
    return { status: res.status, body: await res.json() };
  };
  const createVm = async (name: string, headers: Record<string, string>) => {
    const res = await fetch(`${origin}/v1/vms`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ name, cpus: 1, memory: 128 }),
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`Cannot create VM: ${text}`);
    return JSON.parse(text).vm.id;
  };
  try {
    await body({
      etcd,
      store,
      config,
      origin,
      bearer,
      sessions,
      cookie,
      authorization,
      markRunning,
      ticket,
      createVm,
    });
  } finally {
    await server.shutdown();
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
