/**
 * `/v1/networks` and VM NICs against a real etcd: allocation of VNIs and
 * /64s (unique under concurrency), NICs with MACs and addresses known in
 * advance, attach and detach, delete refused while in use, visibility,
 * and bad input that leaves etcd exactly as it was.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { eui64, inPrefix6, MAC_PREFIX } from "../core/netaddr.ts";
import { IpamEntry, Network, Task, Vm } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import {
  type App,
  assertError,
  call,
  dump,
  headerAuth,
  noSanitize,
} from "./helpers/api.ts";

const ALICE = { "x-user": "alice" };
const BOB = { "x-user": "bob" };
const ADMIN = { "x-user": "root/admin" };

Deno.test({
  name: "networks: API against a real etcd",
  ...noSanitize,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "ucloud-net-api-" });
    const etcd = await startEtcd({ dataDir: dir });
    const stores: Store[] = [];
    let n = 0;
    const fresh = () => {
      const store = Store.connect({
        endpoints: [etcd.endpoint],
        prefix: `/n/${++n}`,
      });
      stores.push(store);
      return { store, app: createApp({ store, auth: headerAuth }) };
    };
    const step = (name: string, fn: () => Promise<void>) =>
      t.step({ name, ...noSanitize, fn });
    const mkNet = async (
      app: App,
      body: Record<string, unknown>,
      headers: Record<string, string> = ALICE,
    ): Promise<Network> => {
      const r = await call(app, "POST", "/v1/networks", {
        json: body,
        headers,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };
    const mkVm = async (
      app: App,
      networks: string[],
      headers: Record<string, string> = ALICE,
    ): Promise<{ vm: Vm; task: Task }> => {
      const r = await call(app, "POST", "/v1/vms", {
        json: { name: "web", cpus: 1, memory: 128, networks },
        headers,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };
    /** Plays the worker: the VM runs on `host`. */
    const place = async (store: Store, id: string, host: string) => {
      const cur = (await store.get(keys.vm(id), Vm))!;
      const status = { ...cur.value.status, phase: "running" as const, host };
      assert.ok(
        (await store.txn().ifModRevision(cur.key, cur.modRevision)
          .put(cur.key, { ...cur.value, status }).commit()).ok,
      );
    };

    try {
      await step(
        "private networks get the next VNI, group and /64",
        async () => {
          const { store, app } = fresh();
          const a = await mkNet(app, { name: "a" });
          const b = await mkNet(app, { name: "b", mode: "unicast" });
          assert.equal(a.kind, "private");
          assert.equal(a.vni, 100);
          assert.equal(a.group, "ff05::64");
          assert.equal(a.prefix, "fdc1:d00::/64");
          assert.equal(a.mode, "multicast");
          assert.equal(a.ra, true);
          assert.deepEqual(a.vms, []);
          assert.equal(b.vni, 101);
          assert.equal(b.prefix, "fdc1:d00:0:1::/64");
          assert.equal(b.mode, "unicast");
          const vni = await store.get(keys.ipamVni(100), IpamEntry);
          assert.equal(vni?.value.network, a.id);
          const pfx = await store.get(keys.ipamPrefix(b.prefix), IpamEntry);
          assert.equal(pfx?.value.network, b.id);
          assert.equal(
            (await call(app, "GET", `/v1/networks/${a.id}`, { headers: ALICE }))
              .body.id,
            a.id,
          );
        },
      );

      await step(
        "20 concurrent creates get 20 distinct VNIs and /64s",
        async () => {
          const { app } = fresh();
          const nets = await Promise.all(
            Array.from({ length: 20 }, (_, i) => mkNet(app, { name: `n${i}` })),
          );
          assert.equal(new Set(nets.map((x) => x.vni)).size, 20);
          assert.equal(new Set(nets.map((x) => x.prefix)).size, 20);
        },
      );

      await step(
        "bad input: 400/403/409 naming the field, etcd unchanged",
        async () => {
          const { store, app } = fresh();
          await mkNet(app, { name: "taken", prefix: "fd00:1::/64" }, ADMIN);
          const cases: [
            Record<string, unknown>,
            Record<string, string>,
            number,
            string | undefined,
          ][] = [
            [{ name: "Bad_Name" }, ALICE, 400, "name"],
            [{}, ALICE, 400, "name"],
            [{ name: "x", color: "red" }, ALICE, 400, "color"],
            [{ name: "x", kind: "moon" }, ALICE, 400, "kind"],
            [{ name: "x", prefix: "fd00:2::/64" }, ALICE, 403, undefined],
            [
              {
                name: "x",
                kind: "public",
                bridge: "br0",
                prefix: "fd00:3::/64",
              },
              ALICE,
              403,
              undefined,
            ],
            [
              { name: "x", kind: "public", prefix: "fd00:3::/64" },
              ADMIN,
              400,
              "bridge",
            ],
            [
              { name: "x", kind: "public", bridge: "br0" },
              ADMIN,
              400,
              "prefix",
            ],
            [{ name: "x", bridge: "br0" }, ADMIN, 400, "bridge"],
            [
              {
                name: "x",
                kind: "public",
                bridge: "br0",
                prefix: "fd00:3::/64",
                dhcp: { v6: true },
              },
              ADMIN,
              400,
              "dhcp",
            ],
            [{ name: "x", prefix: "fd00:2::/56" }, ADMIN, 400, "prefix"],
            [{ name: "x", prefix: "fd00:2::1/64" }, ADMIN, 400, "prefix"],
            [{ name: "x", prefix: "nonsense" }, ADMIN, 400, "prefix"],
            [{ name: "x", ipv4: "198.51.100.1/24" }, ALICE, 400, "ipv4"],
            [{ name: "x", ipv4: "198.51.100.0/31" }, ALICE, 400, "ipv4"],
            [{ name: "x", dhcp: { v4: true } }, ALICE, 400, "dhcp.v4"],
            [{ name: "x", mode: "broadcast" }, ALICE, 400, "mode"],
            [{ name: "x", prefix: "fd00:1::/64" }, ADMIN, 409, undefined],
          ];
          for (const [body, headers, status, field] of cases) {
            const before = await dump(store);
            const r = await call(app, "POST", "/v1/networks", {
              json: body,
              headers,
            });
            assertError(r, status, field);
            assert.deepEqual(await dump(store), before, JSON.stringify(body));
          }
        },
      );

      await step(
        "a VM's NICs: slot, MAC, EUI-64 IPv6, IPv4; network lists the VM",
        async () => {
          const { store, app } = fresh();
          const a = await mkNet(app, { name: "a" });
          const legacy = await mkNet(app, {
            name: "l",
            ipv4: "198.51.100.0/24",
          });
          const { vm } = await mkVm(app, [a.id, legacy.id]);
          assert.equal(vm.nics.length, 2);
          const [n0, n1] = vm.nics;
          assert.equal(n0.slot, 0);
          assert.equal(n1.slot, 1);
          assert.equal(n0.network, a.id);
          assert.ok(n0.mac.startsWith(MAC_PREFIX + ":"), n0.mac);
          assert.notEqual(n0.mac, n1.mac);
          assert.equal(n0.ipv6, eui64(a.prefix, n0.mac));
          assert.ok(inPrefix6(n1.ipv6, legacy.prefix));
          assert.equal(n0.ipv4, undefined);
          assert.equal(n1.ipv4, "198.51.100.2");
          assert.equal(n0.state, "attached");
          const { vm: vm2 } = await mkVm(app, [legacy.id]);
          assert.equal(vm2.nics[0].ipv4, "198.51.100.3");
          const net = await store.get(keys.network(legacy.id), Network);
          assert.deepEqual(net?.value.vms, [vm.id, vm2.id]);
          const mac = await store.get(keys.ipamMac(n0.mac), IpamEntry);
          assert.deepEqual(mac?.value, { network: a.id, vm: vm.id, slot: 0 });
          const shown = await call(app, "GET", `/v1/vms/${vm.id}`, {
            headers: ALICE,
          });
          assert.deepEqual(shown.body.nics, vm.nics);
        },
      );

      await step(
        "VM create with a bad network: 400 naming the field, etcd unchanged",
        async () => {
          const { store, app } = fresh();
          const bobs = await mkNet(app, { name: "b" }, BOB);
          const a = await mkNet(app, { name: "a" });
          const bad: [unknown, string][] = [
            [["net-nope"], "networks.0"],
            [[a.id, bobs.id], "networks.1"],
            [[a.id, a.id], "networks"],
            [["Not An Id"], "networks.0"],
            [Array.from({ length: 9 }, (_, i) => `net-${i}`), "networks"],
          ];
          for (const [networks, field] of bad) {
            const before = await dump(store);
            const r = await call(app, "POST", "/v1/vms", {
              json: { name: "web", cpus: 1, memory: 128, networks },
              headers: ALICE,
            });
            assertError(r, 400, field);
            assert.deepEqual(await dump(store), before);
          }
        },
      );

      await step(
        "public networks: admin-made, usable by all, VM ids hidden from others",
        async () => {
          const { app } = fresh();
          const pub = await mkNet(app, {
            name: "internet",
            kind: "public",
            bridge: "pub0",
            prefix: "2001:DB8:0:7::/64",
          }, ADMIN);
          assert.equal(pub.prefix, "2001:db8:0:7::/64");
          assert.equal(pub.bridge, "pub0");
          assert.equal(pub.vni, undefined);
          assert.equal(pub.ra, false);
          const { vm } = await mkVm(app, [pub.id], BOB);
          assert.equal(vm.nics[0].bridge, "pub0");
          assert.equal(vm.nics[0].ipv6, eui64(pub.prefix, vm.nics[0].mac));
          const seen = await call(app, "GET", `/v1/networks/${pub.id}`, {
            headers: ALICE,
          });
          assert.equal(seen.status, 200);
          assert.deepEqual(seen.body.vms, []);
          const own = await call(app, "GET", `/v1/networks/${pub.id}`, {
            headers: ADMIN,
          });
          assert.deepEqual(own.body.vms, [vm.id]);
          const priv = await mkNet(app, { name: "mine" }, BOB);
          const list = await call(app, "GET", "/v1/networks", {
            headers: ALICE,
          });
          assert.deepEqual(list.body.items.map((x: Network) => x.id), [pub.id]);
          const other = await call(app, "GET", `/v1/networks/${priv.id}`, {
            headers: ALICE,
          });
          assertError(other, 404, undefined);
          const del = await call(app, "DELETE", `/v1/networks/${pub.id}`, {
            headers: BOB,
          });
          assertError(del, 403, undefined);
        },
      );

      await step(
        "attach and detach on a pending VM change the document at once",
        async () => {
          const { store, app } = fresh();
          const a = await mkNet(app, { name: "a" });
          const b = await mkNet(app, { name: "b", ipv4: "203.0.113.0/24" });
          const { vm } = await mkVm(app, [a.id]);
          const r = await call(app, "POST", `/v1/vms/${vm.id}/nics`, {
            json: { network: b.id },
            headers: ALICE,
          });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          assert.equal(r.body.task, null);
          const nic = r.body.vm.nics[1];
          assert.equal(nic.slot, 1);
          assert.equal(nic.ipv4, "203.0.113.2");
          assert.deepEqual(
            (await store.get(keys.network(b.id), Network))?.value.vms,
            [vm.id],
          );
          const before = await dump(store);
          assertError(
            await call(app, "POST", `/v1/vms/${vm.id}/nics`, {
              json: { network: b.id },
              headers: ALICE,
            }),
            409,
            undefined,
          );
          assertError(
            await call(app, "POST", `/v1/vms/${vm.id}/nics`, {
              json: { network: "net-x" },
              headers: ALICE,
            }),
            400,
            "network",
          );
          assertError(
            await call(app, "POST", `/v1/vms/${vm.id}/nics`, {
              json: { network: b.id },
              headers: BOB,
            }),
            404,
            undefined,
          );
          assertError(
            await call(app, "DELETE", `/v1/vms/${vm.id}/nics/5`, {
              headers: ALICE,
            }),
            404,
            undefined,
          );
          assertError(
            await call(app, "DELETE", `/v1/vms/${vm.id}/nics/9`, {
              headers: ALICE,
            }),
            400,
            "slot",
          );
          assert.deepEqual(await dump(store), before);
          const d = await call(app, "DELETE", `/v1/vms/${vm.id}/nics/1`, {
            headers: ALICE,
          });
          assert.equal(d.status, 200, JSON.stringify(d.body));
          assert.equal(d.body.task, null);
          assert.deepEqual(
            d.body.vm.nics.map((x: { slot: number }) => x.slot),
            [0],
          );
          assert.deepEqual(
            (await store.get(keys.network(b.id), Network))?.value.vms,
            [],
          );
          assert.equal(await store.get(keys.ipamMac(nic.mac), IpamEntry), null);
          assert.equal(
            await store.get(keys.ipamV4(b.id, nic.ipv4), IpamEntry),
            null,
          );
        },
      );

      await step(
        "attach and detach on a running VM enqueue vm.nics on its host",
        async () => {
          const { store, app } = fresh();
          const a = await mkNet(app, { name: "a" });
          const b = await mkNet(app, { name: "b" });
          const { vm } = await mkVm(app, [a.id]);
          await place(store, vm.id, "h1");
          const r = await call(app, "POST", `/v1/vms/${vm.id}/nics`, {
            json: { network: b.id },
            headers: ALICE,
          });
          assert.equal(r.status, 202);
          assert.equal(r.body.task.kind, "vm.nics");
          assert.equal(r.body.task.target, "h1");
          assert.ok(
            await store.get(
              keys.queue("h1", r.body.task.id),
              IpamEntry.partial(),
            ),
          );
          const d = await call(app, "DELETE", `/v1/vms/${vm.id}/nics/0`, {
            headers: ALICE,
          });
          assert.equal(d.status, 202);
          assert.equal(d.body.task.kind, "vm.nics");
          assert.equal(d.body.vm.nics[0].state, "detaching");
          // Until the host unplugged it, the NIC and its network stay taken.
          assert.deepEqual(
            (await store.get(keys.network(a.id), Network))?.value.vms,
            [vm.id],
          );
          const again = await call(app, "DELETE", `/v1/vms/${vm.id}/nics/0`, {
            headers: ALICE,
          });
          assert.equal(again.status, 202);
          assert.equal(again.body.task, null);
        },
      );

      await step(
        "network delete: 409 while a VM uses it, then frees VNI and /64",
        async () => {
          const { store, app } = fresh();
          const a = await mkNet(app, { name: "a" });
          const { vm } = await mkVm(app, [a.id]);
          const before = await dump(store);
          const r = await call(app, "DELETE", `/v1/networks/${a.id}`, {
            headers: ALICE,
          });
          assertError(r, 409, undefined, new RegExp(vm.id));
          assert.deepEqual(await dump(store), before);
          assertError(
            await call(app, "DELETE", `/v1/networks/${a.id}`, { headers: BOB }),
            404,
            undefined,
          );
          const d = await call(app, "DELETE", `/v1/vms/${vm.id}/nics/0`, {
            headers: ALICE,
          });
          assert.equal(d.status, 200);
          const ok = await call(app, "DELETE", `/v1/networks/${a.id}`, {
            headers: ALICE,
          });
          assert.equal(ok.status, 200, JSON.stringify(ok.body));
          assert.equal(await store.get(keys.network(a.id), Network), null);
          assert.equal(await store.get(keys.ipamVni(a.vni!), IpamEntry), null);
          assert.equal(
            await store.get(keys.ipamPrefix(a.prefix), IpamEntry),
            null,
          );
          // The freed VNI and /64 are given again.
          const again = await mkNet(app, { name: "again" });
          assert.equal(again.vni, a.vni);
          assert.equal(again.prefix, a.prefix);
        },
      );
    } finally {
      for (const s of stores) s.close();
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
