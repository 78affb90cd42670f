/**
 * Test fixtures: a throwaway etcd, worker processes (real `workers/main.ts`
 * children, so tests can SIGKILL them), the API app, and process checks.
 * Everything is torn down in `stop()`: processes by pid, temp dirs.
 */
import { type Config, defaultRunDir, parseConfig } from "../../core/config.ts";
import {
  type EtcdOptions,
  type EtcdServer,
  startEtcd,
} from "../../core/etcd_server.ts";
import type { Vm } from "../../core/schemas.ts";
import { prefixEnd, Store } from "../../core/store.ts";
import { killQemus, reapFencers, simPids } from "./host_procs.ts";

export {
  fencerPids,
  killQemus,
  qemuPids,
  reapFencers,
  simPids,
} from "./host_procs.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;

/** Where the test guest is built once and shared by all suites. */
export const GUEST_CACHE = Deno.env.get("UCLOUD_TEST_CACHE") ??
  "/var/tmp/ucloud-test-cache";

/**
 * Builds (once, cached) the tiny test guest; returns its images dir. The
 * script itself checks its cache (rebuilding when the script changed), so it
 * runs every time.
 */
export async function ensureGuest(): Promise<string> {
  const images = `${GUEST_CACHE}/images`;
  const out = await new Deno.Command("bash", {
    args: [`${ROOT}scripts/build_guest.sh`],
    env: { UCLOUD_STATE: GUEST_CACHE },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `build_guest.sh failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return images;
}

/** The tiny guest's direct-kernel boot source, as the image store gives it. */
export async function tinyBoot(): Promise<
  { kernel: string; initrd: string; append: string }
> {
  const dir = `${await ensureGuest()}/tiny`;
  return {
    kernel: `${dir}/vmlinux`,
    initrd: `${dir}/initrd.cpio.gz`,
    append: (await Deno.readTextFile(`${dir}/cmdline`)).trim(),
  };
}

export interface HostSpec {
  name: string;
  cpus?: number;
  memoryMiB?: number;
  /** Local disk the worker reports (`UCLOUD_HOST_DISK`), not df's answer. */
  diskMiB?: number;
  /** More environment for this host's worker (e.g. UCLOUD_PUBLIC_BRIDGES). */
  env?: Record<string, string>;
  /** Another checkout to run the worker from (e.g. an older version). */
  root?: string;
}

export class WorkerProc {
  child?: Deno.ChildProcess;
  readonly logFile: string;

  constructor(readonly cluster: Cluster, readonly spec: HostSpec) {
    this.logFile = `${cluster.dir}/worker-${spec.name}.log`;
  }

  /** Each host has its own state dir (VMs) ... */
  get stateDir(): string {
    return `${this.cluster.dir}/hosts/${this.spec.name}`;
  }

  /** ... and run dir (fence deadline, fencer pid). */
  get runDir(): string {
    return this.spec.env?.UCLOUD_RUN_DIR ?? defaultRunDir(this.stateDir);
  }

  /** SIGKILLs the host's fencer (it outlives the worker by design). */
  async killFencer(): Promise<void> {
    const pid = Number(
      await Deno.readTextFile(`${this.runDir}/fencer.pid`).catch(() => "0"),
    );
    if (pid > 1) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts `workers/main.ts` as a child process, stderr to its log file. */
  async start(): Promise<void> {
    await Deno.mkdir(this.stateDir, { recursive: true });
    if (this.cluster.images) {
      await Deno.symlink(this.cluster.images, `${this.stateDir}/images`)
        .catch(() => {});
    }
    const [cmd, ...pre] = this.launcher();
    this.child = new Deno.Command(cmd, {
      args: [
        ...pre,
        "-c",
        'exec "$0" run -A --unstable-cron "$1" 2>>"$2"',
        Deno.execPath(),
        `${this.spec.root ?? ROOT}workers/main.ts`,
        this.logFile,
      ],
      // deno.json is found from the working directory.
      ...(this.spec.root ? { cwd: this.spec.root } : {}),
      env: this.workerEnv(),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  }

  /** How bash is started for the worker (hook: e.g. inside a namespace). */
  protected launcher(): string[] {
    return ["bash"];
  }

  /** The worker's environment (hook). */
  protected workerEnv(): Record<string, string> {
    return {
      ...this.cluster.env,
      UCLOUD_STATE: this.stateDir,
      UCLOUD_HOST: this.spec.name,
      UCLOUD_HOST_CPUS: String(this.spec.cpus ?? 4),
      UCLOUD_HOST_MEMORY: String(this.spec.memoryMiB ?? 2048),
      UCLOUD_HOST_DISK: String(this.spec.diskMiB ?? 102_400),
      // Tests count on a host of N cores taking N 1-CPU VMs (the config's
      // defaults overcommit cores and reserve memory): set them to say.
      UCLOUD_CPU_ALLOCATION_RATIO: "1",
      UCLOUD_RESERVED_MEMORY: "0",
      ...this.spec.env,
    };
  }

  /** Sends a signal and waits for the process to exit. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    if (!this.child) return;
    try {
      this.child.kill(signal);
    } catch { /* already gone */ }
    await this.child.status;
    this.child = undefined;
  }

  async log(): Promise<string> {
    return await Deno.readTextFile(this.logFile).catch(() => "");
  }
}

export class Cluster {
  readonly workers = new Map<string, WorkerProc>();
  constructor(
    readonly dir: string,
    public etcd: EtcdServer,
    readonly store: Store,
    readonly config: Config,
    readonly env: Record<string, string>,
    readonly images?: string,
  ) {}

  async addWorker(spec: HostSpec): Promise<WorkerProc> {
    const w = new WorkerProc(this, spec);
    this.workers.set(spec.name, w);
    await w.start();
    return w;
  }

  /** Stops etcd and starts it again on the same port and data. */
  async restartEtcd(downMs = 0): Promise<void> {
    await this.etcd.stop();
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    this.etcd = await startEtcd({
      dataDir: this.etcd.dataDir,
      port: this.etcd.port,
      peerPort: this.etcd.peerPort,
    });
  }

  /** Prints the tail of every worker's log (for a failed test). */
  async printLogs(chars = 4000): Promise<void> {
    for (const w of this.workers.values()) {
      console.error(
        `--- ${w.spec.name} log ---\n${(await w.log()).slice(-chars)}`,
      );
    }
  }

  async stop(): Promise<void> {
    for (const w of this.workers.values()) {
      await w.kill("SIGKILL");
      await w.killFencer();
    }
    // Also fencers without a pid file yet (one starting when its worker
    // was killed): an older version's never exits without a deadline.
    await reapFencers(this.dir);
    for (const w of this.workers.values()) {
      await Deno.remove(w.runDir, { recursive: true }).catch(() => {});
    }
    await killQemus(this.dir);
    for (const pid of [...(await simPids(this.dir)).values()].flat()) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    this.store.close();
    await this.etcd.stop("SIGKILL");
    if (!Deno.env.get("UCLOUD_KEEP_TEST_DIRS")) {
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    }
  }
}

/**
 * Starts etcd and the state dir with the test guest linked in. Workers are
 * added with `addWorker`. Short leases so expiry tests are quick.
 */
export async function startCluster(
  opts: {
    leaseTtlSeconds?: number;
    guest?: boolean;
    /** etcd's compaction and quota (core/etcd_server.ts). */
    etcd?: Pick<EtcdOptions, "compaction" | "quotaBytes">;
  } = {},
): Promise<Cluster> {
  const dir = await Deno.makeTempDir({ prefix: "uc-" });
  const etcd = await startEtcd({ ...opts.etcd, dataDir: `${dir}/etcd` });
  const images = (opts.guest ?? true) ? await ensureGuest() : undefined;
  const env: Record<string, string> = {
    UCLOUD_ETCD: etcd.endpoint,
    UCLOUD_PREFIX: "/test",
    UCLOUD_STATE: `${dir}/state`,
    UCLOUD_CONFIG: `${dir}/none.json`,
    UCLOUD_LEASE_TTL: String(opts.leaseTtlSeconds ?? 2),
    UCLOUD_LEASE_MARGIN_MS: "500",
    UCLOUD_ACCEL: "tcg",
    // The workers' cron rounds still resume drains, but never move VMs for
    // balance: that would race with tests that check where VMs run.
    UCLOUD_REBALANCE_MAX_MOVES: "0",
    // Several workers share the test's network namespace: any free port
    // (the console relay's and /metrics'; each worker announces its URL).
    UCLOUD_CONSOLE_PORT: "0",
    UCLOUD_WORKER_METRICS_PORT: "0",
  };
  const config = parseConfig({}, (n) => env[n]);
  config.worker.monitorIntervalMs = 250;
  const store = Store.connect(config.etcd);
  return new Cluster(dir, etcd, store, config, env, images);
}

/** Creates a VM through `app` (an API app); returns the created document. */
export async function createVm(
  app: {
    request: (path: string, init: RequestInit) => Response | Promise<Response>;
  },
  name: string,
): Promise<Vm> {
  const res = await app.request("/v1/vms", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, cpus: 1, memory: 128 }),
  });
  if (res.status !== 201) {
    throw new Error(
      `Cannot create VM ${name}: ${res.status} ${await res.text()}`,
    );
  }
  return (await res.json()).vm;
}

/** Polls `f` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  what: string,
  f: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await f();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for ${what}${
      last ? `: ${last}` : ""
    }`,
  );
}

/** Every key and value under the store's prefix, for before/after checks. */
export async function dump(store: Store): Promise<Record<string, string>> {
  const k = store.full("");
  const res = await store.client.kv.range({ key: k, range_end: prefixEnd(k) });
  return Object.fromEntries(
    res.kvs.map((kv) => [store.rel(kv.key), kv.value.toString()]),
  );
}

/**
 * Runs `f` with a fresh cluster; prints the workers' logs when it throws and
 * always stops the cluster.
 */
export async function withCluster(
  f: (c: Cluster) => Promise<void>,
  opts: Parameters<typeof startCluster>[0] = {},
): Promise<void> {
  const c = await startCluster(opts);
  try {
    await f(c);
  } catch (err) {
    await c.printLogs();
    throw err;
  } finally {
    await c.stop();
  }
}
