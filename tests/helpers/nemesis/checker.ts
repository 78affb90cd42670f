/**
 * The nemesis checker's verdict on one final look at the cluster: every key
 * under the prefix (one etcd range, one revision) and every VM process,
 * against what the workload asked for. Pure: no I/O, so each rule is
 * tested on fixtures (checker_test.ts).
 *
 * - lost: a VM or network the workload created and did not delete is
 *   missing from etcd (or answered 404 during the run); one it deleted
 *   still exists or still runs; `desired` in etcd is not what the workload
 *   last set; a placed VM without its reservation (`allocvm/`); a NIC
 *   without its `ipam/` entries; a network without its VNI or /64 entry; a
 *   VM without its owner index entry (`vmowner/<owner>/<vm>`).
 * - leaked: an `alloc/`, `allocvm/`, `claim/`, `queue/`, `ipam/`, `netmember/`,
 *   `netvm/` or `vmowner/` key, or a name in a network's `vms`, that belongs to no live
 *   document (or to another than it names); sums in `alloc/<host>` above
 *   those of its entries (below: lost); a VM or network nobody created; a VM
 *   process of a VM that does not exist or is placed on another host.
 * - stuck: a VM not in its desired state (running: phase running and one
 *   process, on its host; stopped: phase stopped, no process); a task
 *   still queued or running; a host whose worker has not registered again
 *   (no `alive/<host>`).
 *
 * @example
 * ```ts
 * const violations = check({ kv: await dump(store), procs: vmProcs(root, "sim") },
 *   { vms: [{ id, desired: "running" }], networks: [] });
 * ```
 */
import { checkNetworks } from "./checker_net.ts";
import {
  describeProcs,
  describeVm,
  docs,
  type NetDoc,
  type TaskDoc,
  type VmDoc,
} from "./docs.ts";
import type { VmProc } from "./procs.ts";

export type ViolationKind = "double run" | "lost" | "leaked" | "stuck";

export interface Violation {
  kind: ViolationKind;
  /** What it is about: `vm vm-1`, `key alloc/h1`, `task t-1`. */
  subject: string;
  detail: string;
}

/** What the workload expects of one VM. */
export interface VmExpectation {
  id: string;
  desired: "running" | "stopped" | "deleted";
  /** It answered 404 before the workload deleted it (with when). */
  vanished?: boolean;
  history?: string[];
}

export interface NetExpectation {
  id: string;
  deleted: boolean;
}

export interface Expectations {
  vms: readonly VmExpectation[];
  networks: readonly NetExpectation[];
  /** Hosts that must be registered (`alive/<host>`) at the end. */
  hosts?: readonly string[];
}

/** Every key (relative to the prefix) with its raw value, and processes. */
export interface Snapshot {
  kv: Record<string, string>;
  procs: readonly VmProc[];
}

/**
 * Null when the VM is in its desired state, else why not. Running means
 * phase running and exactly one process, on the VM's host.
 */
export function vmVerdict(
  desired: VmExpectation["desired"],
  vm: VmDoc | undefined,
  procs: readonly VmProc[],
): string | null {
  const seen = `${describeVm(vm)}; ${describeProcs(procs)}`;
  if (desired === "deleted") {
    if (vm) return `deleted, but still in etcd: ${seen}`;
    return procs.length === 0
      ? null
      : `deleted and gone from etcd, but it still runs: ${
        describeProcs(procs)
      }`;
  }
  if (!vm) return `should be ${desired}, but it is absent from etcd`;
  if (desired === "running") {
    const ok = vm.status.phase === "running" && procs.length === 1 &&
      procs[0].host === vm.status.host;
    return ok ? null : `should run, but ${seen}`;
  }
  const ok = vm.status.phase === "stopped" && procs.length === 0;
  return ok ? null : `should be stopped, but ${seen}`;
}

/** The VM documents of a snapshot, by id. */
export function vmDocs(kv: Record<string, string>): Map<string, VmDoc> {
  return docs<VmDoc>(kv, "vm/");
}

/** Processes by VM id. */
export function procsByVm(procs: readonly VmProc[]): Map<string, VmProc[]> {
  const out = new Map<string, VmProc[]>();
  for (const p of procs) out.set(p.vm, [...(out.get(p.vm) ?? []), p]);
  return out;
}

/** Every lost, leaked and stuck finding of one snapshot. */
export function check(snap: Snapshot, want: Expectations): Violation[] {
  const out: Violation[] = [];
  const add = (kind: ViolationKind, subject: string, detail: string) =>
    out.push({ kind, subject, detail });
  const { kv } = snap;
  const vms = vmDocs(kv);
  const tasks = docs<TaskDoc>(kv, "task/");
  const nets = docs<NetDoc>(kv, "network/");
  const procs = procsByVm(snap.procs);
  const known = new Set(want.vms.map((v) => v.id));

  // VMs against the workload.
  for (const w of want.vms) {
    const vm = vms.get(w.id);
    const ps = procs.get(w.id) ?? [];
    const subject = `vm ${w.id}`;
    if (w.vanished) {
      add(
        "lost",
        subject,
        `answered 404 before the workload deleted it; now ${describeVm(vm)}`,
      );
    } else if (w.desired === "deleted") {
      const why = vmVerdict("deleted", vm, ps);
      if (why) add("lost", subject, why);
    } else if (!vm) {
      add(
        "lost",
        subject,
        `created and not deleted, but missing from etcd; ${describeProcs(ps)}`,
      );
    } else if (vm.desired !== w.desired) {
      add(
        "lost",
        subject,
        `desired is ${vm.desired} in etcd, the workload last set ${w.desired}`,
      );
    } else {
      const why = vmVerdict(w.desired, vm, ps);
      if (why) add("stuck", subject, why);
    }
  }
  for (const [id, vm] of vms) {
    if (!known.has(id)) {
      add("leaked", `vm ${id}`, `nobody created it: ${describeVm(vm)}`);
    }
  }
  for (const [id, ps] of procs) {
    const vm = vms.get(id);
    if (!known.has(id) && !vm) {
      add(
        "leaked",
        `process of vm ${id}`,
        `${describeProcs(ps)}, for a VM that does not exist`,
      );
      continue;
    }
    const stray = ps.filter((p) => vm && p.host !== vm.status.host);
    if (stray.length) {
      add(
        "leaked",
        `process of vm ${id}`,
        `${describeProcs(stray)}, but the VM is ${describeVm(vm)}`,
      );
    }
  }

  // Reservations: allocvm/<host>/<vm> entries (and those an older version
  // kept in alloc/<host>) name VMs placed there, and back; the sums in
  // alloc/<host> are those of its entries.
  type Size = { cpus?: number; memoryMiB?: number; diskMiB?: number };
  const allocs = docs<Size & { count?: number; vms?: Record<string, Size> }>(
    kv,
    "alloc/",
  );
  const reserved = new Map<string, Map<string, Size>>();
  const reserve = (host: string, id: string, size: Size, key: string) => {
    const on = reserved.get(host) ?? new Map<string, Size>();
    reserved.set(host, on);
    on.set(id, size);
    const vm = vms.get(id);
    if (vm?.status.host !== host) {
      add(
        "leaked",
        `key ${key}`,
        `reserves vm ${id}, which is ${describeVm(vm)}`,
      );
    }
  };
  for (const [host, alloc] of allocs) {
    for (const [id, size] of Object.entries(alloc.vms ?? {})) {
      // `~sums:<count>` repeats the sums for an older version.
      if (!id.startsWith("~")) reserve(host, id, size, `alloc/${host}`);
    }
  }
  for (const [rest, size] of docs<Size>(kv, "allocvm/")) {
    const [host, id] = rest.split("/");
    reserve(host, id, size, `allocvm/${rest}`);
  }
  for (const [host, alloc] of allocs) {
    const entries = [...(reserved.get(host) ?? new Map()).entries()]
      .filter(([id]) => !(id in (alloc.vms ?? {})))
      .map(([, size]) => size);
    const sum = (f: keyof Size) => entries.reduce((n, e) => n + (e[f] ?? 0), 0);
    const want = [
      sum("cpus"),
      sum("memoryMiB"),
      sum("diskMiB"),
      entries.length,
    ];
    const have = [alloc.cpus, alloc.memoryMiB, alloc.diskMiB, alloc.count]
      .map((x) => x ?? 0);
    if (want.some((w, i) => w !== have[i])) {
      add(
        have[0] < want[0] || have[1] < want[1] ? "lost" : "leaked",
        `key alloc/${host}`,
        `sums cpus/memoryMiB/diskMiB/count ${have.join("/")}, its entries ${
          want.join("/")
        }`,
      );
    }
  }
  for (const [id, vm] of vms) {
    const host = vm.status.host;
    if (host && !reserved.get(host)?.has(id)) {
      add(
        "lost",
        `vm ${id}`,
        `placed on ${host} without a reservation (allocvm/${host}/${id})`,
      );
    }
  }

  // The owner index names every VM under its owner, and nothing else.
  const indexed = new Set<string>();
  for (const k of Object.keys(kv)) {
    if (!k.startsWith("vmowner/")) continue;
    const [owner, id] = k.slice("vmowner/".length).split("/");
    indexed.add(`${decodeURIComponent(owner)}/${id}`);
    const vm = vms.get(id);
    if (vm?.owner !== decodeURIComponent(owner)) {
      add(
        "leaked",
        `key ${k}`,
        `the VM is ${vm ? `owned by ${vm.owner}` : "absent"}`,
      );
    }
  }
  for (const [id, vm] of vms) {
    if (!indexed.has(`${vm.owner}/${id}`)) {
      add("lost", `vm ${id}`, `no owner index entry vmowner/${vm.owner}/${id}`);
    }
  }

  // Claims and queue entries name unfinished tasks; no task is unfinished.
  for (const [id] of docs<unknown>(kv, "claim/")) {
    const t = tasks.get(id);
    if (t?.state !== "running") {
      add("leaked", `key claim/${id}`, `the task is ${t ? t.state : "absent"}`);
    }
  }
  for (const k of Object.keys(kv)) {
    if (!k.startsWith("queue/")) continue;
    const [target, id] = k.slice("queue/".length).split("/");
    const t = tasks.get(id);
    if (
      !t || (t.state !== "queued" && t.state !== "running") ||
      t.target !== target
    ) {
      add(
        "leaked",
        `key ${k}`,
        t
          ? `task ${t.kind} is ${t.state}, target ${t.target}`
          : "the task is absent",
      );
    }
  }
  for (const [id, t] of tasks) {
    if (t.state !== "queued" && t.state !== "running") continue;
    const vm = typeof t.payload.vm === "string" ? ` vm ${t.payload.vm}` : "";
    const host = typeof t.payload.host === "string"
      ? ` host ${t.payload.host}`
      : "";
    add(
      "stuck",
      `task ${id}`,
      `${t.kind}${vm}${host} is still ${t.state} (target ${t.target}, attempt ${t.attempts}/${t.maxAttempts}${
        t.error ? `, last error "${t.error}"` : ""
      }${t.progress ? `, progress "${t.progress}"` : ""})`,
    );
  }

  for (const h of want.hosts ?? []) {
    if (!(`alive/${h}` in kv)) {
      add("stuck", `host ${h}`, `not registered at the end: no alive/${h} key`);
    }
  }

  checkNetworks(kv, vms, nets, want, add);
  return out;
}
