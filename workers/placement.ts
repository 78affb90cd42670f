/**
 * First-fit placement: the first live, active host (by name) with enough
 * free cores and memory. Pure; the caller reads the documents and writes
 * the reservation in a transaction comparing the host's `alloc/` revision.
 *
 * @example
 * ```ts
 * const r = firstFit(hosts, { cpus: 1, memoryMiB: 128 });
 * if ("host" in r) reserve(r.host); else console.log(r.reason);
 * ```
 */
import type { Alloc, Host } from "../core/schemas.ts";

export interface Candidate {
  host: Host;
  alive: boolean;
  alloc: Alloc | null;
}

export interface Need {
  cpus: number;
  memoryMiB: number;
}

/** Sums what a host's reservations use. */
export function usage(alloc: Alloc | null): Need & { vms: number } {
  const vms = Object.values(alloc?.vms ?? {});
  return {
    cpus: vms.reduce((s, v) => s + v.cpus, 0),
    memoryMiB: vms.reduce((s, v) => s + v.memoryMiB, 0),
    vms: vms.length,
  };
}

/** Picks a host or explains why none fits. */
export function firstFit(
  candidates: Candidate[],
  need: Need,
): { host: string } | { reason: string } {
  const live = candidates.filter((c) => c.alive && c.host.state === "active")
    .sort((a, b) => a.host.name.localeCompare(b.host.name));
  for (const c of live) {
    const used = usage(c.alloc);
    if (
      used.cpus + need.cpus <= c.host.capacity.cpus &&
      used.memoryMiB + need.memoryMiB <= c.host.capacity.memoryMiB
    ) return { host: c.host.name };
  }
  return {
    reason: live.length === 0
      ? "no live host is registered"
      : `no live host has ${need.cpus} free CPU(s) and ${need.memoryMiB} MiB free memory (${live.length} host(s) checked)`,
  };
}
