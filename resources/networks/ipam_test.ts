/**
 * The network resource without HTTP, against a real etcd: VNI and /64
 * allocation (ipam.ts), and creates and deletes taking and freeing them.
 */
import assert from "node:assert/strict";
import { ConflictError, ForbiddenError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { IpamEntry, type Network } from "../../core/schemas.ts";
import { etcdTest } from "../_fixture.ts";
import { createNetwork } from "./create.ts";
import { deleteNetwork } from "./delete.ts";
import { freePrefix, freeVni, releaseIpam, takeIpam } from "./ipam.ts";

const ALICE = { name: "alice", admin: false };
const ADMIN = { name: "root", admin: true };

etcdTest("network IPAM against a real etcd", async ({ etcd, step }) => {
  await step(
    "freeVni() returns the lowest VNI without an ipam key, a later one with skip, null when none is free",
    async () => {
      const { store, config } = etcd.deps({ vniMin: 10, vniMax: 13 });
      const net = config.network!;
      assert.equal(await freeVni(store, net, 0), 10);
      await store.txn().put(keys.ipamVni(10), { network: "net-a" })
        .put(keys.ipamVni(12), { network: "net-b" }).commit();
      assert.equal(await freeVni(store, net, 0), 11);
      assert.equal(await freeVni(store, net, 1), 13);
      // Fewer free than skipped: the last free one.
      assert.equal(await freeVni(store, net, 5), 13);
      await store.txn().put(keys.ipamVni(11), { network: "net-c" })
        .put(keys.ipamVni(13), { network: "net-d" }).commit();
      assert.equal(await freeVni(store, net, 0), null);
    },
  );

  await step(
    "freePrefix() hands out the pool's /64s in order, passing taken ones",
    async () => {
      const { store, config } = etcd.deps({ pool: "fd00:1::/63" });
      const net = config.network!;
      assert.equal(await freePrefix(store, net, 0), "fd00:1::/64");
      await store.txn().put(keys.ipamPrefix("fd00:1::/64"), {
        network: "net-a",
      }).commit();
      assert.equal(await freePrefix(store, net, 0), "fd00:1:0:1::/64");
      await store.txn().put(keys.ipamPrefix("fd00:1:0:1::/64"), {
        network: "net-b",
      }).commit();
      assert.equal(await freePrefix(store, net, 0), null);
    },
  );

  await step(
    "takeIpam() fails a transaction whose VNI or /64 is taken; releaseIpam() frees both",
    async () => {
      const { store } = etcd.deps();
      const doc = (id: string, vni: number, prefix: string): Network => ({
        id,
        name: id,
        owner: "alice",
        kind: "private",
        prefix,
        vni,
        ra: true,
        dhcp: { v6: false, v4: false },
        vms: [],
        createdAt: "2026-01-01T00:00:00Z",
      });
      const a = doc("net-a", 100, "fdc1:d00::/64");
      assert.ok((await takeIpam(store.txn(), a).commit()).ok);
      const sameVni = doc("net-b", 100, "fdc1:d00:0:1::/64");
      assert.equal(
        (await takeIpam(store.txn(), sameVni).commit()).ok,
        false,
      );
      const samePrefix = doc("net-c", 101, "fdc1:d00::/64");
      assert.equal(
        (await takeIpam(store.txn(), samePrefix).commit()).ok,
        false,
      );
      assert.deepEqual(
        (await store.get(keys.ipamVni(100), IpamEntry))?.value,
        { network: "net-a" },
      );
      assert.ok((await releaseIpam(store.txn(), a).commit()).ok);
      assert.deepEqual(await store.keys("ipam/"), []);
    },
  );

  await step(
    "createNetwork() gives concurrent creates distinct VNIs and /64s",
    async () => {
      const deps = etcd.deps();
      const nets = await Promise.all(
        Array.from(
          { length: 12 },
          (_, i) =>
            createNetwork(deps, ALICE, { name: `n${i}`, kind: "private" }),
        ),
      );
      assert.equal(new Set(nets.map((n) => n.vni)).size, 12);
      assert.equal(new Set(nets.map((n) => n.prefix)).size, 12);
      const { store } = deps;
      for (const n of nets) {
        assert.deepEqual(
          (await store.get(keys.ipamVni(n.vni!), IpamEntry))?.value,
          { network: n.id },
        );
        assert.deepEqual(
          (await store.get(keys.ipamPrefix(n.prefix), IpamEntry))?.value,
          { network: n.id },
        );
      }
    },
  );

  await step(
    "createNetwork() throws ConflictError once the VNI range is used up, writing nothing",
    async () => {
      const deps = etcd.deps({ vniMin: 7, vniMax: 7 });
      const first = await createNetwork(deps, ALICE, {
        name: "a",
        kind: "private",
      });
      assert.equal(first.vni, 7);
      const before = await deps.store.keys("");
      await assert.rejects(
        createNetwork(deps, ALICE, { name: "b", kind: "private" }),
        (e) =>
          e instanceof ConflictError &&
          e.message === "Cannot create network: no free VNI in 7..7",
      );
      assert.deepEqual(await deps.store.keys(""), before);
    },
  );

  await step(
    "deleteNetwork() frees its VNI and /64 for the next create",
    async () => {
      const deps = etcd.deps({ vniMin: 7, vniMax: 7, pool: "fd00:2::/64" });
      const a = await createNetwork(deps, ALICE, {
        name: "a",
        kind: "private",
      });
      await assert.rejects(
        deleteNetwork(deps.store, { name: "bob", admin: false }, a.id),
        { name: "NotFoundError" },
      );
      await deleteNetwork(deps.store, ALICE, a.id);
      // What stays is alice's usage, back at zero networks.
      assert.deepEqual(await deps.store.keys(""), ["usage/alice"]);
      const b = await createNetwork(deps, ALICE, {
        name: "b",
        kind: "private",
      });
      assert.deepEqual([b.vni, b.prefix], [7, "fd00:2::/64"]);
    },
  );

  await step(
    "deleteNetwork() of a public network is the admin's only",
    async () => {
      const deps = etcd.deps();
      const pub = await createNetwork(deps, ADMIN, {
        name: "pub",
        kind: "public",
        bridge: "br-pub",
        prefix: "2001:db8:1::/64",
      });
      await assert.rejects(
        deleteNetwork(deps.store, ALICE, pub.id),
        (e) =>
          e instanceof ForbiddenError &&
          e.message ===
            `Cannot delete network ${pub.id}: it is not alice's`,
      );
      await deleteNetwork(deps.store, ADMIN, pub.id);
    },
  );
});
