/**
 * VM NICs through `/v1/vms` against a real etcd: NICs with MACs and
 * addresses known in advance, a VM create with a bad network, attach and
 * detach on a pending VM (at once) and on a running one (a vm.nics task).
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { eui64, inPrefix6, MAC_PREFIX } from "../core/netaddr.ts";
import { IpamEntry } from "../core/schemas.ts";
import {
  type App,
  assertError,
  call,
  dump,
  noSanitize,
} from "./helpers/api.ts";
import { ALICE, BOB, withNetApiEnv } from "./helpers/net_api_env.ts";

/** The VMs network `id` lists (sorted), as its owner ALICE sees it. */
async function members(app: App, id: string): Promise<string[]> {
  const r = await call(app, "GET", `/v1/networks/${id}`, { headers: ALICE });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.vmCount, r.body.vms.length);
  return [...r.body.vms].sort();
}

Deno.test({
  name: "networks: API against a real etcd: VM NICs",
  ...noSanitize,
  async fn(t) {
    await withNetApiEnv(t, async ({ fresh, step, mkNet, mkVm, place }) => {
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
          assert.deepEqual(
            await members(app, legacy.id),
            [vm.id, vm2.id].sort(),
          );
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
            await members(app, b.id),
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
            await members(app, b.id),
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
            await members(app, a.id),
            [vm.id],
          );
          const again = await call(app, "DELETE", `/v1/vms/${vm.id}/nics/0`, {
            headers: ALICE,
          });
          assert.equal(again.status, 202);
          assert.equal(again.body.task, null);
        },
      );
    });
  },
});
