/**
 * A NIC in a public network whose bridge its host lacks: refused at the API
 * (409, naming the host and the bridge) for a VM that has a host, running
 * or stopped; and when one exists anyway (written into etcd, or the bridge
 * went away), the host's network sync leaves that one port out and still
 * sets up every other VM's (real etcd, a host namespace with the real
 * network driver, the vm.start handler with the sim VM driver).
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { eui64 } from "../core/netaddr.ts";
import { type Network, type Nic, Vm } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { bridgeOf, tapName } from "../drivers/net/mod.ts";
import { run } from "../drivers/runner.ts";
import { PermanentError } from "../tasks/context.ts";
import { vmStart } from "../tasks/vm_start.ts";
import {
  assertError,
  call,
  dump,
  headerAuth,
  noSanitize,
} from "./helpers/api.ts";
import { withNetHosts } from "./helpers/net_hosts.ts";
import { vmDoc, withBench } from "./helpers/task_ctx.ts";
import { hostNet, VmCaches } from "./helpers/host_vms.ts";

const ALICE = { "x-user": "alice" };
const ADMIN = { "x-user": "root/admin" };

const hostDoc = (name: string, publicBridges: string[]) => ({
  name,
  capacity: { cpus: 4, memoryMiB: 2048 },
  addresses: [],
  os: "linux",
  drivers: ["qemu"],
  state: "active",
  registeredAt: "2025-01-01T00:00:00.000Z",
  publicBridges,
});

Deno.test({
  name:
    "attaching a public network to a VM whose host lacks its bridge is 409, running or stopped",
  ...noSanitize,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "ucloud-pubbr-" });
    const etcd = await startEtcd({ dataDir: dir });
    const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/pb" });
    try {
      const app = createApp({ store, auth: headerAuth });
      await store.txn()
        .put(keys.host("h1"), hostDoc("h1", ["pub0"]))
        .put(keys.host("h2"), hostDoc("h2", [])).commit();
      const mkNet = async (body: Record<string, unknown>) => {
        const r = await call(app, "POST", "/v1/networks", {
          json: body,
          headers: ADMIN,
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        return r.body as Network;
      };
      const pub0 = await mkNet({
        name: "pub0",
        kind: "public",
        bridge: "pub0",
        prefix: "fd00:3::/64",
      });
      const pub1 = await mkNet({
        name: "pub1",
        kind: "public",
        bridge: "pub1",
        prefix: "fd00:4::/64",
      });
      const onHost = async (host: string, phase: Vm["status"]["phase"]) => {
        const r = await call(app, "POST", "/v1/vms", {
          json: { name: "web", cpus: 1, memory: 128 },
          headers: ALICE,
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        const cur = (await store.get(keys.vm(r.body.vm.id), Vm))!;
        const status = { ...cur.value.status, phase, host };
        await store.txn().ifModRevision(cur.key, cur.modRevision)
          .put(cur.key, { ...cur.value, status }).commit();
        return r.body.vm.id as string;
      };
      const attach = (id: string, network: string) =>
        call(app, "POST", `/v1/vms/${id}/nics`, {
          json: { network },
          headers: ALICE,
        });

      const running = await onHost("h2", "running");
      const stopped = await onHost("h1", "stopped");
      const before = await dump(store);
      const r = await attach(running, pub0.id);
      assertError(r, 409, undefined);
      assert.match(r.body.error.message, /host h2 has no bridge pub0/);
      assert.match(r.body.error.message, new RegExp(pub0.id));
      const s = await attach(stopped, pub1.id);
      assertError(s, 409, undefined);
      assert.match(s.body.error.message, /host h1 has no bridge pub1/);
      assert.deepEqual(await dump(store), before, "a refusal wrote nothing");
      // The bridge its host has: accepted (stopped: no task, next start).
      const ok = await attach(stopped, pub0.id);
      assert.equal(ok.status, 202, JSON.stringify(ok.body));
      assert.equal(ok.body.vm.nics[0].bridge, "pub0");
    } finally {
      store.close();
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const network = (id: string, more: Partial<Network>): Network => ({
  id,
  name: id,
  owner: "alice",
  kind: "private",
  prefix: "fdc1:d00::/64",
  ra: false,
  dhcp: { v6: false, v4: false },
  vms: [],
  createdAt: "2026-01-01T00:00:00Z",
  ...more,
});

const nic = (net: Network, mac: string): Nic => ({
  slot: 0,
  network: net.id,
  mac,
  ipv6: eui64(net.prefix, mac),
  ...(net.bridge ? { bridge: net.bridge } : {}),
  state: "attached",
});

Deno.test({
  name:
    "a VM whose public bridge is missing on its host does not stop vm.start of another VM there",
  ...noSanitize,
  async fn() {
    await withNetHosts(["h1"], (env) =>
      withBench(async (b) => {
        const caches = new VmCaches();
        try {
          const lan = network("net-lan", {
            vni: 4242,
            mode: "multicast",
            group: "ff05::1092",
          });
          const gone = network("net-gone", {
            kind: "public",
            prefix: "fd9e:1:2:3::/64",
            bridge: "gone0",
          });
          for (const n of [lan, gone]) {
            await b.store.txn().put(keys.network(n.id), n).commit();
          }
          const worker = await b.incarnation("h1");
          const net = await hostNet(env, b.store, caches, worker);
          // Written directly: the API would refuse this NIC (no gone0 on h1).
          await b.putVm(vmDoc("vm-bad", { phase: "running", host: "h1" }, {
            nics: [nic(gone, "02:c1:0d:00:00:01")],
          }));
          await b.putVm(vmDoc("vm-good", { phase: "scheduled", host: "h1" }, {
            nics: [nic(lan, "02:c1:0d:00:00:02")],
          }));
          const start = async (id: string) => {
            const ctx = await b.context(worker, "vm.start", { vm: id });
            return await vmStart({ ...ctx, net });
          };
          const out = await start("vm-good");
          assert.ok(out.txn, "vm.start of the good VM did not finish");
          assert.ok((await out.txn.commit()).ok);
          const tap = JSON.parse(
            (await run("ip", [
              "-n",
              env.net.host("h1").ns,
              "-j",
              "link",
              "show",
              tapName("02:c1:0d:00:00:02"),
            ])).stdout,
          )[0];
          assert.equal(tap.master, bridgeOf(lan));
          // The bad VM alone fails, saying why.
          await assert.rejects(
            () => start("vm-bad"),
            (err: Error) => {
              assert.ok(err instanceof PermanentError, String(err));
              assert.match(err.message, /VM vm-bad on host h1/);
              assert.match(err.message, /bridge gone0 does not exist/);
              return true;
            },
          );
          assert.ok(
            env.log.lines.some((l) =>
              l.includes("network ports left out of the sync") &&
              l.includes("vm-bad")
            ),
          );
          await b.driver.fence();
        } finally {
          await caches.close();
        }
      }));
  },
});
