/**
 * Tap names cannot collide (issue 13): a VM's tap is named by its NIC's
 * MAC, unique in the cluster; two VMs whose old 32-bit hashed names
 * collide both get their ports on one host; and a running VM's tap made by
 * an older release under its hashed name is renamed in place, so the
 * process holding it keeps its network across the worker upgrade. Real
 * etcd, a host namespace with the real network driver, the vm.start
 * handler with the sim VM driver.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { NetDriver } from "../drivers/net/driver.ts";
import { QEMU_USER } from "../drivers/qemu/args.ts";
import { ensureQemuUser } from "../drivers/qemu/qemu_user.ts";
import { bridgeOf, legacyTapName, tapName } from "../drivers/net/mod.ts";
import { networkSpec } from "../workers/net.ts";
import { noSanitize } from "./helpers/api.ts";
import { handles, lan, link, nic, withHost } from "./helpers/host_ports.ts";
import { vmDoc } from "./helpers/task_ctx.ts";

/** Two VM ids whose FNV-1a hashes collide (found by brute force). */
const TWINS = ["vm-90169", "vm-1250812"] as const;

/**
 * A process in namespace `ns` holding tap `tap` open (as qemu does), until
 * it is killed; resolves once it holds it.
 */
async function holdTap(ns: string, tap: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns,
      "python3",
      "-c",
      // TUNSETIFF with IFF_TAP | IFF_NO_PI attaches to the existing tap.
      `import fcntl, os, struct, sys, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", sys.argv[1].encode(), 0x1002))
print("held", flush=True)
time.sleep(600)`,
      tap,
    ],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  assert.match(new TextDecoder().decode(value), /held/);
  return child;
}

/**
 * Whether user `uid` may attach to tap `tap` of namespace `ns` (TUNSETIFF
 * as that user, without capabilities).
 */
async function mayAttach(ns: string, tap: string, uid: number) {
  const { code } = await new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns,
      "setpriv",
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      // Not a python of root's home: the user must be able to run it.
      "/usr/bin/python3",
      "-c",
      `import fcntl, os, struct, sys
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", sys.argv[1].encode(), 0x1002))`,
      tap,
    ],
    stderr: "null",
  }).output();
  return code === 0;
}

/** The tap names the fds of `pid` are attached to (`iff:` in fdinfo). */
async function tapsHeldBy(pid: number): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`/proc/${pid}/fdinfo`)) {
    const info = await Deno.readTextFile(`/proc/${pid}/fdinfo/${e.name}`)
      .catch(() => "");
    const m = info.match(/^iff:\s*(\S+)$/m);
    if (m) out.push(m[1]);
  }
  return out;
}

/** Link `name` of `ns` with its index and flags. */
async function linkInfo(ns: string, name: string) {
  return await link(ns, name) as
    | { ifname: string; ifindex: number; master?: string; flags: string[] }
    | undefined;
}

Deno.test({
  name:
    "two VMs whose old hashed tap names collide get distinct taps, both on their bridge with their rules",
  ...noSanitize,
  async fn() {
    assert.equal(legacyTapName(TWINS[0], 0), legacyTapName(TWINS[1], 0));
    await withHost(async ({ b, ns, start }) => {
      const nics = [nic(8), nic(9)];
      for (const [i, id] of TWINS.entries()) {
        await b.putVm(vmDoc(id, { phase: "scheduled", host: "h1" }, {
          nics: [nics[i]],
        }));
      }
      for (const id of TWINS) await start(id);
      const taps = nics.map((n) => tapName(n.mac));
      assert.notEqual(taps[0], taps[1]);
      for (const tap of taps) {
        const l = await linkInfo(ns, tap);
        assert.equal(l?.master, bridgeOf(lan), tap);
        assert.ok(l?.flags.includes("UP"), tap);
        assert.ok((await handles(ns, tap))?.length, `${tap} has no rules`);
      }
      assert.equal(await link(ns, legacyTapName(TWINS[0], 0)), undefined);
    });
  },
});

Deno.test({
  name:
    "a running VM's tap named by an older release is renamed in place: its holder keeps it, on its bridge with its rules",
  ...noSanitize,
  async fn() {
    await withHost(async ({ b, env, ns, hostNet }) => {
      const n = nic(10);
      const old = legacyTapName("vm-old", 0);
      const port = {
        network: lan.id,
        mac: n.mac,
        ipv6: n.ipv6,
        ipv4: n.ipv4,
      };
      // What the older release made: the tap under its hashed name, held
      // open by the VM's qemu.
      await env.driver("h1", false).sync({
        networks: [networkSpec(lan)],
        ports: [{ name: old, ...port }],
        peers: {},
      });
      const before = await linkInfo(ns, old);
      assert.equal(before?.master, bridgeOf(lan));
      const holder = await holdTap(ns, old);
      try {
        await b.putVm(vmDoc("vm-old", { phase: "running", host: "h1" }, {
          nics: [n],
        }));
        await b.store.txn().put(keys.ipamMac(n.mac), {
          network: lan.id,
          vm: "vm-old",
          slot: 0,
        }).commit();
        // The upgraded worker's first sync.
        await (await hostNet()).sync({ vm: "vm-old" });
        const tap = tapName(n.mac);
        const after = await linkInfo(ns, tap);
        assert.equal(after?.ifindex, before?.ifindex, "not the same tap");
        assert.equal(after?.master, bridgeOf(lan));
        assert.ok(after?.flags.includes("UP"));
        assert.ok((await handles(ns, tap))?.length, "no rules");
        assert.equal(await link(ns, old), undefined);
        assert.deepEqual(await tapsHeldBy(holder.pid), [tap]);
        // A second sync changes nothing.
        const rules = await handles(ns, tap);
        await (await hostNet()).sync();
        assert.deepEqual(await handles(ns, tap), rules);
      } finally {
        holder.kill("SIGKILL");
        await holder.status;
      }
    });
  },
});

Deno.test({
  name:
    "an old tap two VMs' hashed names share is neither renamed nor removed: which VM holds it cannot be told",
  ...noSanitize,
  async fn() {
    await withHost(async ({ b, env, ns, hostNet }) => {
      const nics = [nic(11), nic(12)];
      const old = legacyTapName(TWINS[0], 0);
      await env.driver("h1", false).sync({
        networks: [networkSpec(lan)],
        ports: [{
          name: old,
          network: lan.id,
          mac: nics[0].mac,
          ipv6: nics[0].ipv6,
        }],
        peers: {},
      });
      const before = await linkInfo(ns, old);
      for (const [i, id] of TWINS.entries()) {
        await b.putVm(vmDoc(id, { phase: "running", host: "h1" }, {
          nics: [nics[i]],
        }));
      }
      await (await hostNet()).sync();
      assert.equal((await linkInfo(ns, old))?.ifindex, before?.ifindex);
      for (const n of nics) {
        assert.equal((await link(ns, tapName(n.mac)))?.master, bridgeOf(lan));
      }
    });
  },
});

Deno.test({
  name:
    "the driver's taps belong to the qemu user: it may attach to them, another unprivileged user may not",
  ...noSanitize,
  async fn() {
    const { uid } = await ensureQemuUser(QEMU_USER);
    await withHost(async ({ env, ns }) => {
      const n = nic(13);
      const tap = tapName(n.mac);
      await new NetDriver({
        stateDir: env.dirs.get("h1")!,
        underlay: null,
        netns: ns,
        log: env.log,
        tapUser: QEMU_USER,
      }).sync({
        networks: [networkSpec(lan)],
        ports: [{ name: tap, network: lan.id, mac: n.mac, ipv6: n.ipv6 }],
        peers: {},
      });
      assert.equal((await link(ns, tap))?.master, bridgeOf(lan));
      assert.equal(await mayAttach(ns, tap, 65534), false, "nobody attached");
      assert.equal(await mayAttach(ns, tap, uid), true);
    });
  },
});
