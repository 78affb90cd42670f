/**
 * `/v1/networks` against a real etcd: allocation of VNIs and /64s (unique
 * under concurrency), public networks and their visibility, delete refused
 * while in use, and bad input that leaves etcd exactly as it was.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { eui64 } from "../core/netaddr.ts";
import { IpamEntry, Network } from "../core/schemas.ts";
import { assertError, call, dump, noSanitize } from "./helpers/api.ts";
import { ADMIN, ALICE, BOB, withNetApiEnv } from "./helpers/net_api_env.ts";

Deno.test({
  name: "networks: API against a real etcd: allocation, visibility, delete",
  ...noSanitize,
  async fn(t) {
    await withNetApiEnv(t, async ({ fresh, step, mkNet, mkVm }) => {
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
    });
  },
});
