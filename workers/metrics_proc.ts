/**
 * What the kernel tells the worker's `/metrics` (workers/metrics.ts) from
 * /proc: a VM process's CPU time and resident memory (checked to be the
 * process of the VM's pidfile, so a reused pid is never counted), the
 * host's load averages, memory, CPU times and disk use (statfs). Each read is one small file.
 *
 * @example
 * ```ts
 * const p = await processStats(handle.pid, handle.pidfile);
 * p?.cpuSeconds; // user + system time so far
 * ```
 */
import { statfs } from "node:fs/promises";

/** Clock ticks per second of /proc times (USER_HZ, 100 on Linux). */
const TICKS = 100;
/** Bytes per page of /proc's RSS (x86-64 and arm64 with 4 KiB pages). */
const PAGE = 4096;

/** A VM process as the kernel counts it. */
export interface ProcessStats {
  /** User + system CPU time so far, in seconds. */
  cpuSeconds: number;
  /** Resident set size in bytes. */
  rssBytes: number;
}

/**
 * The CPU time and RSS of `pid`, or null when it is gone, a zombie, or not
 * the process whose command line names `pidfile`.
 */
export async function processStats(
  pid: number,
  pidfile: string,
): Promise<ProcessStats | null> {
  try {
    const [stat, cmdline] = await Promise.all([
      Deno.readTextFile(`/proc/${pid}/stat`),
      Deno.readTextFile(`/proc/${pid}/cmdline`),
    ]);
    if (!cmdline.split("\0").some((a) => a.includes(pidfile))) return null;
    return parseStat(stat);
  } catch {
    return null;
  }
}

/** CPU seconds and RSS from a `/proc/<pid>/stat` line; null for a zombie. */
export function parseStat(stat: string): ProcessStats | null {
  // "<pid> (<comm>) <state> ...": comm may hold spaces and parentheses.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // f[0] is field 3 (state): utime is field 14, stime 15, rss 24.
  if (f[0] === "Z" || f[0] === "X") return null;
  return {
    cpuSeconds: (Number(f[11]) + Number(f[12])) / TICKS,
    rssBytes: Number(f[21]) * PAGE,
  };
}

/** The host's 1, 5 and 15 minute load averages. */
export async function loadAverages(): Promise<[number, number, number]> {
  const [a, b, c] = (await Deno.readTextFile("/proc/loadavg")).split(" ");
  return [Number(a), Number(b), Number(c)];
}

/** The kernel's MemTotal and MemAvailable in bytes. */
export async function memInfo(): Promise<
  { totalBytes: number; availableBytes: number }
> {
  const text = await Deno.readTextFile("/proc/meminfo");
  const kb = (k: string) =>
    Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0) *
    1024;
  return { totalBytes: kb("MemTotal"), availableBytes: kb("MemAvailable") };
}

/**
 * The filesystem holding `dir` (the worker's state directory: VM disks and
 * images): its size, the bytes in use and those still free for this user.
 */
export async function diskUse(dir: string): Promise<
  { sizeBytes: number; usedBytes: number; availableBytes: number }
> {
  const f = await statfs(dir);
  return {
    sizeBytes: f.blocks * f.bsize,
    usedBytes: (f.blocks - f.bfree) * f.bsize,
    availableBytes: f.bavail * f.bsize,
  };
}

/** The modes of the first line of /proc/stat, in order. */
const CPU_MODES = [
  "user",
  "nice",
  "system",
  "idle",
  "iowait",
  "irq",
  "softirq",
  "steal",
] as const;

/** CPU seconds of all cores by mode since boot (/proc/stat). */
export async function cpuTimes(): Promise<Map<string, number>> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n", 1)[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  return new Map(CPU_MODES.map((m, i) => [m, (f[i] ?? 0) / TICKS]));
}
