/**
 * Network benchmark: the host network driver in a throwaway network
 * namespace with an IPv6 underlay (a veth with a ULA address), and NIC
 * hot-plug on a tiny qemu guest.
 *
 * - sync of N private networks with one port each from nothing (bridges,
 *   VXLANs, taps, one nft transaction, radvd), per port;
 * - re-sync with nothing changed (what every worker start and the 10 s
 *   repair timer cost);
 * - adding one more network and port to N existing ones, and removing it;
 * - QMP plugNic / unplugNic on a running guest (ACPI hot-plug, TCG).
 *
 * Usage: `deno run -A scripts/bench/net.ts [--networks=N]`, or through
 * `scripts/bench/main.ts --only=net`.
 */
import { eui64, randomMac } from "../../core/netaddr.ts";
import { NetDriver, tapName } from "../../drivers/net/mod.ts";
import type {
  HostNetState,
  NetworkSpec,
  PortSpec,
} from "../../drivers/net/types.ts";
import { QemuDriver } from "../../drivers/qemu/driver.ts";
import { run } from "../../drivers/runner.ts";
import { tinyBoot } from "../../tests/helpers/cluster.ts";
import { round, type Row, summarize, type Summary } from "./util.ts";

export interface NetResult {
  networks: number;
  /** N networks + N ports from nothing, one sync. */
  coldMs: number;
  coldPerPortMs: number;
  /** Re-sync with the same state (nothing to do). */
  noopMs: Summary;
  /** One network + port added to N existing. */
  addMs: Summary;
  /** That network + port removed again. */
  removeMs: Summary;
  /** Everything removed (empty state). */
  emptyMs: number;
  plugMs: Summary;
  unplugMs: Summary;
}

const REPEAT = 9;

function rand(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(2)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function network(i: number): NetworkSpec {
  const vni = 1000 + i;
  return {
    id: `net-${i}`,
    kind: "private",
    prefix: `fdc1:d00:0:${i.toString(16)}::/64`,
    vni,
    mode: "multicast",
    group: `ff05::${vni.toString(16)}`,
    ra: true,
    dhcp: { v6: false, v4: false },
  };
}

function port(net: NetworkSpec): PortSpec {
  const mac = randomMac();
  return {
    name: tapName(mac),
    network: net.id,
    mac,
    ipv6: eui64(net.prefix, mac),
  };
}

function state(n: number, ports: PortSpec[]): HostNetState {
  return {
    networks: Array.from({ length: n }, (_, i) => network(i)),
    ports: ports.slice(0, n),
    peers: {},
  };
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

/** The driver-sync part, in its own namespace. */
async function syncBench(n: number) {
  const id = rand();
  const ns = `ucbench-${id}`;
  const veth = `ucbn${id}`;
  const ip = (...a: string[]) => run("ip", a, { timeoutMs: 10_000 });
  const dir = await Deno.makeTempDir({ prefix: "uc-bench-net-" });
  await ip("netns", "add", ns);
  try {
    await ip(
      "link",
      "add",
      veth,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      ns,
    );
    const inNs = (...a: string[]) => ip("netns", "exec", ns, "ip", ...a);
    await inNs("link", "set", "lo", "up");
    await inNs("addr", "add", `fd75:c10d:${id}::2/64`, "dev", "eth0", "nodad");
    await inNs("link", "set", "eth0", "up");
    await ip("link", "set", veth, "up");
    const driver = new NetDriver({
      stateDir: dir,
      underlay: { device: "eth0", address: `fd75:c10d:${id}::2` },
      netns: ns,
    });
    const ports = Array.from(
      { length: n + 1 },
      (_, i) => port(network(i)),
    );
    try {
      const coldMs = await timed(() => driver.sync(state(n, ports)));
      const noop: number[] = [];
      const add: number[] = [];
      const remove: number[] = [];
      for (let i = 0; i < REPEAT; i++) {
        noop.push(await timed(() => driver.sync(state(n, ports))));
        add.push(await timed(() => driver.sync(state(n + 1, ports))));
        remove.push(await timed(() => driver.sync(state(n, ports))));
      }
      const emptyMs = await timed(() =>
        driver.sync({ networks: [], ports: [], peers: {} })
      );
      return {
        coldMs,
        noopMs: summarize(noop),
        addMs: summarize(add),
        removeMs: summarize(remove),
        emptyMs,
      };
    } finally {
      await driver.teardown();
    }
  } finally {
    for (const pid of (await ip("netns", "pids", ns)).stdout.split(/\s+/)) {
      if (pid) {
        try {
          Deno.kill(Number(pid), "SIGKILL");
        } catch { /* gone */ }
      }
    }
    await ip("link", "del", veth).catch(() => {});
    await ip("netns", "del", ns).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** plugNic/unplugNic of slot 1 on a running tiny guest, `REPEAT` times. */
async function plugBench() {
  const dir = await Deno.makeTempDir({ prefix: "uc-bench-nic-" });
  const driver = new QemuDriver({ stateDir: dir, accel: "tcg" });
  const tap = `ucbt${rand()}`;
  const id = `vm-bench-${rand()}`;
  await run("ip", ["tuntap", "add", "dev", tap, "mode", "tap"]);
  try {
    const handle = await driver.start({
      id,
      name: "bench",
      cpus: 1,
      memoryMiB: 128,
      boot: await tinyBoot(),
    });
    try {
      // The guest must be up to release a NIC (ACPI eject).
      const until = Date.now() + 60_000;
      while (
        !(await Deno.readTextFile(handle.serial).catch(() => "")).includes(
          "UCLOUD-GUEST-READY",
        )
      ) {
        if (Date.now() > until) throw new Error("bench guest did not boot");
        await new Promise((r) => setTimeout(r, 50));
      }
      const plug: number[] = [];
      const unplug: number[] = [];
      for (let i = 0; i < REPEAT; i++) {
        const nic = { slot: 1, tap, mac: randomMac() };
        plug.push(await timed(() => driver.plugNic(handle, nic)));
        unplug.push(await timed(() => driver.unplugNic(handle, 1)));
      }
      return { plugMs: summarize(plug), unplugMs: summarize(unplug) };
    } finally {
      await driver.stop(handle);
      await driver.destroy(id);
    }
  } finally {
    await run("ip", ["link", "del", tap]).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

export async function benchNet(networks: number): Promise<NetResult> {
  const s = await syncBench(networks);
  const p = await plugBench();
  return {
    networks,
    coldMs: Math.round(s.coldMs),
    coldPerPortMs: Math.round(s.coldMs / networks * 10) / 10,
    noopMs: s.noopMs,
    addMs: s.addMs,
    removeMs: s.removeMs,
    emptyMs: Math.round(s.emptyMs),
    plugMs: p.plugMs,
    unplugMs: p.unplugMs,
  };
}

/** Rows of the bench table. */
export function netRows(net: NetResult): Row[] {
  const out: Row[] = [];
  const n = `${net.networks} networks, 1 port each`;
  out.push(
    {
      name: "net sync from nothing",
      value: net.coldMs,
      unit: "ms",
      notes: `${n}: bridges, VXLANs, taps, 1 nft txn, radvd; ` +
        `${net.coldPerPortMs} ms per network`,
    },
    {
      name: "net re-sync, nothing changed p50",
      value: net.noopMs.p50,
      unit: "ms",
      notes: `${n}; worker start and 10 s repair`,
    },
    {
      name: "net add 1 network+port p50",
      value: net.addMs.p50,
      unit: "ms",
      notes: `to ${n}; ${
        round(net.addMs.p50 / net.noopMs.p50, 2)
      } x the no-op sync`,
    },
    {
      name: "net remove 1 network+port p50",
      value: net.removeMs.p50,
      unit: "ms",
      notes: `deleting links waits for the kernel`,
    },
    {
      name: "net remove all",
      value: net.emptyMs,
      unit: "ms",
      notes: n,
    },
    {
      name: "NIC hot-plug (QMP) p50",
      value: net.plugMs.p50,
      unit: "ms",
      notes: `netdev_add + device_add; max ${net.plugMs.max}`,
    },
    {
      name: "NIC hot-unplug p50",
      value: net.unplugMs.p50,
      unit: "ms",
      notes:
        `device_del until the guest released it (ACPI, TCG); max ${net.unplugMs.max}`,
    },
  );
  return out;
}

if (import.meta.main) {
  const arg = Deno.args.find((a) => a.startsWith("--networks="));
  const n = arg ? Number(arg.split("=")[1]) : 50;
  console.log(JSON.stringify(await benchNet(n), null, 2));
}
