/**
 * Placement policy: which host gets a VM. Pure; the caller reads the
 * documents (or takes them from the placement cache) and writes the
 * reservation in a transaction comparing the host's `alloc/` revision.
 *
 * Only live (an `alive/` document exists), active hosts with room are
 * considered. `spread` (the default) picks the host with the most room
 * left, `pack` the one with the least room that still fits; both judge
 * room by one normalized score over CPUs, memory and, where the host
 * tracks local disk, disk. Near-ties are broken at random (for spread: two
 * random hosts of the best few, the freer wins), so concurrent placers
 * rarely pick the same host and lose the compare to each other. Hosts
 * marked `busy` (this process is already writing their reservation) are
 * used only when nothing else fits.
 *
 * @example
 * ```ts
 * const r = choose(candidates, { cpus: 1, memoryMiB: 128 }, "spread");
 * if ("host" in r) reserve(r.host); else console.log(r.reason);
 * ```
 */
import type { Alloc, Host, Vm } from "../core/schemas.ts";

export type Policy = "spread" | "pack";
export const POLICIES: readonly Policy[] = ["spread", "pack"];

export interface Candidate {
  host: Host;
  alive: boolean;
  alloc: Alloc | null;
  /** This process has a reservation write for the host in flight. */
  busy?: boolean;
  /** `usage(alloc)`, when the caller has it precomputed. */
  used?: Need;
}

export interface Need {
  cpus: number;
  memoryMiB: number;
  /** Local disk, counted only on hosts whose capacity names `diskMiB`. */
  diskMiB?: number;
  /** Public bridges the host must have (NICs in public networks). */
  bridges?: string[];
}

/** What a VM reserves on its host. */
export function needOf(vm: Vm): Need {
  const need: Need = { cpus: vm.spec.cpus, memoryMiB: vm.spec.memory };
  if (vm.spec.disk) need.diskMiB = vm.spec.disk * 1024;
  const bridges = [
    ...new Set((vm.nics ?? []).flatMap((n) => n.bridge ? [n.bridge] : [])),
  ];
  if (bridges.length) need.bridges = bridges;
  return need;
}

/** The host's reservation document with `vm` added (or replaced). */
export function reserve(alloc: Alloc | null, vm: string, need: Need): Alloc {
  const { bridges: _, ...size } = need;
  return { vms: { ...alloc?.vms, [vm]: size } };
}

/** Scores closer than this (a fraction of capacity) count as a tie. */
export const NEAR_TIE = 0.05;

/** Sums what a host's reservations use (`diskMiB` only when reserved). */
export function usage(alloc: Alloc | null): Need & { vms: number } {
  let cpus = 0, memoryMiB = 0, diskMiB = 0;
  const vms = Object.values(alloc?.vms ?? {});
  for (const v of vms) {
    cpus += v.cpus;
    memoryMiB += v.memoryMiB;
    diskMiB += v.diskMiB ?? 0;
  }
  return { cpus, memoryMiB, ...(diskMiB ? { diskMiB } : {}), vms: vms.length };
}

/** What is left on a host; `diskMiB` only when the host tracks disk. */
export function free(c: Pick<Candidate, "host" | "alloc" | "used">): Need {
  const used = c.used ?? usage(c.alloc);
  const cap = c.host.capacity;
  return {
    cpus: cap.cpus - used.cpus,
    memoryMiB: cap.memoryMiB - used.memoryMiB,
    ...(cap.diskMiB !== undefined
      ? { diskMiB: cap.diskMiB - (used.diskMiB ?? 0) }
      : {}),
  };
}

/** True when `need` fits in what the host has left. */
export function fits(
  c: Pick<Candidate, "host" | "alloc" | "used">,
  need: Need,
): boolean {
  const f = free(c);
  return f.cpus >= need.cpus && f.memoryMiB >= need.memoryMiB &&
    (f.diskMiB === undefined || f.diskMiB >= (need.diskMiB ?? 0)) &&
    hasBridges(c.host, need);
}

/** True when the host has every public bridge `need` names. */
export function hasBridges(host: Host, need: Need): boolean {
  return (need.bridges ?? []).every((b) =>
    host.publicBridges?.includes(b) ?? false
  );
}

/** Usable for placement at all: alive and active. */
export function isLive(c: Candidate): boolean {
  return c.alive && c.host.state === "active";
}

/**
 * The share of the host left free after placing `need`, 0..1, averaged
 * over CPUs, memory and (when tracked) disk.
 */
export function score(
  c: Pick<Candidate, "host" | "alloc" | "used">,
  need: Need,
): number {
  const f = free(c);
  const cap = c.host.capacity;
  const parts = [
    (f.cpus - need.cpus) / Math.max(1, cap.cpus),
    (f.memoryMiB - need.memoryMiB) / Math.max(1, cap.memoryMiB),
  ];
  if (f.diskMiB !== undefined && cap.diskMiB) {
    parts.push((f.diskMiB - (need.diskMiB ?? 0)) / cap.diskMiB);
  }
  return parts.reduce((s, x) => s + x, 0) / parts.length;
}

/** Picks a host for `need` under `policy`, or explains why none fits. */
export function choose(
  candidates: Candidate[],
  need: Need,
  policy: Policy = "spread",
  rand: () => number = Math.random,
): { host: string } | { reason: string } {
  const live = candidates.filter(isLive);
  const fitting = live.filter((c) => fits(c, need));
  if (fitting.length === 0) return { reason: noFitReason(candidates, need) };
  const idle = fitting.filter((c) => !c.busy);
  const pool = idle.length ? idle : fitting;
  const sign = policy === "pack" ? -1 : 1;
  const scored = pool.map((c) => ({ c, s: sign * score(c, need) }))
    .sort((a, b) => b.s - a.s);
  const best = scored[0].s;
  const ties = scored.filter((x) => best - x.s <= NEAR_TIE);
  const at = (n: number) => Math.min(n - 1, Math.floor(rand() * n));
  let pick = ties[at(ties.length)];
  if (policy === "spread" && ties.length > 1) {
    const other = ties[at(ties.length)];
    if (other.s > pick.s) pick = other;
  }
  return { host: pick.c.host.name };
}

/** Why `need` fits on no host, with what the roomiest host has left. */
export function noFitReason(candidates: Candidate[], need: Need): string {
  const live = candidates.filter(isLive);
  if (live.length === 0) {
    if (candidates.length === 0) return "no live host is registered";
    const dead = candidates.filter((c) => !c.alive).length;
    const draining = candidates.filter((c) =>
      c.alive && c.host.state !== "active"
    ).length;
    return `no live host is registered (${candidates.length} registered: ` +
      `${dead} not alive, ${draining} draining)`;
  }
  if (!live.some((c) => hasBridges(c.host, need))) {
    return `no live host has the public bridge(s) ${
      need.bridges!.join(", ")
    } (network.publicBridges)`;
  }
  const wants = [
    `${need.cpus} free CPU(s)`,
    `${need.memoryMiB} MiB free memory`,
    ...(need.diskMiB ? [`${need.diskMiB} MiB free disk`] : []),
  ];
  const roomiest = live.map((c) => ({ c, f: free(c), s: score(c, need) }))
    .sort((a, b) => b.s - a.s || a.c.host.name.localeCompare(b.c.host.name))[
      0
    ];
  const f = roomiest.f;
  const largest = `${f.cpus} CPU(s), ${f.memoryMiB} MiB` +
    (f.diskMiB !== undefined ? `, ${f.diskMiB} MiB disk` : "") +
    ` on ${roomiest.c.host.name}`;
  const others = candidates.length - live.length;
  const short = shortOf(live, need);
  return `no live host has ${wants.join(" and ")} ` +
    `(${live.length} host(s) checked${
      others ? `, ${others} down or draining` : ""
    }; largest free: ${largest}${short})`;
}

/**
 * When disk is what keeps `need` off hosts: "; short of disk on N host(s)"
 * (N: live hosts whose free disk is too small), else "".
 */
function shortOf(live: Candidate[], need: Need): string {
  if (!need.diskMiB) return "";
  const n = live.filter((c) => {
    const f = free(c);
    return f.diskMiB !== undefined && f.diskMiB < need.diskMiB!;
  }).length;
  return n ? `; short of disk on ${n} host(s)` : "";
}
