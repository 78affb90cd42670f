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

/**
 * The prefix of the one entry in `alloc/<host>.vms` that repeats the sums
 * for a version before them (`~sums:<count>`: the key keeps the count).
 * That version counts it as one VM of the total, so it sees what the host
 * holds, and keeps it when it rewrites the document as `{vms}` only
 * (dropping the sums' own fields): the entry then is the sums.
 */
export const SUMS_ENTRY = "~sums:";

/** A host's reservation sums. */
export type Sums = Pick<Alloc, "cpus" | "memoryMiB" | "diskMiB" | "count">;

/**
 * The sums of `alloc` (from its `~sums:` entry when it has one, which an
 * older version's rewrite keeps) and the entries an older version kept
 * in its `vms`.
 */
export function sumsOf(
  alloc: Alloc | null,
): { sums: Sums; legacy: [string, AllocEntry][] } {
  const a = alloc ?? NO_ALLOC;
  let sums: Sums = {
    cpus: a.cpus,
    memoryMiB: a.memoryMiB,
    diskMiB: a.diskMiB,
    count: a.count,
  };
  const legacy: [string, AllocEntry][] = [];
  for (const [id, e] of Object.entries(a.vms)) {
    if (!id.startsWith("~")) legacy.push([id, e]);
    else if (id.startsWith(SUMS_ENTRY)) {
      const count = Number(id.slice(SUMS_ENTRY.length));
      sums = {
        cpus: e.cpus,
        memoryMiB: e.memoryMiB,
        diskMiB: e.diskMiB ?? 0,
        count: Number.isInteger(count) && count >= 0 ? count : a.count,
      };
    }
  }
  return { sums, legacy };
}

/** The ids of the VMs an older version reserved in `alloc.vms`. */
export function legacyIds(alloc: Alloc | null): string[] {
  return sumsOf(alloc).legacy.map(([id]) => id);
}

/**
 * The document `alloc/<host>` for `sums` and the older version's
 * `legacy` entries: the sums' fields, repeated in the `~sums:` entry
 * (none without VMs); other fields of `base` kept.
 */
function withSums(
  base: Alloc,
  sums: Sums,
  legacy: [string, AllocEntry][],
): Alloc {
  const vms = Object.fromEntries(legacy);
  if (sums.count > 0) {
    vms[`${SUMS_ENTRY}${sums.count}`] = {
      cpus: sums.cpus,
      memoryMiB: sums.memoryMiB,
      ...(sums.diskMiB ? { diskMiB: sums.diskMiB } : {}),
    };
  }
  return { ...base, ...sums, vms };
}

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
  const { sums: s, legacy } = sumsOf(a);
  const e = sizeOf(need);
  return withSums(a, {
    cpus: s.cpus + e.cpus,
    memoryMiB: s.memoryMiB + e.memoryMiB,
    diskMiB: s.diskMiB + (e.diskMiB ?? 0),
    count: s.count + 1,
  }, legacy);
}

/**
 * The host's reservation sums without the VM whose entry is `entry`
 * (never below zero).
 */
export function release(alloc: Alloc | null, entry: AllocEntry): Alloc {
  const a = alloc ?? NO_ALLOC;
  const { sums: s, legacy } = sumsOf(a);
  return withSums(a, {
    cpus: Math.max(0, s.cpus - entry.cpus),
    memoryMiB: Math.max(0, s.memoryMiB - entry.memoryMiB),
    diskMiB: Math.max(0, s.diskMiB - (entry.diskMiB ?? 0)),
    count: Math.max(0, s.count - 1),
  }, legacy);
}

/** `alloc` without the entry an older version kept for VM `vm`. */
export function releaseLegacy(alloc: Alloc, vm: string): Alloc {
  const { sums, legacy } = sumsOf(alloc);
  return withSums(alloc, sums, legacy.filter(([id]) => id !== vm));
}

/**
 * What a host's reservations use: the sums, plus the entries an older
 * version kept in the document (`diskMiB` only when reserved).
 */
export function usage(alloc: Alloc | null): Need & { vms: number } {
  const { sums, legacy } = sumsOf(alloc);
  let { cpus, memoryMiB, diskMiB } = sums;
  for (const [, v] of legacy) {
    cpus += v.cpus;
    memoryMiB += v.memoryMiB;
    diskMiB += v.diskMiB ?? 0;
  }
  return {
    cpus,
    memoryMiB,
    ...(diskMiB ? { diskMiB } : {}),
    vms: sums.count + legacy.length,
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
