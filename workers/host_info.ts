/**
 * What a worker tells the cluster about its host: cores, memory and (when VM
 * disks are local) disk read from the machine (overridable in config), what
 * it offers to placement (allocation ratios and memory reserve, from
 * config), addresses, OS, drivers.
 *
 * @example
 * ```ts
 * const info = await hostInfo({ name: "h1", stateDir: "/var/lib/ucloud" });
 * ```
 */
import { run } from "../drivers/runner.ts";
import type { Host } from "../core/schemas.ts";

/** Total memory in MiB from /proc/meminfo. */
export async function memoryMiB(path = "/proc/meminfo"): Promise<number> {
  const text = await Deno.readTextFile(path);
  const m = text.match(/^MemTotal:\s+(\d+) kB/m);
  if (!m) throw new Error(`Cannot read MemTotal from ${path}`);
  return Math.floor(Number(m[1]) / 1024);
}

/**
 * The size in MiB (used + available, without blocks reserved for root) of
 * the filesystem holding `path`, from `df -P -m`.
 */
export async function diskMiB(
  path: string,
  opts: { signal?: AbortSignal } = {},
): Promise<number> {
  const { stdout } = await run("df", ["-P", "-m", path], {
    timeoutMs: 10_000,
    signal: opts.signal,
  });
  return parseDf(stdout, path);
}

/** Used + available MiB from the data line of `df -P -m` output. */
export function parseDf(stdout: string, path = "?"): number {
  // POSIX format: header, then "fs blocks used available capacity% mount";
  // a long filesystem name may wrap the line, so join before matching.
  const line = stdout.trim().split("\n").slice(1).join(" ");
  const m = line.match(/\s(\d+)\s+(\d+)\s+(\d+)\s+(\d+|-)%?\s+\/.*$/);
  if (!m) throw new Error(`Cannot read the size of ${path} from df: ${stdout}`);
  return Number(m[2]) + Number(m[3]);
}

/** This host's addresses: every interface's but loopback and link-local. */
export function hostAddresses(): string[] {
  return [
    ...new Set(
      Deno.networkInterfaces()
        .filter((i) => !i.address.startsWith("127.") && i.address !== "::1")
        .filter((i) => !i.address.startsWith("fe80"))
        .map((i) => i.address),
    ),
  ];
}

export async function hostInfo(opts: {
  name: string;
  cpus?: number;
  memoryMiB?: number;
  /** Local disk for VMs in MiB; default: the size of `stateDir`'s filesystem. */
  diskMiB?: number;
  /** Where VM disks live when they are local. */
  stateDir?: string;
  /** VM disks are on this host (file store): report disk. Default true. */
  localDisk?: boolean;
  drivers?: string[];
  /** Allocation ratios and memory reserve (`scheduler.*` of the config). */
  allocation?: Host["allocation"];
  signal?: AbortSignal;
}): Promise<Omit<Host, "state" | "registeredAt">> {
  const addresses = hostAddresses();
  return {
    name: opts.name,
    capacity: {
      cpus: opts.cpus ?? navigator.hardwareConcurrency,
      memoryMiB: opts.memoryMiB ?? await memoryMiB(),
      ...(await localDisk(opts)),
    },
    ...(opts.allocation ? { allocation: opts.allocation } : {}),
    addresses,
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    drivers: opts.drivers ?? ["qemu"],
  };
}

async function localDisk(
  opts: Parameters<typeof hostInfo>[0],
): Promise<{ diskMiB?: number }> {
  if (opts.localDisk === false) return {};
  if (opts.diskMiB !== undefined) return { diskMiB: opts.diskMiB };
  if (opts.stateDir === undefined) return {};
  return { diskMiB: await diskMiB(opts.stateDir, { signal: opts.signal }) };
}
