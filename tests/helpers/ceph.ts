/**
 * A throwaway one-node Ceph cluster for tests (`scripts/ceph_fixture.sh`:
 * mon, mgr and one bluestore OSD on a sparse file, pool `ucloud`), in a temp
 * dir. `stop()` kills its daemons and removes the dir.
 *
 * @example
 * ```ts
 * const ceph = await startCeph();
 * try {
 *   await importQcow2(ceph.pool, "/tmp/disk.qcow2", "img-1");
 * } finally {
 *   await ceph.stop();
 * }
 * ```
 */
import { run } from "../../drivers/runner.ts";
import type { RbdPool } from "../../drivers/images/rbd.ts";

const SCRIPT = new URL("../../scripts/ceph_fixture.sh", import.meta.url)
  .pathname;

/** A running cluster from {@linkcode startCeph}. */
export interface CephCluster {
  dir: string;
  /** What the rbd driver needs: pool `ucloud`, DIR/ceph.conf, user admin. */
  pool: RbdPool;
  /** How long `start` took, in milliseconds. */
  startMs: number;
  /** Disk the cluster used right after start (allocated blocks). */
  diskBytes: number;
  /** Disk the cluster uses now (allocated blocks). */
  diskUse(): Promise<number>;
  /** Kills the daemons and removes the dir (idempotent). */
  stop(): Promise<void>;
}

/** Runs `ceph` as the cluster's admin and returns its stdout. */
export async function ceph(pool: RbdPool, args: string[]): Promise<string> {
  return (await run("ceph", ["--conf", pool.conf, ...args])).stdout;
}

/**
 * Starts a new cluster in a temp dir; on failure nothing is left behind.
 * `addr`: where the mon listens (`CEPH_FIXTURE_ADDR`, default 127.0.0.1),
 * e.g. a test network's bridge address that host namespaces reach.
 * `parentDir`: where the temp dir is made (default the system's temp dir).
 */
export async function startCeph(
  { addr, parentDir }: { addr?: string; parentDir?: string } = {},
): Promise<CephCluster> {
  const dir = await Deno.makeTempDir({
    prefix: "ucloud-ceph-",
    dir: parentDir,
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      await run("bash", [SCRIPT, "stop", dir], { timeoutMs: 60_000 });
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };
  const diskUse = async () => {
    const { stdout } = await run("du", ["-sk", dir]);
    return Number(stdout.split("\t")[0]) * 1024;
  };
  try {
    const { stdout } = await run("bash", [SCRIPT, "start", dir], {
      timeoutMs: 180_000,
      ...(addr ? { env: { CEPH_FIXTURE_ADDR: addr } } : {}),
    });
    const summary = JSON.parse(stdout.trim().split("\n").at(-1)!);
    return {
      dir,
      pool: { pool: summary.pool, conf: summary.conf, user: "admin" },
      startMs: summary.startMs,
      diskBytes: summary.diskBytes,
      diskUse,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
