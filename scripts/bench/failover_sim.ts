/**
 * Failover and orderly-restart benchmark at scale, sim driver (one plain
 * process per VM): three hosts as network namespaces, a worker in each.
 *
 * - Failover: `vms` VMs are gathered on the victim host (the other two are
 *   drained, so their VMs move to it, then enabled again); every process of
 *   the victim (worker, fencer, VMs) is SIGKILLed, and the time from the kill
 *   until every one of its VMs runs on another host (phase running there and
 *   its sim process alive in that host's namespace) is taken, as a whole and
 *   per VM. The victim then rejoins as a new incarnation; `kills` rounds.
 * - Orderly restart: with `vms` VMs on the victim, only its worker process is
 *   sent SIGTERM (fencer and VMs keep running), a new worker process for the
 *   same host starts `gapMs` after the old one exited, and the VMs restarted
 *   meanwhile are counted (sim pid changed, or moved to another host), with
 *   the `host.failed` tasks created and the time the new worker took to
 *   register. Zero restarts is the goal of the worker hand-over.
 *
 * Usage: `deno run -A scripts/bench/failover_sim.ts [--vms=50] [--kills=10]
 * [--gap-ms=5000]`, or through `scripts/bench/main.ts --only=failover-sim`.
 */
import { createApp } from "../../api/app.ts";
import { keys } from "../../core/keys.ts";
import { Alive, Task, Vm } from "../../core/schemas.ts";
import { startCluster, waitFor } from "../../tests/helpers/cluster.ts";
import { createHostNet, type HostNet } from "../../tests/helpers/netns.ts";
import { serveEtcdOn } from "../../tests/helpers/ns_worker.ts";
import { HOSTS, Hosts, POLL_MS, VICTIM, WAIT_MS } from "./sim_hosts.ts";
import {
  type Cleanup,
  round,
  type Row,
  sleep,
  summarize,
  type Summary,
  table,
} from "./util.ts";

/** Options of {@linkcode failoverSimRun}. */
export interface FailoverSimOptions {
  /** VMs on the victim host in every round. */
  vms: number;
  /** SIGKILL rounds. */
  kills: number;
  /** Time without a worker process in the orderly restart, ms. */
  gapMs: number;
  /** Lease TTL of the workers (default 3 s, the configuration's default). */
  ttlSeconds?: number;
}

/** What the orderly worker restart did to the VMs of its host. */
export interface RestartResult {
  vms: number;
  gapMs: number;
  /** VMs whose sim process changed or that left the host: the goal is 0. */
  restarts: number;
  /** Of those, VMs that run on another host afterwards. */
  moved: number;
  /** `host.failed` tasks created for the host after the SIGTERM. */
  hostFailedTasks: number;
  /** SIGTERM until the old worker process exited, ms. */
  stopMs: number;
  /** New worker process started until its alive key names its pid, ms. */
  registeredMs: number;
  /** SIGTERM until every VM ran again (somewhere), ms. */
  allRunningMs: number;
}

/** Result of {@linkcode failoverSimRun}. */
export interface FailoverSimResult {
  ttlSeconds: number;
  marginMs: number;
  vms: number;
  kills: number;
  /** Per kill: kill until the last of its VMs runs elsewhere, ms. */
  allMs: Summary;
  /** Per VM and kill: kill until that VM runs elsewhere, ms. */
  perVmMs: Summary;
  allSamples: number[];
  restart: RestartResult;
}

/** Runs the failover rounds, then the orderly restart, in one cluster. */
export async function failoverSimRun(
  opts: FailoverSimOptions,
  cleanup?: Cleanup,
): Promise<FailoverSimResult> {
  const ttlSeconds = opts.ttlSeconds ?? 3;
  const marginMs = ttlSeconds >= 3 ? 1000 : Math.floor(ttlSeconds * 1000 / 3);
  const c = await startCluster({ leaseTtlSeconds: ttlSeconds, guest: false });
  c.env.UCLOUD_LEASE_MARGIN_MS = String(marginMs);
  c.env.UCLOUD_DRIVER = "sim";
  let net: HostNet | undefined;
  let down: Promise<void> | undefined;
  const teardown = () =>
    down ??= (async () => {
      // Namespaces first: that kills every worker, fencer and sim process.
      await net?.destroy().catch((err) =>
        console.error(`bench: failover-sim: ${err}`)
      );
      await c.stop();
    })();
  cleanup?.add("failover-sim cluster and host namespaces", teardown);
  try {
    net = await createHostNet(HOSTS);
    await serveEtcdOn(c, net);
    const h = new Hosts(c, net, createApp({ store: c.store }), opts.vms);
    for (const name of HOSTS) await h.start(name);
    await h.allAlive();
    const allSamples: number[] = [];
    const perVm: number[] = [];
    for (let k = 0; k < opts.kills; k++) {
      await h.gather(k === 0);
      const pending = new Set((await h.vms()).map((v) => v.id));
      const first = perVm.length;
      const t0 = performance.now();
      await net.killHost(VICTIM);
      await waitFor(
        `VMs of ${VICTIM} running elsewhere`,
        async () => {
          for (const v of await h.vms()) {
            if (
              pending.has(v.id) && v.status.host !== VICTIM &&
              await h.runs(v)
            ) {
              perVm.push(performance.now() - t0);
              pending.delete(v.id);
            }
          }
          return pending.size === 0;
        },
        WAIT_MS,
        POLL_MS,
      );
      allSamples.push(Math.max(...perVm.slice(first)));
      progress(
        `kill ${k + 1}/${opts.kills}: ${opts.vms} VMs elsewhere after ${
          Math.round(allSamples.at(-1)!)
        } ms`,
      );
      // The killed host comes back as a new incarnation for the next round.
      await h.start(VICTIM);
      await h.allAlive();
    }
    await h.gather(opts.kills === 0);
    const restart = await orderlyRestart(h, opts.gapMs, ttlSeconds);
    return {
      ttlSeconds,
      marginMs,
      vms: opts.vms,
      kills: opts.kills,
      allMs: summarize(allSamples),
      perVmMs: summarize(perVm),
      allSamples: allSamples.map((s) => Math.round(s)),
      restart,
    };
  } catch (err) {
    await c.printLogs(3000);
    throw err;
  } finally {
    await teardown();
  }
}

/** SIGTERM of the victim's worker only, a gap, a new worker process. */
async function orderlyRestart(
  h: Hosts,
  gapMs: number,
  ttlSeconds: number,
): Promise<RestartResult> {
  const before = new Map((await h.vms()).map((v) => [v.id, where(v)]));
  const wall = new Date().toISOString();
  const old = h.c.workers.get(VICTIM)!;
  progress(`restart: SIGTERM to the worker of ${VICTIM}, gap ${gapMs} ms`);
  const t0 = performance.now();
  await old.kill("SIGTERM");
  const stopMs = performance.now() - t0;
  await sleep(gapMs);
  const t1 = performance.now();
  const w = await h.start(VICTIM);
  await waitFor(
    `new worker of ${VICTIM} registered`,
    async () => {
      const a = await h.c.store.get(keys.alive(VICTIM), Alive);
      return a?.value.pid === w.pid;
    },
    WAIT_MS,
    POLL_MS,
  );
  const registeredMs = performance.now() - t1;
  await waitFor(
    "every VM running",
    async () => {
      const vms = await h.vms();
      return vms.length === before.size && await h.allRun(vms);
    },
    WAIT_MS,
    POLL_MS,
  );
  const allRunningMs = performance.now() - t0;
  // A late fence or failover would still show up after a lease TTL.
  await sleep(ttlSeconds * 1000 + 1000);
  const after = await h.vms();
  const restarts = after.filter((v) => before.get(v.id) !== where(v)).length;
  const moved = after.filter((v) => v.status.host !== VICTIM).length;
  const hostFailedTasks = (await h.c.store.list(keys.tasks, Task)).items
    .filter(({ value: t }) =>
      t.kind === "host.failed" && t.payload.host === VICTIM &&
      t.createdAt >= wall
    ).length;
  progress(
    `restart: ${restarts} of ${before.size} VMs restarted, ${hostFailedTasks} host.failed`,
  );
  return {
    vms: before.size,
    gapMs,
    restarts,
    moved,
    hostFailedTasks,
    stopMs: round(stopMs),
    registeredMs: round(registeredMs),
    allRunningMs: round(allRunningMs),
  };
}

/** Where the VM's process is according to its status: `host/pid`. */
function where(v: Vm): string {
  return `${v.status.host}/${(v.status.handle as { pid?: number })?.pid}`;
}

function progress(msg: string): void {
  console.error(`bench: failover-sim: ${msg}`);
}

/** Rows of the bench table. */
export function failoverSimRows(r: FailoverSimResult): Row[] {
  const n = `${r.vms} VMs on the killed host, sim, TTL ${r.ttlSeconds} s`;
  const out: Row[] = [];
  for (const p of ["p50", "p95"] as const) {
    out.push({
      name: `failover sim, all ${r.vms} VMs, ${p}`,
      value: r.allMs[p],
      unit: "ms",
      notes: `SIGKILL -> last VM running elsewhere; ${n}, ${r.kills} kills`,
    });
  }
  for (const p of ["p50", "p95"] as const) {
    out.push({
      name: `failover sim, per VM, ${p}`,
      value: r.perVmMs[p],
      unit: "ms",
      notes: `${r.perVmMs.n} VM samples, max ${r.perVmMs.max} ms`,
    });
  }
  const s = r.restart;
  out.push(
    {
      name: "worker restart, VM restarts",
      value: s.restarts,
      unit: `of ${s.vms} VMs`,
      notes: `SIGTERM, ${s.gapMs} ms gap, new worker; ${s.moved} moved, ` +
        `${s.hostFailedTasks} host.failed; goal 0`,
    },
    {
      name: "worker restart, registered",
      value: s.registeredMs,
      unit: "ms",
      notes: `new process -> alive key; all VMs running ${s.allRunningMs} ms ` +
        `after SIGTERM (exit took ${s.stopMs} ms)`,
    },
  );
  return out;
}

if (import.meta.main) {
  const arg = (name: string, dflt: number) =>
    Number(
      Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(
        3 + name.length,
      ) ?? dflt,
    );
  const r = await failoverSimRun({
    vms: arg("vms", 50),
    kills: arg("kills", 10),
    gapMs: arg("gap-ms", 5000),
  });
  console.log(table(failoverSimRows(r)));
  console.log(JSON.stringify(r));
  Deno.exit(0);
}
