/**
 * The fixture of the resources/ tests: one throwaway etcd per test file
 * (core/etcd_server.ts), a fresh store with its own prefix per test, and
 * the config the resource functions read. Torn down by `stop()`;
 * `etcdTest()` registers a test whose steps share one.
 *
 * @example
 * ```ts
 * etcdTest("VMs against a real etcd", async ({ etcd, step }) => {
 *   await step("createVm() ...", async () => { const { store } = etcd.deps(); });
 * });
 * ```
 */
import { ConfigSchema, defaultNetworkConfig } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { Store } from "../core/store.ts";
import type { ResourceDeps } from "./deps.ts";

/** Deno.test options for tests that keep an etcd client across steps. */
export const noSanitize = { sanitizeOps: false, sanitizeResources: false };

/** A running etcd that hands out fresh stores, and its teardown. */
export interface EtcdFixture {
  /** A store with a prefix of its own and the default config. */
  deps(network?: Partial<ResourceDeps["config"]["network"]>): ResourceDeps;
  stop(): Promise<void>;
}

/** Starts etcd in a temp dir. */
export async function etcdFixture(): Promise<EtcdFixture> {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-resources-" });
  const etcd = await startEtcd({ dataDir: dir });
  const stores: Store[] = [];
  let n = 0;
  return {
    deps(network = {}) {
      const store = Store.connect({
        endpoints: [etcd.endpoint],
        prefix: `/r/${++n}`,
      });
      stores.push(store);
      return {
        store,
        config: {
          tasks: ConfigSchema.shape.tasks.parse(undefined),
          network: { ...defaultNetworkConfig(), ...network },
        },
      };
    },
    async stop() {
      for (const s of stores) s.close();
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** What the steps of an {@linkcode etcdTest} share. */
export interface EtcdTestEnv {
  etcd: EtcdFixture;
  /** Runs one step (sanitizers off). */
  step(name: string, fn: () => Promise<void>): Promise<boolean>;
}

/**
 * Registers test `name` (sanitizers off): `body` runs its steps on one
 * etcd fixture, stopped at the end.
 */
export function etcdTest(
  name: string,
  body: (env: EtcdTestEnv) => Promise<void>,
): void {
  Deno.test({
    name,
    ...noSanitize,
    async fn(t) {
      const etcd = await etcdFixture();
      const step = (name: string, fn: () => Promise<void>) =>
        t.step({ name, ...noSanitize, fn });
      try {
        await body({ etcd, step });
      } finally {
        await etcd.stop();
      }
    },
  });
}
