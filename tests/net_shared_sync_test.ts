/**
 * Concurrent network syncs of a host share one run: a caller whose task is
 * aborted stops waiting, and the sync goes on for the others. Real etcd, a
 * host namespace with the real network driver.
 */
import assert from "node:assert/strict";
import { bridgeOf, tapName } from "../drivers/net/mod.ts";
import { noSanitize } from "./helpers/api.ts";
import { lan, link, nic, withHost } from "./helpers/host_ports.ts";
import { vmDoc } from "./helpers/task_ctx.ts";

Deno.test({
  name:
    "HostNet.sync() shared by two callers goes on for the other when the one that queued it is aborted",
  ...noSanitize,
  async fn() {
    await withHost(async ({ b, ns, hostNet }) => {
      for (const [id, n] of [["vm-x", 9], ["vm-y", 10]] as const) {
        await b.putVm(
          vmDoc(id, { phase: "starting", host: "h1" }, { nics: [nic(n)] }),
        );
      }
      const net = await hostNet();
      const aborted = new AbortController();
      const x = net.sync({ vm: "vm-x", signal: aborted.signal });
      const y = net.sync({ vm: "vm-y" });
      aborted.abort(new Error("vm-x's task was canceled"));
      const [rx, ry] = await Promise.allSettled([x, y]);
      assert.equal(
        ry.status,
        "fulfilled",
        String(ry.status === "rejected" && ry.reason),
      );
      assert.equal(rx.status, "rejected");
      assert.match(String(rx.reason), /vm-x's task was canceled/);
      for (const n of [9, 10]) {
        assert.equal(
          (await link(ns, tapName(nic(n).mac)))?.master,
          bridgeOf(lan),
        );
      }
    });
  },
});
