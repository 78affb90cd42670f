/**
 * A qemu test guest with a NIC on a public network, for tests that watch
 * its traffic (tests/worker_metrics_net_test.ts,
 * tests/prometheus_cloud_test.ts): a bridge in a host's namespace
 * (`addBridge`, for the host's `UCLOUD_PUBLIC_BRIDGES`), a public network
 * on it (`publicNetwork`), the VM created through the API and waited for
 * until its serial console shows the guest's ready marker (`startGuest`),
 * pings from the host to the guest's link-local address (`pingGuest`),
 * and frames the guest sends from a MAC that is not its NIC's
 * (`spoofMac`: the port filter's `mac-spoof` rule drops them).
 *
 * @example
 * ```ts
 * await addBridge(net, "h1", "pub0");
 * const pub = await publicNetwork(app, "pub0", "fd9e:1:2:4::/64");
 * const g = await startGuest(c, app, { name: "g", networks: [pub.id] });
 * await pingGuest(net, "h1", "pub0", g.vm, 5);
 * ```
 */
import assert from "node:assert/strict";
import { keys } from "../../core/keys.ts";
import { linkLocal } from "../../core/netaddr.ts";
import { type Network, Vm } from "../../core/schemas.ts";
import { type Cluster, waitFor } from "./cluster.ts";
import { guestExec } from "./console.ts";
import { api, type App, inHost } from "./net_e2e.ts";
import type { HostNet } from "./netns.ts";

/** Adds bridge `name` (up) in host `host`'s namespace. */
export async function addBridge(
  net: HostNet,
  host: string,
  name: string,
): Promise<void> {
  await inHost(net, host, "ip", "link", "add", name, "type", "bridge");
  await inHost(net, host, "ip", "link", "set", name, "up");
}

/** Creates the public network `internet` on `bridge` through `app`. */
export async function publicNetwork(
  app: App,
  bridge: string,
  prefix: string,
): Promise<Network> {
  const r = await api(app, "POST", "/v1/networks", {
    name: "internet",
    kind: "public",
    bridge,
    prefix,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body as Network;
}

/** A started guest: its document and its serial console's socket. */
export interface Guest {
  vm: Vm;
  /** The guest's root shell (tests/helpers/console.ts). */
  console: string;
}

/**
 * Creates a VM (1 CPU, 128 MiB, then `body`) through `app` and waits until
 * it runs and its serial log shows `UCLOUD-GUEST-READY` (generous
 * deadlines: TCG on a loaded machine).
 */
export async function startGuest(
  c: Cluster,
  app: App,
  body: Record<string, unknown>,
): Promise<Guest> {
  const made = await api(app, "POST", "/v1/vms", {
    cpus: 1,
    memory: 128,
    ...body,
  });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const vm = await waitFor(
    `VM ${body.name} running`,
    async () => {
      const d = (await c.store.get(keys.vm(made.body.vm.id), Vm))?.value;
      return d?.status.phase === "running" ? d : null;
    },
    120_000,
    200,
  );
  const serial = String(vm.status.handle!.serial);
  await waitFor(
    `guest ${body.name} booted`,
    async () =>
      (await Deno.readTextFile(serial).catch(() => ""))
        .includes("UCLOUD-GUEST-READY"),
    180_000,
    500,
  );
  return { vm, console: String(vm.status.handle!.console) };
}

/**
 * Host `host` pings the link-local address of `vm`'s first NIC `n` times
 * on `bridge` (busybox ping); rejects when no answer comes.
 */
export async function pingGuest(
  net: HostNet,
  host: string,
  bridge: string,
  vm: Vm,
  n: number,
): Promise<void> {
  await inHost(
    net,
    host,
    ...["busybox", "ping", "-6", "-c", String(n), "-W", "2"],
    ...["-I", bridge, linkLocal(vm.nics[0].mac)],
  );
}

/** Waits (60 s at most) until the guest answers a ping. */
export async function guestAnswers(
  net: HostNet,
  host: string,
  bridge: string,
  vm: Vm,
): Promise<void> {
  await waitFor(
    "the guest answers a ping",
    () => pingGuest(net, host, bridge, vm, 1).then(() => true),
    60_000,
    500,
  );
}

/**
 * The guest takes another MAC on eth0 and sends `n` pings to all nodes:
 * its port filter drops each by rule `mac-spoof` (its NIC works no more).
 */
export async function spoofMac(guest: Guest, n: number): Promise<void> {
  await guestExec(
    guest.console,
    `ip link set dev eth0 address 02:c1:0d:ee:ee:01; ping -6 -c ${n} -W 1 -I eth0 ff02::1`,
    { timeoutMs: 60_000 },
  );
}
