/**
 * What placement counts: a VM's need (CPUs, memory, local disk, public
 * bridges), what a host offers (`effective()`: its capacity with its
 * allocation ratios and memory reserve), its reservations (the sums in
 * `alloc/<host>`, each VM's entry in `allocvm/<host>/<vm>`) and what is
 * left. Pure arithmetic over the documents; the filters
 * (feasible.ts), ranking (rank.ts) and selection (select.ts) are built on
 * it, and so are drains and rebalancing, which place through them.
 *
 * @example
 * ```ts
 * const need = needOf(vm);
 * const offers = effective(host); // { cpus, memoryMiB, diskMiB? }
 * const left = free({ host, alloc }); // the same less reservations
 * const next = reserve(alloc, need); // alloc/<host> with the VM
 * ```
 */
import type { Alloc, AllocEntry, Host, Vm } from "../core/schemas.ts";

/** A host as placement sees it: its document, liveness and reservations. */
export interface Candidate {
  host: Host;
  /** The host's incarnation is serving (`serving()` of its `alive/`). */
  alive: boolean;
  alloc: Alloc | null;
  /** This process has a reservation write for the host in flight. */
  busy?: boolean;
  /** `usage(alloc)`, when the caller has it precomputed. */
  used?: Need;
}

/** What a VM asks of its host. */
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

/** The sums of a host without reservations. */
export const NO_ALLOC: Alloc = {
  cpus: 0,
  memoryMiB: 0,
  diskMiB: 0,
  count: 0,
  vms: {},
};

/** What a VM with `need` reserves: its `allocvm/<host>/<vm>` entry. */
export function sizeOf(need: Need): AllocEntry {
  return {
    cpus: need.cpus,
    memoryMiB: need.memoryMiB,
    ...(need.diskMiB ? { diskMiB: need.diskMiB } : {}),
  };
}

/** The host's reservation sums with one VM of `need` added. */
export function reserve(alloc: Alloc | null, need: Need): Alloc {
  const a = alloc ?? NO_ALLOC;
  const e = sizeOf(need);
  return {
    ...a,
    cpus: a.cpus + e.cpus,
    memoryMiB: a.memoryMiB + e.memoryMiB,
    diskMiB: a.diskMiB + (e.diskMiB ?? 0),
    count: a.count + 1,
  };
}

/**
 * The host's reservation sums without the VM whose entry is `entry`
 * (never below zero).
 */
export function release(alloc: Alloc | null, entry: AllocEntry): Alloc {
  const a = alloc ?? NO_ALLOC;
  return {
    ...a,
    cpus: Math.max(0, a.cpus - entry.cpus),
    memoryMiB: Math.max(0, a.memoryMiB - entry.memoryMiB),
    diskMiB: Math.max(0, a.diskMiB - (entry.diskMiB ?? 0)),
    count: Math.max(0, a.count - 1),
  };
}

/**
 * What a host's reservations use: the sums, plus the entries an older
 * version kept in the document (`diskMiB` only when reserved).
 */
export function usage(alloc: Alloc | null): Need & { vms: number } {
  const a = alloc ?? NO_ALLOC;
  let cpus = a.cpus, memoryMiB = a.memoryMiB, diskMiB = a.diskMiB;
  const legacy = Object.values(a.vms);
  for (const v of legacy) {
    cpus += v.cpus;
    memoryMiB += v.memoryMiB;
    diskMiB += v.diskMiB ?? 0;
  }
  return {
    cpus,
    memoryMiB,
    ...(diskMiB ? { diskMiB } : {}),
    vms: a.count + legacy.length,
  };
}

/**
 * What a host offers to placement: `cpus × cpuRatio` whole cores and
 * `(memoryMiB − reservedMemoryMiB) × memoryRatio` MiB (never below 0), and
 * its local disk as it is; a host without `allocation` offers its capacity.
 */
export function effective(host: Host): Omit<Need, "bridges"> {
  const { cpus, memoryMiB, diskMiB } = host.capacity;
  const a = host.allocation ?? {
    cpuRatio: 1,
    memoryRatio: 1,
    reservedMemoryMiB: 0,
  };
  return {
    cpus: Math.floor(cpus * a.cpuRatio + 1e-9),
    memoryMiB: Math.max(
      0,
      Math.floor((memoryMiB - a.reservedMemoryMiB) * a.memoryRatio + 1e-9),
    ),
    ...(diskMiB !== undefined ? { diskMiB } : {}),
  };
}

/** What is left on a host (`effective()` less reservations). */
export function free(c: Pick<Candidate, "host" | "alloc" | "used">): Need {
  const used = c.used ?? usage(c.alloc);
  const cap = effective(c.host);
  return {
    cpus: cap.cpus - used.cpus,
    memoryMiB: cap.memoryMiB - used.memoryMiB,
    ...(cap.diskMiB !== undefined
      ? { diskMiB: cap.diskMiB - (used.diskMiB ?? 0) }
      : {}),
  };
}
