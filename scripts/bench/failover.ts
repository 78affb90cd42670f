/**
 * Failover benchmark: three hosts as network namespaces, a worker in each,
 * one tiny qemu VM per host. Each round SIGKILLs every process of one host
 * that runs VMs (worker, fencer, qemu) and measures, per VM, the time from
 * the kill until the VM runs on another host and QMP says "running". The
 * killed host's worker is then restarted (a new incarnation) for the next
 * round. Run once with the default lease TTL and once with the shortest the
 * embedded etcd allows (1 s with its 50 ms heartbeat / 500 ms election).
 *
 * Usage: `deno run -A scripts/bench/failover.ts [--kills=N] [--ttl=3,1]`, or
 * through `scripts/bench/main.ts --only=failover`.
 */
import { keys } from "../../core/keys.ts";
import { Vm } from "../../core/schemas.ts";
import { queryStatus } from "../../drivers/qemu/qmp.ts";
import { createApp } from "../../api/app.ts";
import { startCluster, waitFor } from "../../tests/helpers/cluster.ts";
import { createHostNet } from "../../tests/helpers/netns.ts";
import { serveEtcdOn, startWorkerIn } from "../../tests/helpers/ns_worker.ts";
import { type Row, summarize, type Summary } from "./util.ts";

export interface FailoverRun {
  ttlSeconds: number;
  marginMs: number;
  kills: number;
  /** One sample per evacuated VM: kill to QMP running elsewhere, ms. */
  failoverMs: Summary;
  samples: number[];
}

const HOSTS = ["f1", "f2", "f3"];

/** Runs `kills` rounds with one lease TTL. */
export async function failoverRun(
  ttlSeconds: number,
  kills: number,
): Promise<FailoverRun> {
  const marginMs = ttlSeconds >= 3 ? 1000 : Math.floor(ttlSeconds * 1000 / 3);
  const c = await startCluster({ leaseTtlSeconds: ttlSeconds });
  c.env.UCLOUD_LEASE_MARGIN_MS = String(marginMs);
  const net = await createHostNet(HOSTS);
  const samples: number[] = [];
  try {
    await serveEtcdOn(c, net);
    const spec = (name: string) => ({ name, cpus: 8, memoryMiB: 4096 });
    for (const h of HOSTS) await startWorkerIn(c, net, spec(h));
    await waitFor(
      "hosts alive",
      async () => (await c.store.count(keys.alives)) === HOSTS.length,
      30_000,
    );
    const app = createApp({ store: c.store });
    for (let i = 0; i < HOSTS.length; i++) {
      const res = await app.request("/v1/vms", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: `fo${i}`, cpus: 1, memory: 128 }),
      });
      if (res.status !== 201) throw new Error(`create: ${await res.text()}`);
    }
    const all = async () =>
      (await c.store.list(keys.vms, Vm)).items.map((v) => v.value);
    await waitFor(
      "VMs running",
      async () => (await all()).every((v) => v.status.phase === "running"),
      60_000,
      50,
    );
    for (let k = 0; k < kills; k++) {
      const vms = await all();
      const victim = HOSTS.find((h) => vms.some((v) => v.status.host === h))!;
      const moving = vms.filter((v) => v.status.host === victim).map((v) =>
        v.id
      );
      const t0 = performance.now();
      await net.killHost(victim);
      const pending = new Set(moving);
      await waitFor(
        `VMs of ${victim} running elsewhere`,
        async () => {
          for (const id of [...pending]) {
            const v = (await c.store.get(keys.vm(id), Vm))?.value;
            const qmp = (v?.status.handle as { qmp?: string } | undefined)?.qmp;
            if (
              v && v.status.host && v.status.host !== victim &&
              v.status.phase === "running" && qmp &&
              await queryStatus(qmp, { timeoutMs: 500 }).catch(() => "") ===
                "running"
            ) {
              samples.push(performance.now() - t0);
              pending.delete(id);
            }
          }
          return pending.size === 0;
        },
        60_000,
        20,
      );
      // The killed host comes back as a new incarnation for the next round.
      await startWorkerIn(c, net, spec(victim));
      await waitFor(
        "victim rejoined",
        async () => (await c.store.count(keys.alives)) === HOSTS.length,
        30_000,
      );
    }
    return {
      ttlSeconds,
      marginMs,
      kills,
      failoverMs: summarize(samples),
      samples: samples.map((s) => Math.round(s)),
    };
  } finally {
    await c.stop();
    await net.destroy();
  }
}

/** Rows of the bench table: p50 and p95 of each run. */
export function failoverRows(runs: FailoverRun[]): Row[] {
  const out: Row[] = [];
  for (const f of runs) {
    for (const p of ["p50", "p95"] as const) {
      out.push({
        name: `failover, TTL ${f.ttlSeconds} s, ${p}`,
        value: f.failoverMs[p],
        unit: "ms",
        notes:
          `SIGKILL of a host -> its VMs QMP running elsewhere; ${f.kills} kills, ${f.failoverMs.n} VMs, margin ${f.marginMs} ms`,
      });
    }
  }
  return out;
}

if (import.meta.main) {
  const arg = (name: string) =>
    Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
  const kills = Number(arg("kills") ?? 10);
  const ttls = (arg("ttl") ?? "3,1").split(",").map(Number);
  for (const ttl of ttls) {
    const r = await failoverRun(ttl, kills);
    console.log(
      `TTL ${ttl} s (margin ${r.marginMs} ms), ${r.kills} kills: p50 ${r.failoverMs.p50} ms, p95 ${r.failoverMs.p95} ms, max ${r.failoverMs.max} ms`,
    );
    console.log(JSON.stringify(r));
  }
}
