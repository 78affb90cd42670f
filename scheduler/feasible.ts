/**
 * Feasibility: which hosts may take a VM at all, and why none does. A
 * host is usable when its incarnation serves (an `alive/` document exists
 * and is not handing over: `serving()`), it is active (not draining, which
 * also covers a host in an ordered shutdown: it drains first), it has
 * room for the VM's CPUs, memory and, where it tracks local disk, disk,
 * and it has every public bridge the VM's NICs name. Pure.
 *
 * @example
 * ```ts
 * const usable = feasible(candidates, need);
 * if (usable.length === 0) console.log(noFitReason(candidates, need));
 * ```
 */
import { type Candidate, free, type Need } from "./resources.ts";
import { score } from "./rank.ts";

/** Usable for placement at all: alive and active. */
export function isLive(c: Candidate): boolean {
  return c.alive && c.host.state === "active";
}

/** True when the host has every public bridge `need` names. */
export function hasBridges(host: Candidate["host"], need: Need): boolean {
  return (need.bridges ?? []).every((b) =>
    host.publicBridges?.includes(b) ?? false
  );
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

/** The live, active candidates `need` fits on. */
export function feasible(candidates: Candidate[], need: Need): Candidate[] {
  return candidates.filter(isLive).filter((c) => fits(c, need));
}

/** Candidates without the host named by `avoid` (a VM moving off it). */
export function without(candidates: Candidate[], avoid?: string): Candidate[] {
  return avoid === undefined
    ? candidates
    : candidates.filter((c) => c.host.name !== avoid);
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
