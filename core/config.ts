/**
 * The one configuration object, validated by zod. Sources, later wins:
 * defaults, the JSON file named by `UCLOUD_CONFIG` (or `<stateDir>/config.json`
 * when it exists), then environment variables. README documents every field.
 *
 * @example
 * ```ts
 * const config = await loadConfig();
 * console.log(config.etcd.endpoints);
 * ```
 */
import { createHash } from "node:crypto";
import { basename, resolve } from "node:path";
import { z } from "zod";
import { ImagesConfig } from "./config_images.ts";
import { MaintenanceConfig } from "./config_maintenance.ts";
import { QuotaConfig } from "./config_quota.ts";
import {
  MetricsConfig,
  WorkerMetricsConfig,
  workerMetricsEnv,
} from "./config_metrics.ts";
import { PrometheusConfig } from "./config_prometheus.ts";
import { SchedulerConfig } from "./config_scheduler.ts";
import { ConsoleConfig } from "./config_console.ts";
import { SftpConfig } from "./config_sftp.ts";
import { IdentityConfig } from "./ldap.ts";
import { HOST_RE } from "./schemas.ts";
import { parsePrefix6 } from "./netaddr.ts";
import { parseTrustedProxies } from "./client_address.ts";

function poolOk(pool: string): boolean {
  try {
    return parsePrefix6(pool).length <= 64;
  } catch {
    return false;
  }
}

function trustedOk(entry: string): boolean {
  try {
    parseTrustedProxies([entry]);
    return true;
  } catch {
    return false;
  }
}

function defaultStateDir(): string {
  return Deno.env.get("UCLOUD_STATE") ??
    `${Deno.env.get("HOME") ?? "/root"}/.local/share/ucloud`;
}

/**
 * The run directory of a state dir: `/run/ucloud/<name>-<hash>`, one per
 * state dir (several test hosts share a machine), on the tmpfs `/run` so a
 * full state filesystem cannot stop the fence deadline from being written.
 *
 * @example
 * ```ts
 * defaultRunDir("/var/lib/ucloud"); // "/run/ucloud/ucloud-384535e43155"
 * ```
 */
export function defaultRunDir(stateDir: string): string {
  const abs = resolve(stateDir);
  const hash = createHash("sha256").update(abs).digest("hex").slice(0, 12);
  const name = basename(abs).replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 40);
  return `/run/ucloud/${name || "root"}-${hash}`;
}

export const ConfigSchema = z.object({
  stateDir: z.string().min(1).default(defaultStateDir),
  etcd: z.object({
    endpoints: z.array(z.url()).min(1).default(["http://127.0.0.1:23790"]),
    prefix: z.string().regex(/^\/[^\s]*[^/\s]$/).default("/ucloud/v1"),
    timeoutMs: z.number().int().min(100).max(60_000).default(2000),
  }).prefault({}),
  api: z.object({
    listen: z.string().default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(8750),
    /**
     * Reverse proxies (CIDRs or addresses) whose `X-Forwarded-For` names
     * the client; from any other peer the header is ignored.
     */
    trustedProxies: z.array(
      z.string().refine(trustedOk, {
        message: "must be an IPv4 or IPv6 address or CIDR",
      }),
    ).default([]),
    /** Who may scrape `GET /metrics` (core/config_metrics.ts). */
    metrics: MetricsConfig.prefault({}),
    /** Open `/v1/events` streams at most, per user and per API process. */
    events: z.object({
      maxStreamsPerUser: z.number().int().min(1).default(8),
      maxStreams: z.number().int().min(1).default(2000),
    }).prefault({}),
  }).prefault({}),
  worker: z.object({
    host: z.string().regex(HOST_RE).default(() =>
      Deno.hostname().toLowerCase().replace(/[^a-z0-9.-]/g, "-")
    ),
    leaseTtlSeconds: z.number().int().min(1).max(600).default(3),
    leaseMarginMs: z.number().int().min(0).default(1000),
    monitorIntervalMs: z.number().int().min(50).default(1000),
    /**
     * Small files that must be writable while the host lives (the fence
     * deadline, the fencer's pid): keep it on tmpfs. Default
     * `defaultRunDir(stateDir)`.
     */
    runDir: z.string().min(1).optional(),
    concurrency: z.number().int().min(1).max(256).default(4),
    cpus: z.number().int().min(1).optional(),
    memoryMiB: z.number().int().min(64).optional(),
    /** Local disk for VMs in MiB; default: the state dir's filesystem size. */
    diskMiB: z.number().int().min(1).optional(),
    /**
     * VM disks live on this host (the file store): report `diskMiB` so
     * placement counts disk. False (shared store): disk is no constraint.
     */
    localDisk: z.boolean().default(true),
    /**
     * An orderly stop (SIGTERM, SIGINT) hands the lease to the host's fencer
     * for this long, so a new worker process adopts it with the VMs still
     * running; 0: no hand-over (the VMs are fenced at the deadline).
     */
    handoverSeconds: z.number().int().min(0).max(3600).default(60),
    /**
     * SIGTERM shuts the host down in order instead (as `ucloud host
     * shutdown`): drain, then the worker exits and its lease ends; a second
     * SIGTERM or SIGINT stops at once with the hand-over.
     */
    shutdownDrain: z.boolean().default(false),
    /** The VM driver: qemu, or sim (a plain process per VM, for benchmarks). */
    driver: z.enum(["qemu", "sim"]).default("qemu"),
    /**
     * How long a stopping VM's guest gets to shut down by itself (ACPI
     * power button) before the hard stop, unless the request says; also
     * the time a guest gets to reboot itself before a hard reset.
     */
    stopTimeoutSeconds: z.number().int().min(1).max(3600).default(60),
    /** The worker's `/metrics` (core/config_metrics.ts). */
    metrics: WorkerMetricsConfig.prefault({}),
  }).prefault({}).refine(
    (w) => w.leaseMarginMs < w.leaseTtlSeconds * 1000 * 2 / 3,
    {
      message:
        "worker.leaseMarginMs must be less than two thirds of the lease TTL (keep-alives run every TTL/3)",
      path: ["leaseMarginMs"],
    },
  ),
  qemu: z.object({
    accel: z.enum(["auto", "kvm", "tcg"]).default("auto"),
    binary: z.string().default("qemu-system-x86_64"),
    /**
     * A VM's `serial.log` is rotated (to `serial.log.1`, once) when it grows
     * past this; checked every second by the host's fencer.
     */
    serialLogMaxBytes: z.number().int().min(4096).default(1024 * 1024),
    /**
     * The system user every qemu switches to once it opened its files
     * (`-runas`); created when missing.
     */
    user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/).default("ucloud-qemu"),
  }).prefault({}),
  /** Placement, rebalancing, allocation ratios (core/config_scheduler.ts). */
  scheduler: SchedulerConfig.prefault({}),
  /** Per-user limits; absent: unlimited (core/config_quota.ts). */
  quota: QuotaConfig.prefault({}),
  network: z.object({
    /** IPv6 pool private networks get their /64 from (next free). */
    pool: z.string().default("fdc1:d00::/48"),
    vniMin: z.number().int().min(1).max(0xffffff).default(100),
    vniMax: z.number().int().min(1).max(0xffffff).default(0xffffff),
    /** VXLAN mode of new private networks that do not say. */
    mode: z.enum(["multicast", "unicast"]).default("multicast"),
    vxlanPort: z.number().int().min(1).max(65535).default(4789),
    /**
     * Underlay device for VXLAN; absent: the device of the IPv6 default
     * route, else the first with a global IPv6 address, else none (networks
     * then stay on this host).
     */
    underlayDevice: z.string().optional(),
    /** This host's VXLAN source address; absent: the device's first global IPv6. */
    underlayAddress: z.string().optional(),
    /** Existing bridges of this host that public networks may use. */
    publicBridges: z.array(z.string()).default([]),
  }).prefault({}).refine((n) => n.vniMin <= n.vniMax, {
    message: "network.vniMin must not exceed network.vniMax",
    path: ["vniMin"],
  }).refine((n) => poolOk(n.pool), {
    message: "network.pool must be an IPv6 prefix of /64 or shorter",
    path: ["pool"],
  }),
  /**
   * Crashed VMs (the process died while the VM should run) are restarted
   * on their host after a backoff (`backoffBaseMs` doubling per crash,
   * at most `backoffMaxMs`), at most `max` times within `windowSeconds`;
   * one crash more and the VM goes to phase error with the reason.
   */
  restart: z.object({
    max: z.number().int().min(0).max(100).default(5),
    windowSeconds: z.number().int().min(1).default(600),
    backoffBaseMs: z.number().int().min(0).default(1000),
    backoffMaxMs: z.number().int().min(0).default(30_000),
  }).prefault({}),
  tasks: z.object({
    maxAttempts: z.number().int().min(1).max(100).default(5),
    backoffBaseMs: z.number().int().min(1).default(500),
    backoffMaxMs: z.number().int().min(1).default(30_000),
    taskTimeoutMs: z.number().int().min(1000).default(120_000),
  }).prefault({}),
  /** The metadata service of each host (workers/metadata/). */
  metadata: z.object({
    /** Every metadata request needs an IMDSv2 token (`PUT /latest/api/token`). */
    requireToken: z.boolean().default(false),
  }).prefault({}),
  /** Images and VM disks (core/config_images.ts). */
  images: ImagesConfig.prefault({}),
  /** Task retention, etcd defragmentation (core/config_maintenance.ts). */
  maintenance: MaintenanceConfig.prefault({}),
  /** The SFTP upload service (core/config_sftp.ts). */
  sftp: SftpConfig.prefault({}),
  /** The Prometheus of `deno task up` (core/config_prometheus.ts). */
  prometheus: PrometheusConfig.prefault({}),
  /** The VM console in the browser (core/config_console.ts). */
  console: ConsoleConfig.prefault({}),
  /**
   * Users (LDAP) and API authentication (core/ldap.ts). `enabled` defaults
   * to true when `identity.ldap.url` is given (file or environment); while
   * false the API treats every caller as the local admin.
   */
  identity: IdentityConfig.extend({
    enabled: z.boolean().default(false),
  }).prefault({}),
});

type Parsed = z.infer<typeof ConfigSchema>;

/** The parsed configuration; `worker.runDir` always set. */
export type Config = Omit<Parsed, "worker"> & {
  worker: Parsed["worker"] & { runDir: string };
};

/** The network settings when a caller gives none (tests, embedded API). */
export function defaultNetworkConfig(): Config["network"] {
  return ConfigSchema.shape.network.parse(undefined);
}

function envOverrides(env: (name: string) => string | undefined) {
  const o: Record<string, Record<string, unknown>> = {
    etcd: {},
    api: {},
    worker: {},
    qemu: {},
    scheduler: {},
    network: {},
    restart: {},
    metadata: {},
    prometheus: {},
    console: {},
  };
  const identity: Record<string, Record<string, unknown>> = { ldap: {} };
  const num = (v: string) => Number(v);
  // 1/true/on and 0/false/off; anything else is left for zod to reject.
  const flag = (v: string) =>
    ["1", "true", "on"].includes(v)
      ? true
      : ["0", "false", "off"].includes(v)
      ? false
      : v;
  const set = (sect: string, key: string, v: unknown) => o[sect][key] = v;
  const e = (name: string, f: (v: string) => void) => {
    const v = env(name);
    if (v !== undefined && v !== "") f(v);
  };
  const top: Record<string, unknown> = {};
  e("UCLOUD_STATE", (v) => top.stateDir = v);
  e("UCLOUD_ETCD", (v) => set("etcd", "endpoints", v.split(",")));
  e("UCLOUD_PREFIX", (v) => set("etcd", "prefix", v));
  e("UCLOUD_API_LISTEN", (v) => set("api", "listen", v));
  e("UCLOUD_API_PORT", (v) => set("api", "port", num(v)));
  e(
    "UCLOUD_API_TRUSTED_PROXIES",
    (v) =>
      set(
        "api",
        "trustedProxies",
        v.split(",").map((p) => p.trim()).filter(Boolean),
      ),
  );
  e("UCLOUD_METRICS_ALLOW", (v) =>
    set("api", "metrics", {
      allow: v.split(",").map((p) => p.trim()).filter(Boolean),
    }));
  const workerMetrics = workerMetricsEnv(env);
  if (workerMetrics) set("worker", "metrics", workerMetrics);
  e("UCLOUD_HOST", (v) => set("worker", "host", v));
  e("UCLOUD_CONSOLE_PORT", (v) => set("console", "relayPort", num(v)));
  e("UCLOUD_CONSOLE_ADDRESS", (v) => set("console", "relayAddress", v));
  e("UCLOUD_LEASE_TTL", (v) => set("worker", "leaseTtlSeconds", num(v)));
  e("UCLOUD_LEASE_MARGIN_MS", (v) => set("worker", "leaseMarginMs", num(v)));
  e("UCLOUD_RUN_DIR", (v) => set("worker", "runDir", v));
  e("UCLOUD_HOST_CPUS", (v) => set("worker", "cpus", num(v)));
  e("UCLOUD_HOST_MEMORY", (v) => set("worker", "memoryMiB", num(v)));
  e("UCLOUD_HOST_DISK", (v) => set("worker", "diskMiB", num(v)));
  e("UCLOUD_ACCEL", (v) => set("qemu", "accel", v));
  e("UCLOUD_SERIAL_LOG_MAX", (v) => set("qemu", "serialLogMaxBytes", num(v)));
  e("UCLOUD_DRIVER", (v) => set("worker", "driver", v));
  e("UCLOUD_HANDOVER_SECONDS", (v) => set("worker", "handoverSeconds", num(v)));
  e("UCLOUD_SHUTDOWN_DRAIN", (v) => set("worker", "shutdownDrain", flag(v)));
  e(
    "UCLOUD_STOP_TIMEOUT_SECONDS",
    (v) => set("worker", "stopTimeoutSeconds", num(v)),
  );
  e(
    "UCLOUD_METADATA_REQUIRE_TOKEN",
    (v) => set("metadata", "requireToken", flag(v)),
  );
  e("UCLOUD_RESTART_MAX", (v) => set("restart", "max", num(v)));
  e(
    "UCLOUD_RESTART_BACKOFF_MS",
    (v) => set("restart", "backoffBaseMs", num(v)),
  );
  e("UCLOUD_SCHEDULER_POLICY", (v) => set("scheduler", "policy", v));
  e(
    "UCLOUD_CPU_ALLOCATION_RATIO",
    (v) => set("scheduler", "cpuAllocationRatio", num(v)),
  );
  e(
    "UCLOUD_MEMORY_ALLOCATION_RATIO",
    (v) => set("scheduler", "memoryAllocationRatio", num(v)),
  );
  e(
    "UCLOUD_RESERVED_MEMORY",
    (v) => set("scheduler", "reservedMemoryMiB", num(v)),
  );
  e(
    "UCLOUD_PLACEMENT_RETRY_MAX_SECONDS",
    (v) => set("scheduler", "placementRetryMaxSeconds", num(v)),
  );
  e(
    "UCLOUD_MAX_PENDING_VMS",
    (v) => set("scheduler", "maxPendingVmsPerUser", num(v)),
  );
  e(
    "UCLOUD_REBALANCE_SCHEDULE",
    (v) => set("scheduler", "rebalanceSchedule", v),
  );
  e(
    "UCLOUD_REBALANCE_MAX_MOVES",
    (v) => set("scheduler", "rebalanceMaxMoves", num(v)),
  );
  e(
    "UCLOUD_REBALANCE_RUNNING",
    (v) => set("scheduler", "rebalanceRunning", flag(v)),
  );
  e("UCLOUD_PROMETHEUS", (v) => set("prometheus", "enabled", flag(v)));
  e("UCLOUD_PROMETHEUS_PORT", (v) => set("prometheus", "port", num(v)));
  e("UCLOUD_NET_POOL", (v) => set("network", "pool", v));
  e("UCLOUD_NET_MODE", (v) => set("network", "mode", v));
  e("UCLOUD_UNDERLAY", (v) => set("network", "underlayDevice", v));
  e("UCLOUD_UNDERLAY_ADDRESS", (v) => set("network", "underlayAddress", v));
  e(
    "UCLOUD_PUBLIC_BRIDGES",
    (v) => set("network", "publicBridges", v.split(",").filter(Boolean)),
  );
  e("UCLOUD_LDAP_URL", (v) => identity.ldap.url = v);
  e("UCLOUD_LDAP_BIND_DN", (v) => identity.ldap.bindDn = v);
  e("UCLOUD_LDAP_BIND_PASSWORD", (v) => identity.ldap.bindPassword = v);
  e(
    "UCLOUD_IDENTITY_KEY_FILE",
    (v) => (identity as Record<string, unknown>).keyFile = v,
  );
  e(
    "UCLOUD_AUTH",
    (v) =>
      (identity as Record<string, unknown>).enabled = v === "1" ||
        v === "true" || v === "on",
  );
  return { top, sections: { ...o, identity } };
}

function merge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === "object" && !Array.isArray(v) &&
        b && typeof b === "object" && !Array.isArray(b)
      ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}

/**
 * Builds the configuration from a file object and an environment reader.
 * Throws an Error naming every invalid field.
 */
export function parseConfig(
  file: Record<string, unknown> = {},
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Config {
  const { top, sections } = envOverrides(env);
  const raw = merge(merge(file, sections), top);
  const id = raw.identity as
    | { enabled?: unknown; ldap?: { url?: unknown } }
    | undefined;
  if (id && id.enabled === undefined && typeof id.ldap?.url === "string") {
    raw.identity = { ...id, enabled: true };
  }
  const r = ConfigSchema.safeParse(raw);
  if (!r.success) {
    const detail = r.error.issues.map((i) =>
      `${i.path.join(".")}: ${i.message}`
    )
      .join("; ");
    throw new Error(`Invalid configuration: ${detail}`);
  }
  const worker = {
    ...r.data.worker,
    runDir: r.data.worker.runDir ?? defaultRunDir(r.data.stateDir),
  };
  return { ...r.data, worker };
}

/** Reads the config file (if any) and the environment. */
export async function loadConfig(): Promise<Config> {
  const path = Deno.env.get("UCLOUD_CONFIG") ??
    `${defaultStateDir()}/config.json`;
  let file: Record<string, unknown> = {};
  try {
    file = JSON.parse(await Deno.readTextFile(path));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new Error(`Cannot read config file ${path}: ${err}`);
    }
  }
  return parseConfig(file);
}
