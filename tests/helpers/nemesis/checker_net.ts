/**
 * The network half of the nemesis checker (checker.ts): `ipam/` keys (VNI,
 * /64, MAC, IPv4), `netmember/` keys and the networks' members (`netvm/`
 * keys, and `vms` of older documents) against the VM and network
 * documents. Pure.
 *
 * @example
 * ```ts
 * checkNetworks(kv, vmDocs(kv), docs<NetDoc>(kv, "network/"), want, add);
 * ```
 */
import type { Expectations, ViolationKind } from "./checker.ts";
import { describeVm, type NetDoc, parse, type VmDoc } from "./docs.ts";

/**
 * Adds the findings about networks and addresses: every `ipam/` and
 * `netmember/` and `netvm/` key belongs to the network (and VM) it names,
 * every network has its VNI and /64 entries and lists exactly the VMs with
 * a NIC in it,
 * every NIC has its MAC (and IPv4) entry, and networks match the workload.
 */
export function checkNetworks(
  kv: Record<string, string>,
  vms: Map<string, VmDoc>,
  nets: Map<string, NetDoc>,
  want: Expectations,
  add: (kind: ViolationKind, subject: string, detail: string) => void,
): void {
  const hasNic = (
    vmId: string | undefined,
    pred: (n: NonNullable<VmDoc["nics"]>[0]) => boolean,
  ) => vmId !== undefined && (vms.get(vmId)?.nics ?? []).some(pred);
  for (const [k, raw] of Object.entries(kv)) {
    if (!k.startsWith("ipam/")) continue;
    const e = parse<{ network?: string; vm?: string }>(raw) ?? {};
    const net = e.network ? nets.get(e.network) : undefined;
    const [, kind, ...rest] = k.split("/");
    let ok: boolean;
    if (kind === "vni") ok = net?.vni === Number(rest[0]);
    else if (kind === "prefix") ok = net?.prefix.replace("/", "_") === rest[0];
    else if (kind === "mac") {
      ok = !!net &&
        hasNic(
          e.vm,
          (n) =>
            n.mac.toLowerCase() === rest[0].toLowerCase() &&
            n.network === e.network,
        );
    } else if (kind === "v4") {
      ok = !!net && rest[0] === e.network &&
        hasNic(e.vm, (n) => n.ipv4 === rest[1] && n.network === e.network);
    } else ok = false;
    if (!ok) {
      add(
        "leaked",
        `key ${k}`,
        `names network ${e.network ?? "?"} (${net ? "exists" : "absent"})${
          e.vm ? ` and vm ${e.vm} (${describeVm(vms.get(e.vm))})` : ""
        }, which does not hold it`,
      );
    }
  }
  for (const k of Object.keys(kv)) {
    if (!k.startsWith("netmember/") && !k.startsWith("netvm/")) continue;
    const [, net, vmId] = k.split("/");
    if (!nets.has(net)) {
      add("leaked", `key ${k}`, `network ${net} does not exist`);
    } else if (
      k.startsWith("netvm/") && !hasNic(vmId, (n) => n.network === net)
    ) {
      add(
        "leaked",
        `key ${k}`,
        `vm ${vmId} (${describeVm(vms.get(vmId))}) has no NIC in it`,
      );
    }
  }
  for (const [id, net] of nets) {
    if (net.vni !== undefined && !(`ipam/vni/${net.vni}` in kv)) {
      add("lost", `network ${id}`, `its VNI ${net.vni} has no ipam/vni entry`);
    }
    if (!(`ipam/prefix/${net.prefix.replace("/", "_")}` in kv)) {
      add(
        "lost",
        `network ${id}`,
        `its prefix ${net.prefix} has no ipam/prefix entry`,
      );
    }
    for (const vmId of net.vms ?? []) {
      if (!hasNic(vmId, (n) => n.network === id)) {
        add(
          "leaked",
          `network ${id}`,
          `lists vm ${vmId} (${describeVm(vms.get(vmId))}) without a NIC in it`,
        );
      }
    }
  }
  for (const [id, vm] of vms) {
    for (const nic of vm.nics ?? []) {
      const mac = parse<{ vm?: string }>(kv[`ipam/mac/${nic.mac}`]);
      if (mac?.vm !== id) {
        add(
          "lost",
          `vm ${id}`,
          `NIC ${nic.slot} MAC ${nic.mac} has no ipam/mac entry of its own`,
        );
      }
      if (
        nic.ipv4 &&
        parse<{ vm?: string }>(kv[`ipam/v4/${nic.network}/${nic.ipv4}`])?.vm !==
          id
      ) {
        add(
          "lost",
          `vm ${id}`,
          `NIC ${nic.slot} IPv4 ${nic.ipv4} has no ipam/v4 entry of its own`,
        );
      }
      const net = nets.get(nic.network);
      if (!net) {
        add(
          "lost",
          `vm ${id}`,
          `NIC ${nic.slot} is in network ${nic.network}, which does not exist`,
        );
      } else if (
        !(`netvm/${nic.network}/${id}` in kv) && !net.vms.includes(id)
      ) {
        add(
          "lost",
          `vm ${id}`,
          `NIC ${nic.slot} is in network ${nic.network}, which has no netvm key (or vms entry) of it`,
        );
      }
    }
  }
  const knownNets = new Set(want.networks.map((n) => n.id));
  for (const w of want.networks) {
    if (!w.deleted && !nets.has(w.id)) {
      add(
        "lost",
        `network ${w.id}`,
        "created and not deleted, but missing from etcd",
      );
    }
    if (w.deleted && nets.has(w.id)) {
      add("lost", `network ${w.id}`, "deleted, but still in etcd");
    }
  }
  for (const id of nets.keys()) {
    if (!knownNets.has(id)) add("leaked", `network ${id}`, "nobody created it");
  }
}
