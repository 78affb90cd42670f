/**
 * The ucloud benchmark (`deno task bench`): parses the flags
 * (`options.ts`), runs the phases, one file each in this folder, against
 * throwaway etcd servers and clusters they start and stop themselves, and
 * prints the table and the JSON:
 *
 * - `cas`:   raw etcd compare-and-swap transactions (`cas.ts`);
 * - `claim`: the task queue's claim + complete cycle (`claim.ts`);
 * - `api`:   `POST /v1/vms` latency over real HTTP (`api.ts`);
 * - `place`: placement throughput at `POST /v1/vms`, 100 hosts, 10,000 VMs
 *            (`place.ts`);
 * - `vm`:    one real worker with qemu: POST to QMP running and to the
 *            guest's marker (`vm.ts`);
 * - `image`: import throughput against `qemu-img convert`, and VM create
 *            from a file-store image and (not under --quick) from an RBD
 *            image on a one-node Ceph against no disk (`image.ts`);
 * - `failover`: SIGKILL of a host running qemu VMs, until they run elsewhere
 *            (`failover.ts`);
 * - `failover-sim`: the same with 50 sim VMs on the killed host, and an
 *            orderly worker restart (SIGTERM, a gap, a new worker) counting
 *            the VMs it restarted (`failover_sim.ts`);
 * - `net`:   the network driver's sync and NIC hot-plug (`net.ts`);
 * - `metadata`: metadata request latency from a VM namespace and key
 *            delete to gone (`metadata.ts`);
 * - `scrape`: a worker's `/metrics` with 50 sim VMs: time and size of a
 *            scrape, the worker's CPU time per scrape (`scrape.ts`);
 * - `churn`: VM create/delete cycles with the sim driver, time-compressed
 *            retention: keys, etcd size and history left (`churn.ts`); only
 *            with `--only=churn` (it takes minutes);
 * - `scale`: many sim hosts (real worker processes) idle at two VM counts
 *            per host, then churn: etcd requests and bytes per host, the
 *            API's and a worker's memory (`scale.ts`); only with
 *            `--only=scale` (minutes);
 * - `debian-boot`: 3 boots of the Debian image under TCG, VM create to ssh
 *            login (`debian_boot.ts`); only with `--only=debian-boot`;
 * - `web`:   headless Chromium: click "Create VM" to the VM list showing it
 *            running (sim host), and the Console link to the first frame
 *            of a qemu guest (`web.ts`); only with `--only=web`.
 *
 * Prints a table (name, value, unit, notes) and then one JSON line with
 * every figure, also written to `bench-results.json` in the working
 * directory unless `--no-write`. Progress goes to stderr.
 *
 * Usage:
 *   deno run -A scripts/bench/main.ts [--quick]
 *     [--only=cas,claim,api,place,vm,image,failover,failover-sim,net,metadata,scrape,churn,scale,debian-boot,web]
 *     [--no-write] [--n=2000] [--vms=10] [--image-vms=5] [--import-mib=256]
 *     [--place-vms=10000] [--hosts=100] [--policy=spread|pack] [--gap-ms=5000]
 *     [--cycles=2000,10000] [--scale-hosts=20] [--scale-vms=50,200]
 *     [--idle-s=60] [--churn-s=30] [--scale-ttl=10] [--web-vms=5]
 *     [--web-consoles=3]
 *
 * `--quick` (smaller N, 20 hosts and 500 placements, 3 VMs, 2 image VMs of
 * each kind and a 32 MiB import, 1 kill, 5 sim VMs, 5 scrapes) is the test suite's
 * smoke run. `--gap-ms`: how long the orderly restart of failover-sim
 * leaves the host without a worker process.
 * Everything started here (etcd, HTTP servers, the worker, qemu VMs, temp
 * dirs) is torn down in `finally`, on SIGINT/SIGTERM, and by a watchdog.
 */
import { startEtcd } from "../../core/etcd_server.ts";
import { type ApiResult, apiRows, benchApi } from "./api.ts";
import { benchCas, type CasResult, casRows } from "./cas.ts";
import { churnRows, type ChurnRun, churnRun } from "./churn.ts";
import { benchClaim, type ClaimResult, claimRows } from "./claim.ts";
import { failoverRows, type FailoverRun, failoverRun } from "./failover.ts";
import {
  type FailoverSimResult,
  failoverSimRows,
  failoverSimRun,
} from "./failover_sim.ts";
import {
  benchDebianBoot,
  type DebianBootResult,
  debianBootRows,
} from "./debian_boot.ts";
import { benchImage, type ImageResult, imageRows } from "./image.ts";
import {
  benchMetadata,
  type MetadataResult,
  metadataRows,
} from "./metadata.ts";
import { benchNet, type NetResult, netRows } from "./net.ts";
import { parseArgs, type Phase, PHASES } from "./options.ts";
import { benchPlace, type PlaceResult, placeRows } from "./place.ts";
import { type ScaleResult, scaleRows, scaleRun } from "./scale.ts";
import { type ScrapeResult, scrapeRows, scrapeRun } from "./scrape.ts";
import { Cleanup, progress, round, type Row, table } from "./util.ts";
import { benchVm, type VmResult, vmRows } from "./vm.ts";
import { benchWeb, type WebResult, webRows } from "./web.ts";

/** Private networks (one port each) the net phase syncs. */
const NET_NETWORKS = 50;

async function etcdVersion(): Promise<string> {
  try {
    const out = await new Deno.Command("etcd", {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).match(
      /etcd Version:\s*(\S+)/,
    )?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** The table: every phase that ran, failover first. */
function rows(r: Results): Row[] {
  return [
    ...(r.failover ? failoverRows(r.failover) : []),
    ...(r.failoverSim ? failoverSimRows(r.failoverSim) : []),
    ...(r.cas ? casRows(r.cas) : []),
    ...(r.claim ? claimRows(r.claim) : []),
    ...(r.api ? apiRows(r.api) : []),
    ...(r.place ? placeRows(r.place) : []),
    ...(r.vm ? vmRows(r.vm) : []),
    ...(r.image ? imageRows(r.image) : []),
    ...(r.net ? netRows(r.net) : []),
    ...(r.metadata ? metadataRows(r.metadata) : []),
    ...(r.scrape ? scrapeRows(r.scrape) : []),
    ...(r.churn ? churnRows(r.churn) : []),
    ...(r.scale ? scaleRows(r.scale) : []),
    ...(r.debianBoot ? debianBootRows(r.debianBoot) : []),
    ...(r.web ? webRows(r.web) : []),
  ];
}

interface Results {
  bench: "ucloud";
  version: 1;
  at: string;
  quick: boolean;
  phases: Phase[];
  env: {
    cpus: number;
    deno: string;
    etcd: string;
    os: string;
    /** 1-minute load average at the start: other work skews the figures. */
    loadAvg1: number | null;
  };
  durationS?: number;
  cas?: CasResult;
  claim?: ClaimResult;
  api?: ApiResult;
  place?: PlaceResult;
  vm?: VmResult;
  image?: ImageResult;
  failover?: FailoverRun[];
  failoverSim?: FailoverSimResult;
  net?: NetResult;
  metadata?: MetadataResult;
  scrape?: ScrapeResult;
  churn?: ChurnRun[];
  scale?: ScaleResult;
  debianBoot?: DebianBootResult;
  web?: WebResult;
}

async function main(): Promise<number> {
  const opts = parseArgs(Deno.args);
  const started = performance.now();
  const cleanup = new Cleanup();
  let exiting = false;
  const bail = async (why: string, code: number) => {
    if (exiting) return;
    exiting = true;
    console.error(`bench: ${why}; cleaning up`);
    await cleanup.run();
    Deno.exit(code);
  };
  const onSignal = () => bail("interrupted", 130);
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  // debian-boot: up to 20 min per boot under load, and the image upload.
  const watchdogMs = (opts.quick ? 360_000 : 1_500_000) +
    (opts.only.has("debian-boot") ? 3_900_000 : 0) +
    (opts.only.has("scale") ? 3_600_000 : 0) +
    // web: a guest boot under TCG, and the image of the tiny guest.
    (opts.only.has("web") ? 900_000 : 0) +
    // churn: 250 ms a cycle (it runs at about 15 cycles/s).
    (opts.only.has("churn")
      ? opts.churnCycles.reduce((a, b) => a + b, 0) * 250
      : 0);
  const watchdog = setTimeout(
    () => bail(`watchdog: still running after ${watchdogMs / 1000} s`, 1),
    watchdogMs,
  );

  const results: Results = {
    bench: "ucloud",
    version: 1,
    at: new Date().toISOString(),
    quick: opts.quick,
    phases: PHASES.filter((p) => opts.only.has(p)),
    env: {
      cpus: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
      etcd: await etcdVersion(),
      os: `${Deno.build.os} ${Deno.osRelease()}`,
      loadAvg1: round(Deno.loadavg()[0], 2),
    },
  };
  try {
    if (
      opts.only.has("cas") || opts.only.has("claim") ||
      opts.only.has("api") || opts.only.has("place")
    ) {
      const dir = await Deno.makeTempDir({ prefix: "uc-bench-" });
      cleanup.add("temp dir", () => Deno.remove(dir, { recursive: true }));
      const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
      cleanup.add("etcd", () => etcd.stop("SIGKILL"));
      progress(`etcd ${results.env.etcd} on ${etcd.endpoint}`);
      if (opts.only.has("cas")) {
        results.cas = await benchCas(etcd.endpoint, opts.n);
      }
      if (opts.only.has("claim")) {
        results.claim = await benchClaim(etcd.endpoint, opts.n, results.cas);
      }
      if (opts.only.has("api")) {
        results.api = await benchApi(etcd.endpoint, opts.apiRequests, cleanup);
      }
      if (opts.only.has("place")) {
        results.place = await benchPlace(etcd.endpoint, opts, results.cas);
      }
      await cleanup.run();
    }
    if (opts.only.has("vm")) results.vm = await benchVm(opts, cleanup);
    if (opts.only.has("image")) {
      results.image = await benchImage(opts, cleanup);
    }
    if (opts.only.has("failover")) {
      // Default TTL and the shortest the embedded etcd allows (1 s).
      const plan = opts.quick ? [[1, 1]] : [[3, 10], [1, 10]];
      results.failover = [];
      for (const [ttl, kills] of plan) {
        progress(`failover: ${kills} host kills with lease TTL ${ttl} s`);
        results.failover.push(await failoverRun(ttl, kills));
      }
    }
    if (opts.only.has("failover-sim")) {
      const [vms, kills] = opts.quick ? [5, 1] : [50, 10];
      progress(`failover-sim: ${kills} kills of a host with ${vms} sim VMs`);
      results.failoverSim = await failoverSimRun(
        { vms, kills, gapMs: opts.gapMs },
        cleanup,
      );
    }
    if (opts.only.has("net")) {
      progress(`net: driver sync with ${NET_NETWORKS} networks, NIC hot-plug`);
      results.net = await benchNet(opts.quick ? 10 : NET_NETWORKS);
    }
    if (opts.only.has("metadata")) {
      const [requests, deletes] = opts.quick ? [200, 5] : [1000, 20];
      progress(`metadata: ${requests} requests, ${deletes} key deletes`);
      results.metadata = await benchMetadata({ requests, deletes });
    }
    if (opts.only.has("scrape")) {
      progress(`scrape: worker /metrics with ${opts.scrapeVms} sim VMs`);
      results.scrape = await scrapeRun({
        vms: opts.scrapeVms,
        scrapes: opts.scrapes,
      }, cleanup);
    }
    if (opts.only.has("churn")) {
      results.churn = [];
      for (const cycles of opts.churnCycles) {
        progress(`churn: ${cycles} VM create/delete cycles (sim driver)`);
        results.churn.push(await churnRun({ cycles }, cleanup));
      }
    }
    if (opts.only.has("scale")) {
      progress(
        `scale: ${opts.scaleHosts} hosts, ${opts.scaleVms} VMs per host, ` +
          `${opts.idleSeconds} s idle, ${opts.churnSeconds} s churn`,
      );
      results.scale = await scaleRun({
        hosts: opts.scaleHosts,
        vmsPerHost: opts.scaleVms,
        idleSeconds: opts.idleSeconds,
        churnSeconds: opts.churnSeconds,
        settleMs: opts.quick ? 1000 : 5000,
        ttlSeconds: opts.scaleTtlSeconds,
      }, cleanup);
    }
    if (opts.only.has("debian-boot")) {
      progress("debian-boot: 3 boots of the Debian image to ssh (TCG)");
      results.debianBoot = await benchDebianBoot({ boots: 3 }, cleanup);
    }
    if (opts.only.has("web")) {
      results.web = await benchWeb(
        { vms: opts.webVms, consoles: opts.webConsoles },
        cleanup,
      );
    }
  } finally {
    await cleanup.run();
    clearTimeout(watchdog);
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  results.durationS = round((performance.now() - started) / 1000);

  console.log(table(rows(results)));
  console.log(
    `total ${results.durationS} s; load average at start ${results.env.loadAvg1} ` +
      `on ${results.env.cpus} CPUs`,
  );
  const json = JSON.stringify(results);
  console.log(json);
  if (opts.write) {
    await Deno.writeTextFile("bench-results.json", json + "\n");
    progress(`wrote ${Deno.cwd()}/bench-results.json`);
  }
  const failed = (results.cas?.failed ?? 0) + (results.claim?.failed ?? 0) +
    (results.api?.errors ?? 0) + (results.place?.overcommitted ?? 0);
  return failed ? 1 : 0;
}

if (import.meta.main) {
  let code = 1;
  try {
    code = await main();
  } catch (err) {
    console.error(`bench: failed: ${err instanceof Error ? err.stack : err}`);
  }
  // The etcd client may keep timers alive; every resource is already closed.
  Deno.exit(code);
}
