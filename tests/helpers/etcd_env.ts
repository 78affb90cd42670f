/**
 * One etcd for a test file of the queue, the lease session and the watch
 * helper (tests/queue_test.ts, tests/session_watch_test.ts):
 * `withEtcd()` and `grant()` of a lease.
 */
import { startEtcd } from "../../core/etcd_server.ts";
import { Store } from "../../core/store.ts";

/**
 * Runs `f` on a store (prefix `/q`, 1 s request timeout) of a one-node etcd
 * started for it; `restart()` stops and starts that etcd on the same ports
 * and data, `pid()` is its process id. Killed and removed afterwards.
 */
export async function withEtcd(
  f: (
    store: Store,
    restart: () => Promise<void>,
    pid: () => number,
  ) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "uc-q-" });
  let etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({
    endpoints: [etcd.endpoint],
    prefix: "/q",
    timeoutMs: 1000,
  });
  const restart = async () => {
    await etcd.stop();
    etcd = await startEtcd({
      dataDir: dir,
      port: etcd.port,
      peerPort: etcd.peerPort,
    });
  };
  try {
    await f(store, restart, () => etcd.pid);
  } finally {
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
}

/** A new etcd lease of `ttl` seconds; its id. */
export async function grant(store: Store, ttl = 2): Promise<string> {
  const r = await store.client.leaseClient.leaseGrant({ TTL: ttl });
  return String(r.ID);
}
