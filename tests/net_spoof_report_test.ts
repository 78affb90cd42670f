/**
 * `ucloud vm show` flags a NIC whose port filter drops what the VM sends
 * (issue 17, point 4): a VM namespace on a host sends spoofed frames, the
 * host's network sync writes the count into the VM's status, and the API
 * and the CLI show it (real etcd, the real network driver and API app).
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { eui64 } from "../core/netaddr.ts";
import { type Network, Vm } from "../core/schemas.ts";
import { tapName } from "../drivers/net/mod.ts";
import { main } from "../cli/main.ts";
import { call, headerAuth, noSanitize } from "./helpers/api.ts";
import { withNetHosts } from "./helpers/net_hosts.ts";
import { vmDoc, withBench } from "./helpers/task_ctx.ts";
import { hostNet, VmCaches } from "./helpers/host_vms.ts";
import { ETH, frame } from "./helpers/frames.ts";
import { marker, sendFrames } from "./helpers/vm_wire.ts";

const lan: Network = {
  id: "net-lan",
  name: "lan",
  owner: "alice",
  kind: "private",
  prefix: "fdc1:d00:8::/64",
  vni: 4244,
  mode: "multicast",
  group: "ff05::1094",
  ra: false,
  dhcp: { v6: false, v4: false },
  vms: [],
  createdAt: "2026-01-01T00:00:00Z",
};

Deno.test({
  name:
    "a VM that sends spoofed frames gets its NIC's drop count in its status, and `ucloud vm show` warns about it",
  ...noSanitize,
  async fn() {
    await withNetHosts(["h1"], (env) =>
      withBench(async (b) => {
        const caches = new VmCaches();
        try {
          const ns = env.net.host("h1").ns;
          await b.store.txn().put(keys.network(lan.id), lan).commit();
          const worker = await b.incarnation("h1");
          const net = await hostNet(env, b.store, caches, worker, {
            spoofDropsIntervalMs: 0,
          });
          const x = await env.vms.create({
            name: "x",
            hostNs: ns,
            port: tapName("02:c1:0d:00:08:01"),
            mac: "02:c1:0d:00:08:01",
          });
          const X6 = eui64(lan.prefix, x.mac);
          await b.putVm(vmDoc("vm-x", { phase: "running", host: "h1" }, {
            nics: [{
              slot: 0,
              network: lan.id,
              mac: x.mac,
              ipv6: X6,
              state: "attached",
            }],
          }));
          const read = async () => (await b.store.get(keys.vm("vm-x"), Vm))!;
          await net.sync({ vm: "vm-x" });
          // Nothing dropped yet: nothing written.
          assert.equal((await read()).value.status.spoofDrops, undefined);

          // Another VM's MAC, and another address with its own MAC.
          const other = "02:c1:0d:00:08:99";
          const udp = (src: string) =>
            frame.udp6(src, "ff02::1", 4000, 4001, marker("spoof"));
          await sendFrames(x, [
            frame.ether("33:33:00:00:00:01", other, ETH.ip6, udp(X6)),
            frame.ether(
              "33:33:00:00:00:01",
              x.mac,
              ETH.ip6,
              udp("fdc1:d00:8::42"),
            ),
          ], { repeat: 5 });
          await net.sync({ vm: "vm-x" });
          const vm = await read();
          const d = vm.value.status.spoofDrops?.["0"];
          assert.ok(d && d.packets >= 10, JSON.stringify(vm.value.status));
          assert.ok(Date.now() - Date.parse(d.at) < 60_000);
          // Unchanged counters: no further write.
          await net.sync({ vm: "vm-x" });
          assert.equal((await read()).modRevision, vm.modRevision);

          // The API shows it; the CLI warns.
          const app = createApp({ store: b.store, auth: headerAuth });
          const r = await call(app, "GET", "/v1/vms/vm-x", {
            headers: { "x-user": "alice" },
          });
          assert.equal(r.status, 200);
          assert.equal(r.body.status.spoofDrops["0"].packets, d.packets);
          const dir = await Deno.makeTempDir({ prefix: "uc-spoof-cli-" });
          let out = "", err = "";
          try {
            const code = await main(["vm", "show", "vm-x"], {
              fetch: (input, init) => {
                const headers = new Headers(init?.headers);
                headers.set("x-user", "alice");
                return Promise.resolve(
                  app.request(String(input), { ...init, headers }),
                );
              },
              env: { UCLOUD_API: "http://api.test", XDG_CONFIG_HOME: dir },
              stdout: { write: (t) => out += t },
              stderr: { write: (t) => err += t },
            });
            assert.equal(code, 0, err);
          } finally {
            await Deno.remove(dir, { recursive: true });
          }
          assert.match(
            out,
            new RegExp(
              `^warning: nic 0: ${d.packets} packets dropped by anti-spoofing \\(last ${
                d.at.replaceAll(".", "\\.")
              } `,
              "m",
            ),
          );
          await b.driver.fence();
        } finally {
          await caches.close();
        }
      }), { prefix: "ucspoof" });
  },
});
