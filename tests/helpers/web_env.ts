/**
 * The environment of the web page tests: a real slapd (alice admin, bob,
 * carol) and etcd, one worker with the sim driver (host h1; or the hosts
 * of `WebEnvOptions.hosts`, e.g. tests/helpers/web_qemu.ts), the real app
 * with the identity auth served over HTTP on 127.0.0.1 (the browser needs a
 * port), an upload directory and file store for images shared by the app
 * and the worker (URLs on 127.0.0.1 allowed: tests serve images there),
 * each user's TOTP seed, and tokens from oathtool that were not
 * used yet. The clock of the session tokens can be moved forward to
 * expire sessions. `withWebEnv()` runs a test body in it and tears it
 * all down after; `startWebEnv()` starts it for whoever ends it.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { createApp } from "../../api/app.ts";
import { createIdentity } from "../../api/identity.ts";
import { type Config, parseConfig } from "../../core/config.ts";
import { ImagesConfig } from "../../core/config_images.ts";
import { keys } from "../../core/keys.ts";
import { Alive } from "../../core/schemas.ts";
import { importHostKey, newHostKey } from "../../core/secrets.ts";
import { type Cluster, dump, startCluster, waitFor } from "./cluster.ts";
import { captureLog, oathtool } from "./otp.ts";
import {
  BASE_DN,
  groupLdif,
  SERVICE_DN,
  SERVICE_PW,
  startSlapd,
  userLdif,
} from "./slapd.ts";

/** The users of the directory and their passwords. */
export const PASSWORDS: Record<string, string> = {
  alice: "alice-pw",
  bob: "bob-pw",
  carol: "carol-pw",
};

/** What a test body gets from `withWebEnv()`. */
export interface WebTestEnv {
  cluster: Cluster;
  /** The app's base URL, `http://127.0.0.1:<port>`. */
  base: string;
  app: ReturnType<typeof createApp>;
  /** The app's configuration (its `images` section is the worker's too). */
  config: Config;
  log: ReturnType<typeof captureLog>;
  /** A TOTP token of `name` whose time step no login used yet. */
  token: (name: string) => Promise<string>;
  /** Moves the session tokens' clock forward by `ms`. */
  advance: (ms: number) => void;
  /** Every key and value of the cluster's prefix. */
  snapshot: () => Promise<Record<string, string>>;
  /** Fills and sends the login form in `page`. */
  login: (
    page: Page,
    name: string,
    o?: { password?: string; token?: string },
  ) => Promise<void>;
}

/** The hosts a `WebEnvOptions.hosts` function started. */
export interface WebHosts {
  /** The images configuration the app shares with the workers. */
  images?: ImagesConfig;
  /** Runs before the cluster stops (e.g. the workers delete their VMs). */
  beforeStop?: () => Promise<void>;
  /** Runs after the cluster stopped (e.g. removes the host namespaces). */
  afterStop?: () => Promise<void>;
  /** Prints what helps when the test failed (e.g. the host network). */
  printState?: () => Promise<void>;
}

/** How `withWebEnv()` sets up the cluster. */
export interface WebEnvOptions {
  /** `startCluster`'s options; default: no test guest. */
  cluster?: Parameters<typeof startCluster>[0];
  /**
   * Starts the cluster's hosts, one of them named h1; default: one
   * worker with the sim driver.
   */
  hosts?: (cluster: Cluster) => Promise<WebHosts>;
}

/** The default hosts: one worker h1 with the sim driver. */
async function simHost(cluster: Cluster): Promise<WebHosts> {
  cluster.env.UCLOUD_DRIVER = "sim";
  // The app and the worker share the upload area and the image store.
  const images = {
    uploadDir: `${cluster.dir}/www`,
    fileStoreDir: `${cluster.dir}/image-store`,
    allowPrivateUrls: true,
  };
  const workerConfig = `${cluster.dir}/web-worker.json`;
  await Deno.writeTextFile(workerConfig, JSON.stringify({ images }));
  await cluster.addWorker({
    name: "h1",
    env: { UCLOUD_CONFIG: workerConfig },
  });
  return { images: ImagesConfig.parse(images) };
}

/** A started web environment and how to print and end it. */
export interface RunningWebEnv extends WebTestEnv {
  /** Prints the workers' logs and the hosts' state (a failure). */
  printState: () => Promise<void>;
  /** Stops it all; runs once (later calls wait for the first). */
  close: () => Promise<void>;
}

/** Runs `body` against a fresh slapd, etcd, worker(s) and app server. */
export async function withWebEnv(
  body: (env: WebTestEnv) => Promise<void>,
  opts: WebEnvOptions = {},
): Promise<void> {
  const env = await startWebEnv(opts);
  try {
    await body(env);
  } catch (err) {
    await env.printState();
    throw err;
  } finally {
    await env.close();
  }
}

/**
 * Starts slapd, etcd, the hosts and the app server (`withWebEnv` without
 * the body: for the bench, which must be able to end it on a signal).
 */
export async function startWebEnv(
  opts: WebEnvOptions = {},
): Promise<RunningWebEnv> {
  const slapd = await startSlapd();
  const cluster = await startCluster(opts.cluster ?? { guest: false });
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  let hosts: WebHosts = {};
  const printState = async () => {
    await cluster.printLogs();
    await hosts.printState?.();
  };
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      await server?.shutdown();
      await hosts.beforeStop?.();
      await cluster.stop();
      await hosts.afterStop?.();
      await slapd.close();
    })();
  try {
    await slapd.add(
      [
        userLdif("alice", PASSWORDS.alice),
        userLdif("bob", PASSWORDS.bob),
        userLdif("carol", PASSWORDS.carol),
        groupLdif("ucloud-admins", ["alice"]),
      ].join("\n"),
    );
    hosts = await (opts.hosts ?? simHost)(cluster);
    const config = parseConfig({
      stateDir: `${cluster.dir}/api`,
      etcd: cluster.config.etcd,
      ...(hosts.images ? { images: hosts.images } : {}),
      identity: {
        ldap: {
          url: slapd.url,
          baseDn: BASE_DN,
          bindDn: SERVICE_DN,
          bindPassword: SERVICE_PW,
          timeoutMs: 2000,
        },
        // The browser talks plain HTTP to 127.0.0.1.
        sessionCookieSecure: false,
        sessionTtlSeconds: 600,
        rateLimit: {
          perName: { limit: 1000, windowSeconds: 300 },
          perAddress: { limit: 1000, windowSeconds: 300 },
        },
      },
    }, () => undefined);
    let skew = 0;
    const log = captureLog();
    const identity = await createIdentity({
      store: cluster.store,
      config,
      keys: await importHostKey(newHostKey()),
      log,
      now: () => Date.now() + skew,
    });
    const app = createApp({ store: cluster.store, config, identity, log });
    server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      app.fetch,
    );
    const base = `http://127.0.0.1:${server.addr.port}`;

    const seeds: Record<string, string> = {};
    for (const name of Object.keys(PASSWORDS)) {
      const res = await app.request("/v1/auth/seed", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name, password: PASSWORDS[name] }),
      });
      assert.equal(res.status, 201, await res.clone().text());
      seeds[name] = (await res.json()).seed;
    }
    const used = new Map<string, Set<number>>();
    const token = async (name: string) => {
      const seen = used.get(name) ?? new Set<number>();
      used.set(name, seen);
      for (;;) {
        const step = Math.floor(Date.now() / 30_000);
        // The verifier takes the step before, this one and the next.
        const free = [step, step + 1].find((s) => !seen.has(s));
        if (free !== undefined) {
          seen.add(free);
          return await oathtool(seeds[name], free * 30_000);
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    await waitFor("h1 alive", () => cluster.store.get(keys.alive("h1"), Alive));
    const login = async (
      page: Page,
      name: string,
      o: { password?: string; token?: string } = {},
    ) => {
      await page.goto(`${base}/web/login`);
      await page.getByLabel("User name").fill(name);
      await page.getByLabel("Password").fill(o.password ?? PASSWORDS[name]);
      await page.getByLabel("TOTP token").fill(o.token ?? await token(name));
      await Promise.all([
        page.waitForLoadState("load"),
        page.getByRole("button", { name: "Log in" }).click(),
      ]);
    };
    return {
      cluster,
      base,
      app,
      config,
      log,
      token,
      advance: (ms) => {
        skew += ms;
      },
      snapshot: () => dump(cluster.store),
      login,
      printState,
      close,
    };
  } catch (err) {
    await printState();
    await close();
    throw err;
  }
}
