/**
 * What a worker tells the cluster about its host: cores and memory read from
 * the machine (overridable in config), addresses, OS, drivers.
 *
 * @example
 * ```ts
 * const info = await hostInfo({ name: "h1" });
 * ```
 */
import type { Host } from "../core/schemas.ts";

/** Total memory in MiB from /proc/meminfo. */
export async function memoryMiB(path = "/proc/meminfo"): Promise<number> {
  const text = await Deno.readTextFile(path);
  const m = text.match(/^MemTotal:\s+(\d+) kB/m);
  if (!m) throw new Error(`Cannot read MemTotal from ${path}`);
  return Math.floor(Number(m[1]) / 1024);
}

export async function hostInfo(opts: {
  name: string;
  cpus?: number;
  memoryMiB?: number;
  drivers?: string[];
}): Promise<Omit<Host, "state" | "registeredAt">> {
  const addresses = Deno.networkInterfaces()
    .filter((i) => !i.address.startsWith("127.") && i.address !== "::1")
    .filter((i) => !i.address.startsWith("fe80"))
    .map((i) => i.address);
  return {
    name: opts.name,
    capacity: {
      cpus: opts.cpus ?? navigator.hardwareConcurrency,
      memoryMiB: opts.memoryMiB ?? await memoryMiB(),
    },
    addresses: [...new Set(addresses)],
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    drivers: opts.drivers ?? ["qemu"],
  };
}
