/**
 * A worker in a host namespace (tests/helpers/ns_worker.ts) with a qemu VM
 * on a network with DHCPv4: the DHCP namespace it makes is named after the
 * host's (`<ns>-ucd…`), `deleteResources()` has the worker remove it and
 * its dnsmasq itself, and after `cluster.stop()` (workers SIGKILLed with
 * their VMs running) `net.destroy()` leaves none of the test's processes
 * or namespaces.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import type { Network, Vm } from "../core/schemas.ts";
import { type App, call, headerAuth, noSanitize } from "./helpers/api.ts";
import { type Cluster, startCluster, waitFor } from "./helpers/cluster.ts";
import { printNet, vmDoc } from "./helpers/net_e2e.ts";
import { createHostNet, type HostNet } from "./helpers/netns.ts";
import {
  deleteResources,
  pidsMentioning,
  serveEtcdOn,
  startWorkerIn,
} from "./helpers/ns_worker.ts";

const ALICE = { "X-User": "alice" };

async function netnsList(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"] })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n")
    .map((l) => l.split(" ")[0]).filter(Boolean);
}

/** A network with DHCPv4 and one running VM on it. */
async function vmOnDhcpNet(c: Cluster, app: App, name: string): Promise<Vm> {
  const r = await call(app, "POST", "/v1/networks", {
    headers: ALICE,
    json: { name, ipv4: "198.51.100.0/24", dhcp: { v4: true } },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const network = r.body as Network;
  const v = await call(app, "POST", "/v1/vms", {
    headers: ALICE,
    json: { name, cpus: 1, memory: 128, networks: [network.id] },
  });
  assert.equal(v.status, 201, JSON.stringify(v.body));
  const id = v.body.vm.id as string;
  return await waitFor(
    `${name} running`,
    async () => {
      const d = await vmDoc(c, id);
      return d?.status.phase === "running" ? d : null;
    },
    120_000,
    200,
  );
}

Deno.test({
  name:
    "a worker in a host namespace names its DHCP namespace after the host's; deleteResources() has it remove the namespace and dnsmasq; net.destroy() after cluster.stop() leaves no process or namespace",
  ...noSanitize,
  async fn(ctx) {
    const t = {
      step: async (name: string, fn: () => Promise<void>) => {
        if (!await ctx.step(name, fn)) throw new Error(`step failed: ${name}`);
      },
    };
    const c = await startCluster({ leaseTtlSeconds: 3 });
    let net: HostNet | undefined;
    let stopped = false;
    try {
      net = await createHostNet(["h1"]);
      const h1 = net.host("h1");
      await serveEtcdOn(c, net);
      await startWorkerIn(c, net, { name: "h1", cpus: 2, memoryMiB: 1024 });
      await waitFor(
        "h1 alive",
        async () => (await c.store.count(keys.alives)) === 1,
        20_000,
      );
      const app = createApp({ store: c.store, auth: headerAuth });
      const dhcpNses = async () =>
        (await netnsList()).filter((n) => n.startsWith(`${h1.ns}-ucd`));
      const dnsmasqs = async () =>
        (await pidsMentioning(c.dir)).filter((p) => / dnsmasq /.test(` ${p}`));
      /** `f`'s answer once it is not empty. */
      const some = (f: () => Promise<string[]>) => async () => {
        const v = await f();
        return v.length ? v : null;
      };

      await t.step(
        "the VM's DHCP server runs in a namespace named after the host's",
        async () => {
          await vmOnDhcpNet(c, app, "d1");
          const nses = await waitFor(
            "a DHCP namespace",
            some(dhcpNses),
            30_000,
          ).catch(async (err) => {
            const all = (await netnsList()).join(" ");
            throw new Error(`${err.message}; namespaces: ${all}`);
          });
          assert.equal(nses.length, 1, nses.join(" "));
          const pids = await waitFor("dnsmasq", some(dnsmasqs), 30_000);
          assert.equal(pids.length, 1, pids.join("\n"));
        },
      );

      await t.step(
        "deleteResources(): the worker removes the DHCP namespace and its dnsmasq itself",
        async () => {
          await deleteResources(c, net!, { timeoutMs: 60_000 });
          assert.equal(await c.store.count(keys.vms), 0);
          assert.equal(await c.store.count(keys.networks), 0);
          assert.deepEqual(await dhcpNses(), []);
          assert.deepEqual(await dnsmasqs(), []);
        },
      );

      await t.step(
        "after cluster.stop() with a VM running, net.destroy() kills its dnsmasq and removes its namespaces",
        async () => {
          await vmOnDhcpNet(c, app, "d2");
          await waitFor("a DHCP namespace again", some(dhcpNses), 30_000);
          await waitFor("dnsmasq again", some(dnsmasqs), 30_000);
          stopped = true;
          await c.stop();
          await net!.destroy();
          assert.deepEqual(await pidsMentioning(c.dir), []);
          assert.deepEqual(
            (await netnsList()).filter((n) => n.startsWith(`uc-${net!.id}-`)),
            [],
          );
        },
      );
    } catch (err) {
      if (!stopped) await c.printLogs();
      if (net) await printNet(net).catch(() => {});
      throw err;
    } finally {
      if (!stopped) await c.stop();
      await net?.destroy();
    }
  },
});
