/**
 * The families of the worker's `/metrics` (workers/metrics.ts), each read
 * from one scrape's snapshot (workers/metrics_snapshot.ts):
 *
 * - host: capacity (`ucloud_host_cpus`, `_memory_bytes`, `_disk_bytes`),
 *   what placement may allocate (`ucloud_host_allocatable_*`), the
 *   reservations (`ucloud_host_reserved_*`), use from the kernel
 *   (`ucloud_host_cpu_seconds_total{mode}`,
 *   `ucloud_host_memory_available_bytes`, the state directory's filesystem
 *   `ucloud_host_filesystem_{size,used,available}_bytes`),
 *   `ucloud_host_load1`/`5`/`15`,
 *   `ucloud_host_vms{phase}`, `ucloud_host_info`;
 * - lease health: `ucloud_lease_keepalive_age_seconds` (since the last
 *   acknowledged keep-alive was sent), `ucloud_lease_deadline_margin_seconds`
 *   (until the worker fences itself), `ucloud_lease_ttl_seconds`;
 * - per VM (`vm`, `name`, `owner`): `ucloud_vm_state{phase}`,
 *   `ucloud_vm_restarts` (crashes within the restart window),
 *   `ucloud_vm_info_virtual_cpus`, `ucloud_vm_info_maximum_memory_bytes`
 *   (configured), `ucloud_vm_info_memory_usage_bytes` (the process's RSS),
 *   `ucloud_vm_cpu_time_seconds_total`, `ucloud_vm_block_{read,write}_
 *   {bytes,requests}_total{device}` (QMP), `ucloud_vm_interface_{receive,
 *   transmit}_{bytes,packets,drops,errors}_total{interface,network}` (the
 *   tap's counters from the guest's side, as libvirt reports them: what
 *   the tap sends, the guest receives), `ucloud_vm_firewall_dropped_
 *   {packets,bytes}_total{interface,network,rule}` (the port filter's
 *   rules, drivers/net/nft.ts: a rising `mac-spoof` or `ip6-spoof` is a
 *   spoofing attempt of that VM);
 * - per network: `ucloud_network_{receive,transmit}_{bytes,packets,drops}
 *   _total{network,device,kind}` of its bridge and VXLAN device.
 *
 * @example
 * ```ts
 * for (const f of FAMILIES) console.log(f.name, [...f.read(snapshot)]);
 * ```
 */
import { nicTapName } from "../drivers/net/names.ts";
import { bridgeOf, vxlanOf } from "../drivers/net/names.ts";
import type { LinkCounters } from "../drivers/net/counters.ts";
import { effective, usage } from "../scheduler/resources.ts";
import type { Vm } from "../core/schemas.ts";
import { VmPhase } from "../core/schemas.ts";
import type { Snapshot } from "./metrics_snapshot.ts";

/** One series: its labels and value. */
export type Sample = [Record<string, string>, number];

/** One metric family and how it reads a snapshot. */
export interface Family {
  type: "gauge" | "counter";
  name: string;
  help: string;
  labels: string[];
  read: (s: Snapshot) => Iterable<Sample>;
}

const MiB = 1024 * 1024;
const VM = ["vm", "name", "owner"];

function vmLabels(vm: Vm): Record<string, string> {
  return { vm: vm.id, name: vm.spec.name, owner: vm.owner };
}

function gauge(
  name: string,
  help: string,
  read: (s: Snapshot) => number | undefined,
): Family {
  return {
    type: "gauge",
    name,
    help,
    labels: [],
    *read(s) {
      const v = read(s);
      if (v !== undefined && Number.isFinite(v)) yield [{}, v];
    },
  };
}

/** A per-VM family with one series per VM that `read` has a value for. */
function perVm(
  type: Family["type"],
  name: string,
  help: string,
  read: (vm: Vm, s: Snapshot) => number | undefined,
): Family {
  return {
    type,
    name,
    help,
    labels: VM,
    *read(s) {
      for (const vm of s.vms) {
        const v = read(vm, s);
        if (v !== undefined) yield [vmLabels(vm), v];
      }
    },
  };
}

const HOST: Family[] = [
  gauge(
    "ucloud_host_cpus",
    "CPU cores of this host (its document's capacity)",
    (s) => (s.candidate?.host ?? s.host)?.capacity.cpus,
  ),
  gauge(
    "ucloud_host_memory_bytes",
    "Memory of this host (its document's capacity)",
    (s) => mib((s.candidate?.host ?? s.host)?.capacity.memoryMiB),
  ),
  gauge(
    "ucloud_host_disk_bytes",
    "Local disk for VMs of this host (its document's capacity; absent: disks are shared)",
    (s) => mib((s.candidate?.host ?? s.host)?.capacity.diskMiB),
  ),
  ...(["cpus", "memoryMiB", "diskMiB"] as const).flatMap((k) => {
    const unit = k === "cpus" ? "cpus" : `${k.slice(0, -3)}_bytes`;
    const scale = k === "cpus" ? (n?: number) => n : mib;
    return [
      gauge(
        `ucloud_host_allocatable_${unit}`,
        `What placement may reserve on this host (${k}: capacity with allocation ratios and memory reserve)`,
        (s) => {
          const h = s.candidate?.host ?? s.host;
          return h ? scale(effective(h)[k]) : undefined;
        },
      ),
      gauge(
        `ucloud_host_reserved_${unit}`,
        `What the VMs placed here reserve (${k}, the sums of alloc/<host>)`,
        (s) =>
          s.candidate ? scale(usage(s.candidate.alloc)[k] ?? 0) : undefined,
      ),
    ];
  }),
  gauge(
    "ucloud_host_reserved_vms",
    "VMs holding a reservation on this host (alloc/<host>)",
    (s) => s.candidate ? usage(s.candidate.alloc).vms : undefined,
  ),
  {
    type: "counter",
    name: "ucloud_host_cpu_seconds_total",
    help: "CPU time of all cores of this host by mode (/proc/stat)",
    labels: ["mode"],
    *read(s) {
      for (const [mode, v] of s.cpu ?? []) yield [{ mode }, v];
    },
  },
  gauge(
    "ucloud_host_filesystem_size_bytes",
    "Size of the filesystem of the worker's state directory (VM disks, images)",
    (s) => s.disk?.sizeBytes,
  ),
  gauge(
    "ucloud_host_filesystem_used_bytes",
    "Bytes in use on the filesystem of the worker's state directory",
    (s) => s.disk?.usedBytes,
  ),
  gauge(
    "ucloud_host_filesystem_available_bytes",
    "Bytes still free for the worker on the filesystem of its state directory",
    (s) => s.disk?.availableBytes,
  ),
  gauge(
    "ucloud_host_memory_available_bytes",
    "Memory the kernel can give without swapping (MemAvailable)",
    (s) => s.memory?.availableBytes,
  ),
  ...(["1", "5", "15"] as const).map((m, i) =>
    gauge(
      `ucloud_host_load${m}`,
      `Load average over ${m} minute(s) (/proc/loadavg)`,
      (s) => s.load?.[i],
    )
  ),
  {
    type: "gauge",
    name: "ucloud_host_vms",
    help: "VMs of this host by phase (the watched VM documents)",
    labels: ["phase"],
    *read(s) {
      const n = new Map<string, number>(VmPhase.options.map((p) => [p, 0]));
      for (const vm of s.vms) {
        n.set(vm.status.phase, (n.get(vm.status.phase) ?? 0) + 1);
      }
      for (const [phase, v] of n) yield [{ phase }, v];
    },
  },
  {
    type: "gauge",
    name: "ucloud_host_info",
    help: "This host: its name, OS, VM drivers and incarnation (always 1)",
    labels: ["host", "os", "drivers", "incarnation"],
    *read(s) {
      const h = s.host;
      if (!h) return;
      yield [{
        host: h.name,
        os: h.os,
        drivers: h.drivers.join(","),
        incarnation: h.incarnation ?? "",
      }, 1];
    },
  },
  gauge(
    "ucloud_lease_keepalive_age_seconds",
    "Time since the last keep-alive etcd acknowledged was sent",
    (s) => s.lease?.ageSeconds,
  ),
  gauge(
    "ucloud_lease_deadline_margin_seconds",
    "Time left until the worker's own lease deadline (it fences its VMs when it passes)",
    (s) => s.lease?.marginSeconds,
  ),
  gauge(
    "ucloud_lease_ttl_seconds",
    "The TTL of the worker's lease",
    (s) => s.lease?.ttlSeconds,
  ),
];

function mib(n?: number): number | undefined {
  return n === undefined ? undefined : n * MiB;
}

const VMS: Family[] = [
  {
    type: "gauge",
    name: "ucloud_vm_state",
    help: "The VM's phase (1 for the phase it is in)",
    labels: [...VM, "phase"],
    *read(s) {
      for (const vm of s.vms) {
        yield [{ ...vmLabels(vm), phase: vm.status.phase }, 1];
      }
    },
  },
  perVm(
    "gauge",
    "ucloud_vm_restarts",
    "Crashes of the VM within the restart window (restart.windowSeconds), each restarted until the limit",
    (vm) => vm.status.crashes?.length ?? 0,
  ),
  perVm(
    "gauge",
    "ucloud_vm_info_virtual_cpus",
    "Virtual CPUs of the VM",
    (vm) => vm.spec.cpus,
  ),
  perVm(
    "gauge",
    "ucloud_vm_info_maximum_memory_bytes",
    "Memory the VM is configured with",
    (vm) => vm.spec.memory * MiB,
  ),
  perVm(
    "gauge",
    "ucloud_vm_info_memory_usage_bytes",
    "Resident memory of the VM's process",
    (vm, s) => s.procs.get(vm.id)?.rssBytes,
  ),
  perVm(
    "counter",
    "ucloud_vm_cpu_time_seconds_total",
    "CPU time (user + system) of the VM's process",
    (vm, s) => s.procs.get(vm.id)?.cpuSeconds,
  ),
  ...([
    ["read_bytes", "readBytes", "Bytes read from"],
    ["write_bytes", "writeBytes", "Bytes written to"],
    ["read_requests", "readRequests", "Read requests to"],
    ["write_requests", "writeRequests", "Write requests to"],
  ] as const).map(([n, k, what]): Family => ({
    type: "counter",
    name: `ucloud_vm_block_${n}_total`,
    help: `${what} the VM's drive (QMP query-blockstats)`,
    labels: [...VM, "device"],
    *read(s) {
      for (const vm of s.vms) {
        for (const b of s.blocks.get(vm.id) ?? []) {
          yield [{ ...vmLabels(vm), device: b.device }, b[k]];
        }
      }
    },
  })),
  ...interfaceFamilies(),
  ...(["packets", "bytes"] as const).map((k): Family => ({
    type: "counter",
    name: `ucloud_vm_firewall_dropped_${k}_total`,
    help:
      `${k} the VM sent that its port filter dropped, by rule (mac-spoof, ip6-spoof, ra, ...)`,
    labels: [...VM, "interface", "network", "rule"],
    *read(s) {
      if (!s.drops) return;
      for (const { vm, tap, network } of nics(s)) {
        for (const [rule, c] of s.drops.get(tap) ?? []) {
          yield [{ ...vmLabels(vm), interface: tap, network, rule }, c[k]];
        }
      }
    },
  })),
];

/** Every NIC of the snapshot's VMs with its tap and network. */
function* nics(
  s: Snapshot,
): Iterable<{ vm: Vm; tap: string; network: string }> {
  for (const vm of s.vms) {
    for (const nic of vm.nics) {
      yield { vm, tap: nicTapName(vm.id, nic), network: nic.network };
    }
  }
}

type Dir = "receive" | "transmit";
type Count = "bytes" | "packets" | "dropped" | "errors";

/** The counter of direction `d` from the guest's side (the tap's other one). */
function guestSide(c: LinkCounters, d: Dir, k: Count): number {
  return (d === "receive" ? c.tx : c.rx)[k];
}

function interfaceFamilies(): Family[] {
  const out: Family[] = [];
  for (const d of ["receive", "transmit"] as const) {
    for (const k of ["bytes", "packets", "dropped", "errors"] as const) {
      const n = k === "dropped" ? "drops" : k;
      out.push({
        type: "counter",
        name: `ucloud_vm_interface_${d}_${n}_total`,
        help: `${k} the VM's NIC ${
          d === "receive" ? "received" : "sent"
        } (its tap's counters, from the guest's side)`,
        labels: [...VM, "interface", "network"],
        *read(s) {
          if (!s.links) return;
          for (const { vm, tap, network } of nics(s)) {
            const c = s.links.get(tap);
            if (c) {
              yield [
                { ...vmLabels(vm), interface: tap, network },
                guestSide(c, d, k),
              ];
            }
          }
        },
      });
    }
  }
  for (const d of ["receive", "transmit"] as const) {
    for (const k of ["bytes", "packets", "dropped"] as const) {
      const n = k === "dropped" ? "drops" : k;
      out.push({
        type: "counter",
        name: `ucloud_network_${d}_${n}_total`,
        help: `${k} the network's ${
          d === "receive" ? "devices received" : "devices sent"
        } on this host (bridge and VXLAN device, the host's side)`,
        labels: ["network", "device", "kind"],
        *read(s) {
          if (!s.links || !s.netState) return;
          for (const net of s.netState.networks) {
            const devices: [string, string][] = [["bridge", bridgeOf(net)]];
            if (net.kind === "private" && s.links.has(vxlanOf(net))) {
              devices.push(["vxlan", vxlanOf(net)]);
            }
            for (const [kind, device] of devices) {
              const c = s.links.get(device);
              if (c) {
                yield [
                  { network: net.id, device, kind },
                  (d === "receive" ? c.rx : c.tx)[k],
                ];
              }
            }
          }
        },
      });
    }
  }
  return out;
}

/** Every family of the worker's `/metrics`. */
export const FAMILIES: Family[] = [...HOST, ...VMS];
