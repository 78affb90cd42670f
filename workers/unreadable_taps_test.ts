import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import type { Store } from "../core/store.ts";
import { legacyTapName, tapName } from "../drivers/net/names.ts";
import { withEtcd } from "../tests/helpers/etcd_env.ts";
import { vmDoc } from "../tests/helpers/task_ctx.ts";
import { UnreadableTaps } from "./unreadable_taps.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name:
    "UnreadableTaps.of() lists ipam/mac/ in pages for VMs whose host is unknown, again only when that set changes, and names a VM last seen here by its NICs",
  ...noSanitize,
  async fn() {
    await withEtcd(async (store) => {
      const macs = ["01", "02", "03", "04", "05"].map((x) =>
        `02:c1:0d:00:0a:${x}`
      );
      const txn = store.txn();
      macs.forEach((mac, i) =>
        txn.put(keys.ipamMac(mac), {
          network: "net-a",
          vm: i % 2 ? "vm-b" : "vm-a",
          slot: Math.floor(i / 2),
        })
      );
      await txn.commit();
      let lists = 0;
      const counted = new Proxy(store, {
        get(t, p) {
          const v = Reflect.get(t, p);
          if (p !== "list") return typeof v === "function" ? v.bind(t) : v;
          return (...args: Parameters<Store["list"]>) => {
            lists++;
            return t.list(...args);
          };
        },
      });
      const taps = new UnreadableTaps(counted, 2);
      const ofMacs = (...is: number[]) => is.map((i) => tapName(macs[i]));
      const a = await taps.of(new Map([["vm-a", null]]));
      assert.deepEqual(a.filter((t) => t.length === 15), ofMacs(0, 2, 4));
      assert.ok(a.includes(legacyTapName("vm-a", 0)));
      assert.equal(lists, 3, "pages of 2 of 5 entries");
      await taps.of(new Map([["vm-a", null]]));
      assert.equal(lists, 3, "listed again for the same ids");
      const ab = await taps.of(new Map([["vm-a", null], ["vm-b", null]]));
      assert.deepEqual(
        ab.filter((t) => t.length === 15).sort(),
        ofMacs(0, 1, 2, 3, 4).sort(),
      );
      assert.equal(lists, 6);
      const nic = {
        slot: 0,
        network: "net-a",
        mac: "02:c1:0d:00:0a:09",
        ipv6: "fdc1::1",
        state: "attached" as const,
      };
      const seen = await taps.of(
        new Map([["vm-c", vmDoc("vm-c", { host: "h1" }, { nics: [nic] })]]),
      );
      assert.ok(seen.includes(tapName(nic.mac)));
      assert.equal(lists, 6, "listed for a VM last seen here");
    });
  },
});
