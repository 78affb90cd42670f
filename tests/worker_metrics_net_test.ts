/**
 * The worker's `/metrics` with a real qemu guest: a worker in a host
 * namespace (qemu driver, host networking), the disk-booting test guest
 * uploaded as an image, one VM from it with a NIC on a public network
 * (the host's bridge `pub0`). Real etcd, worker, qemu under TCG, the API
 * in process. The scrape has the guest's CPU time rising, its disk's
 * counters from QMP, the tap's counters rising when the host pings the
 * guest, the bridge's counters, and, once the guest sends with another
 * MAC, the port filter's drops labelled with the VM and rule `mac-spoof`;
 * a stopped qemu (no QMP answer) is left out and counted as a scrape error.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { ConfigSchema } from "../core/config.ts";
import { ImagesConfig } from "../core/config_images.ts";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { tapName } from "../drivers/net/mod.ts";
import { startCluster, waitFor } from "./helpers/cluster.ts";
import { ensureDiskGuest } from "./helpers/disk_guest.ts";
import {
  addBridge,
  guestAnswers,
  pingGuest,
  publicNetwork,
  spoofMac,
  startGuest,
} from "./helpers/guest_net.ts";
import { printNet } from "./helpers/net_e2e.ts";
import { createHostNet } from "./helpers/netns.ts";
import {
  deleteResources,
  serveEtcdOn,
  startWorkerIn,
} from "./helpers/ns_worker.ts";
import {
  metricsUrl,
  pick,
  promtoolCheck,
  scrape,
  series,
  value,
} from "./helpers/worker_metrics.ts";

Deno.test({
  name:
    "a worker's /metrics for a qemu guest: CPU rising, disk counters from QMP, tap counters rising with traffic, spoofed frames counted by VM and rule",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const base = await ensureDiskGuest();
    const c = await startCluster({ leaseTtlSeconds: 3 });
    const net = await createHostNet(["h1"]);
    try {
      await serveEtcdOn(c, net);
      await addBridge(net, "h1", "pub0");
      const images = ImagesConfig.parse({
        uploadDir: `${c.dir}/www`,
        fileStoreDir: `${c.dir}/store`,
      });
      const configFile = `${c.dir}/images.json`;
      await Deno.writeTextFile(configFile, JSON.stringify({ images }));
      await startWorkerIn(c, net, {
        name: "h1",
        cpus: 2,
        memoryMiB: 1024,
        env: {
          UCLOUD_CONFIG: configFile,
          UCLOUD_PUBLIC_BRIDGES: "pub0",
          UCLOUD_WORKER_METRICS_PORT: "0",
          // The test scrapes from the root namespace's bridge address.
          UCLOUD_WORKER_METRICS_ALLOW: net.etcdAddress,
        },
      });
      const url = await metricsUrl(c.store, "h1");
      assert.equal(
        new URL(url).hostname,
        `[${net.host("h1").address}]`,
        "listens on the host's underlay address",
      );
      const app = createApp({
        store: c.store,
        config: { tasks: ConfigSchema.shape.tasks.parse(undefined), images },
      });
      let r = await app.request("/v1/images", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "tinydisk" }),
      });
      assert.equal(r.status, 201, await r.text());
      const size = (await Deno.stat(base)).size;
      r = await app.request("/v1/images/tinydisk/upload", {
        method: "PUT",
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `bytes 0-${size - 1}/${size}`,
        },
        body: (await Deno.open(base)).readable,
      });
      assert.equal(r.status, 200, await r.text());
      await waitFor(
        "image ready",
        async () => {
          const d = (await c.store.list(keys.images, Image)).items[0]?.value;
          return d?.state === "ready";
        },
        120_000,
        200,
      );
      const pub = await publicNetwork(app, "pub0", "fd9e:1:2:4::/64");
      const guest = await startGuest(c, app, {
        name: "g",
        image: "tinydisk",
        disk: 1,
        networks: [pub.id],
      });
      const vm = guest.vm;
      const id = { vm: vm.id, name: "g", owner: vm.owner };
      const nic = {
        ...id,
        interface: tapName(vm.nics[0].mac),
        network: pub.id,
      };
      const read = async () => {
        const got = await scrape(url);
        assert.equal(got.status, 200, got.text);
        return got.text;
      };

      const first = await read();
      assert.equal(await promtoolCheck(first), "");
      const s1 = series(first);
      assert.ok(
        value(s1, "ucloud_vm_block_read_bytes_total", {
          ...id,
          device: "disk0",
        }) >
          0,
        "booting read the disk",
      );
      assert.ok(
        value(s1, "ucloud_vm_block_read_requests_total", {
          ...id,
          device: "disk0",
        }) > 0,
      );
      assert.ok(
        value(s1, "ucloud_vm_block_write_bytes_total", {
          ...id,
          device: "disk0",
        }) >=
          0,
      );
      assert.ok(value(s1, "ucloud_vm_info_memory_usage_bytes", id) > 0);
      const cpu1 = value(s1, "ucloud_vm_cpu_time_seconds_total", id);
      assert.ok(cpu1 > 0, `qemu CPU time ${cpu1}`);
      await waitFor(
        "the guest's CPU time rises",
        async () => {
          const s = series(await read());
          return value(s, "ucloud_vm_cpu_time_seconds_total", id) > cpu1;
        },
        60_000,
        500,
      );
      assert.ok(
        value(s1, "ucloud_network_receive_packets_total", {
          network: pub.id,
          device: "pub0",
          kind: "bridge",
        }) >= 0,
      );

      // The host pings the guest on pub0: the tap's counters rise.
      const ping = (n: number) => pingGuest(net, "h1", "pub0", vm, n);
      await guestAnswers(net, "h1", "pub0", vm);
      const before = series(await read());
      await ping(5);
      const after = series(await read());
      for (const f of ["receive", "transmit"]) {
        const name = `ucloud_vm_interface_${f}_packets_total`;
        const d = value(after, name, nic) - value(before, name, nic);
        assert.ok(d >= 5, `${name} rose by ${d}`);
        const bytes = `ucloud_vm_interface_${f}_bytes_total`;
        assert.ok(value(after, bytes, nic) > value(before, bytes, nic));
      }
      const spoofName = "ucloud_vm_firewall_dropped_packets_total";
      const spoof = { ...nic, rule: "mac-spoof" };
      assert.equal(value(after, spoofName, spoof), 0);

      // The guest sends with a MAC that is not its NIC's.
      await spoofMac(guest, 5);
      const dropped = value(series(await read()), spoofName, spoof);
      assert.ok(dropped >= 5, `mac-spoof drops ${dropped}`);

      // A qemu that does not answer QMP (stopped) is left out of the
      // scrape and counted; the rest is still reported.
      const pid = Number(vm.status.handle!.pid);
      Deno.kill(pid, "SIGSTOP");
      try {
        const t0 = performance.now();
        const s = series(await read());
        const ms = performance.now() - t0;
        assert.ok(ms < 15_000, `a scrape waited ${ms} ms for a stopped qemu`);
        assert.ok(
          value(s, "ucloud_scrape_errors_total", { source: "qmp" }) >= 1,
        );
        assert.deepEqual(pick(s, "ucloud_vm_block_read_bytes_total", id), []);
        assert.ok(value(s, "ucloud_vm_cpu_time_seconds_total", id) > 0);
      } finally {
        Deno.kill(pid, "SIGCONT");
      }
    } catch (err) {
      await c.printLogs();
      await printNet(net);
      throw err;
    } finally {
      await deleteResources(c, net);
      await c.stop();
      await net.destroy();
    }
  },
});
