/**
 * Issue 15 end to end: a real Prometheus (Debian's package) scrapes a test
 * cloud that it finds by itself through the generated configuration and
 * `GET /v1/monitoring/targets` of a real API process: two hosts as network
 * namespaces with a real worker each (qemu under TCG), real etcd, a tiny
 * guest with a NIC on the public network of h1's bridge `pub0`, a NIC-less
 * one on h2. Workers and API take only the bearer token Prometheus sends.
 * Queried from Prometheus: host series with their values, the VM's series
 * (CPU rising while the guest spins), its NIC's and the bridge's counters
 * moving with pings, the spoofing drops of that VM by rule `mac-spoof` and
 * their alert; every endpoint passes `promtool check metrics`; h2 killed
 * (SIGKILL of everything in its namespace) fires UcloudHostDead and its
 * VM's failover lands in `ucloud_failover_recovery_seconds`. Scrapes and
 * rules every second, the rules' `for:` at 1 s (the real ones are tested
 * by monitoring/rules_test.yml).
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import { tapName } from "../drivers/net/mod.ts";
import { startPrometheus } from "../scripts/prometheus.ts";
import {
  prometheusConfigText,
  RULES_FILE,
} from "../scripts/prometheus_config.ts";
import { noSanitize } from "./helpers/api.ts";
import { createVm, startCluster, waitFor } from "./helpers/cluster.ts";
import { guestRun } from "./helpers/console.ts";
import {
  addBridge,
  guestAnswers,
  pingGuest,
  publicNetwork,
  spoofMac,
  startGuest,
} from "./helpers/guest_net.ts";
import { printNet } from "./helpers/net_e2e.ts";
import { ApiProc } from "./helpers/nemesis/api_proc.ts";
import { createHostNet } from "./helpers/netns.ts";
import {
  deleteResources,
  serveEtcdOn,
  startWorkerIn,
} from "./helpers/ns_worker.ts";
import {
  activeTargets,
  alerts,
  query,
  type Sample,
} from "./helpers/prometheus.ts";
import { promtoolCheck, scrape } from "./helpers/worker_metrics.ts";

const TOKEN = "prometheus-cloud-test-token-0123";
const WAIT_MS = 90_000;

Deno.test({
  name:
    "a real Prometheus scrapes a test cloud found through discovery: host, VM and network series, a busy guest's CPU, NIC bytes with pings, spoofing drops, host-dead and the failover histogram",
  ...noSanitize,
  async fn(t) {
    const c = await startCluster({ leaseTtlSeconds: 3 });
    const net = await createHostNet(["h1", "h2"]);
    const tokenFile = `${c.dir}/metrics.token`;
    const configFile = `${c.dir}/config.json`;
    const api = new ApiProc({
      env: { ...c.env, UCLOUD_CONFIG: configFile },
      logFile: `${c.dir}/api.log`,
    });
    let prom: Awaited<ReturnType<typeof startPrometheus>> | undefined;
    try {
      await serveEtcdOn(c, net);
      await addBridge(net, "h1", "pub0");
      await Deno.writeTextFile(tokenFile, TOKEN);
      const onlyToken = { allow: [], bearerTokenFile: tokenFile };
      await Deno.writeTextFile(
        configFile,
        JSON.stringify({
          api: { metrics: onlyToken },
          worker: { metrics: onlyToken },
        }),
      );
      const env = { UCLOUD_CONFIG: configFile };
      await startWorkerIn(c, net, {
        name: "h1",
        cpus: 2,
        memoryMiB: 1024,
        env: { ...env, UCLOUD_PUBLIC_BRIDGES: "pub0" },
      });
      await api.start();
      const rulesFile = `${c.dir}/rules.yml`;
      await Deno.writeTextFile(
        rulesFile,
        (await Deno.readTextFile(RULES_FILE)).replace(
          /for: \d+[smh]/g,
          "for: 1s",
        ),
      );
      prom = await startPrometheus({
        dir: `${c.dir}/prometheus`,
        config: prometheusConfigText({
          apiUrl: api.url,
          rulesFile,
          tokenFile,
          scrapeInterval: "1s",
          evaluationInterval: "1s",
          refreshInterval: "1s",
        }),
      });
      const url = prom.url;
      /** The one series `q` gives once `ok` holds for it. */
      const one = (
        q: string,
        ok: (s: Sample) => boolean = () => true,
        what = q,
      ) =>
        waitFor(
          what,
          async () => {
            const r = await query(url, q);
            return r.length === 1 && ok(r[0]) ? r[0] : null;
          },
          WAIT_MS,
          250,
        );
      const valueOf = async (q: string) => (await one(q)).value;

      // The guest with a NIC on pub0 can only go to h1 (the bridge's
      // host); h2 comes after it, and the next VM spreads to h2.
      const app = createApp({ store: c.store });
      const pub = await publicNetwork(app, "pub0", "fd9e:1:2:5::/64");
      const g = await startGuest(c, app, { name: "g", networks: [pub.id] });
      assert.equal(g.vm.status.host, "h1");
      await startWorkerIn(c, net, {
        name: "h2",
        cpus: 2,
        memoryMiB: 1024,
        env,
      });
      await waitFor(
        "h2 alive",
        async () => (await c.store.count(keys.alives)) === 2,
        WAIT_MS,
        100,
      );
      const other = await createVm(app, "t");
      const onH2 = await waitFor(
        "VM t running",
        async () => {
          const d = (await c.store.get(keys.vm(other.id), Vm))?.value;
          return d?.status.phase === "running" ? d : null;
        },
        WAIT_MS,
        200,
      );
      assert.equal(onH2.status.host, "h2");
      const vm = `vm="${g.vm.id}"`;

      await t.step("Prometheus finds the API and both workers", async () => {
        await one('up{job="ucloud-api"} == 1');
        for (const h of ["h1", "h2"]) {
          await one(`up{job="ucloud-worker", host="${h}"} == 1`);
        }
      });

      await t.step(
        "promtool check metrics passes on every endpoint",
        async () => {
          const targets = await activeTargets(url);
          assert.deepEqual(
            targets.map((x) =>
              x.labels.job === "ucloud-api" ? "api" : x.labels.host
            ).sort(),
            ["api", "h1", "h2"],
          );
          for (const x of targets) {
            const r = await scrape(x.scrapeUrl, { token: TOKEN });
            assert.equal(r.status, 200, `${x.scrapeUrl}: ${r.text}`);
            assert.equal(await promtoolCheck(r.text), "", x.scrapeUrl);
            // Nobody gets in without the token.
            assert.equal((await scrape(x.scrapeUrl)).status, 403);
          }
        },
      );

      await t.step(
        "a host's series have its capacity, reservations and lease",
        async () => {
          const h1 = 'host="h1"';
          assert.equal(await valueOf(`ucloud_host_cpus{${h1}}`), 2);
          assert.equal(
            await valueOf(`ucloud_host_memory_bytes{${h1}}`),
            1024 * 1024 ** 2,
          );
          await one(`ucloud_host_reserved_cpus{${h1}} == 1`);
          await one(`ucloud_host_vms{${h1}, phase="running"} == 1`);
          assert.ok(
            await valueOf(`ucloud_host_memory_available_bytes{${h1}}`) > 0,
          );
          assert.ok(await valueOf(`ucloud_host_load1{${h1}}`) >= 0);
          const margin = await valueOf(
            `ucloud_lease_deadline_margin_seconds{${h1}}`,
          );
          assert.ok(margin > 0 && margin <= 3, `deadline margin ${margin}`);
          assert.ok(
            await valueOf(`ucloud_lease_keepalive_age_seconds{${h1}}`) < 3,
          );
        },
      );

      await t.step(
        "pinging the guest moves its NIC's and the bridge's counters",
        async () => {
          const nic = `${vm}, interface="${tapName(g.vm.nics[0].mac)}", ` +
            `network="${pub.id}"`;
          const bridge = `host="h1", network="${pub.id}", device="pub0", ` +
            `kind="bridge"`;
          const counters = [
            `ucloud_vm_interface_receive_packets_total{${nic}}`,
            `ucloud_vm_interface_transmit_packets_total{${nic}}`,
            `ucloud_vm_interface_receive_bytes_total{${nic}}`,
            `ucloud_vm_interface_transmit_bytes_total{${nic}}`,
            `ucloud_network_transmit_packets_total{${bridge}}`,
          ];
          await guestAnswers(net, "h1", "pub0", g.vm);
          // Prometheus has a sample after the last ping.
          await new Promise((r) => setTimeout(r, 2000));
          const before = await Promise.all(counters.map(valueOf));
          await pingGuest(net, "h1", "pub0", g.vm, 5);
          for (const [i, q] of counters.entries()) {
            const min = q.includes("bytes") ? 5 * 100 : 5;
            await one(
              `${q} - ${before[i]} >= ${min}`,
              undefined,
              `${q} to rise by ${min}`,
            );
          }
        },
      );

      await t.step(
        "a spoofing attempt shows in the drop counter of the VM and rule",
        async () => {
          const drops = `ucloud_vm_firewall_dropped_packets_total{${vm}, ` +
            `rule="mac-spoof"}`;
          assert.equal(await valueOf(drops), 0);
          await spoofMac(g, 5);
          const d = await one(`${drops} >= 5`);
          assert.equal(d.metric.host, "h1");
          assert.equal(d.metric.network, pub.id);
          const a = await waitFor(
            "UcloudSpoofingDropsRising",
            async () =>
              (await alerts(url)).find((x) =>
                x.labels.alertname === "UcloudSpoofingDropsRising" &&
                x.state === "firing"
              ),
            WAIT_MS,
            250,
          );
          assert.equal(a.labels.vm, g.vm.id);
          assert.equal(a.labels.rule, "mac-spoof");
        },
      );

      await t.step(
        "a VM's series: state, size, and CPU rising while it spins",
        async () => {
          const state = await one(`ucloud_vm_state{${vm}, phase="running"}`);
          assert.equal(state.value, 1);
          assert.equal(state.metric.name, "g");
          assert.equal(state.metric.owner, g.vm.owner);
          assert.equal(state.metric.host, "h1");
          assert.equal(await valueOf(`ucloud_vm_info_virtual_cpus{${vm}}`), 1);
          assert.equal(
            await valueOf(`ucloud_vm_info_maximum_memory_bytes{${vm}}`),
            128 * 1024 ** 2,
          );
          assert.ok(
            await valueOf(`ucloud_vm_info_memory_usage_bytes{${vm}}`) > 0,
          );
          assert.equal(await valueOf(`ucloud_vm_restarts{${vm}}`), 0);
          // Idle: the lowest 5-s rate of the last 20 s (after the boot and
          // the pings); then the guest spins its vCPU: on a loaded machine
          // that is far from a whole core, but a multiple of idle.
          const cpu = `ucloud_vm_cpu_time_seconds_total{${vm}}`;
          const idle = await valueOf(
            `min_over_time(rate(${cpu}[5s])[20s:1s])`,
          );
          await guestRun(
            g.console,
            "(while :; do :; done) >/dev/null 2>&1 & echo $! > /tmp/busy",
          );
          try {
            const busy = await one(
              `rate(${cpu}[5s])`,
              (s) => s.value > Math.max(2 * idle, idle + 0.04),
              `the CPU rate at 2 x ${idle} and 0.04 cores above at least`,
            );
            console.log(
              `guest CPU: idle ${idle.toFixed(3)}, busy ${
                busy.value.toFixed(3)
              } cores`,
            );
          } finally {
            await guestRun(g.console, "kill $(cat /tmp/busy)");
          }
        },
      );

      await t.step(
        "a killed host fires UcloudHostDead and its VM's failover lands in the histogram",
        async () => {
          await net.killHost("h2");
          const dead = await waitFor(
            "UcloudHostDead",
            async () =>
              (await alerts(url)).find((x) =>
                x.labels.alertname === "UcloudHostDead" && x.state === "firing"
              ),
            WAIT_MS,
            250,
          );
          assert.equal(dead.labels.host, "h2");
          const count = await one(
            'ucloud_failover_recovery_seconds_count{job="ucloud-api"} >= 1',
          );
          const n = count.value;
          assert.equal(
            await valueOf('ucloud_failover_recovery_seconds_bucket{le="60"}'),
            n,
            "within the 60 s budget",
          );
          const mean = (await valueOf("ucloud_failover_recovery_seconds_sum")) /
            n;
          assert.ok(mean > 0 && mean < 60, `mean recovery ${mean} s`);
          assert.ok((await valueOf("ucloud_failovers_total")) >= 1);
          assert.ok(
            (await valueOf('ucloud_failover_vms_total{action="evacuated"}')) >=
              1,
          );
          const moved = (await c.store.get(keys.vm(other.id), Vm))!.value;
          assert.equal(moved.status.host, "h1");
          assert.equal(moved.status.phase, "running");
          console.log(`failover: ${n} VM(s), mean ${mean.toFixed(2)} s`);
        },
      );
    } catch (err) {
      await c.printLogs();
      console.error(
        `--- api log ---\n${
          (await Deno.readTextFile(`${c.dir}/api.log`).catch(() => ""))
            .slice(-3000)
        }`,
      );
      await printNet(net);
      throw err;
    } finally {
      await prom?.stop();
      await deleteResources(c, net);
      await api.kill();
      await c.stop();
      await net.destroy();
    }
  },
});
