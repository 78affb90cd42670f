/**
 * The cost of a worker's `/metrics` (workers/metrics*.ts): one real worker
 * process (sim driver: one plain process per VM, so no qemu is needed)
 * with `vms` VMs running, scraped `scrapes` times one after the other
 * from loopback. Measures the time per scrape (request to last byte), its
 * size in bytes and series, and the worker's CPU time per scrape: the
 * worker's user + system time over the scrapes less what it spends idle
 * in as long (measured just before), divided by the scrapes.
 *
 * Usage: `deno run -A scripts/bench/scrape.ts [--vms=50] [--scrapes=50]`,
 * or through `scripts/bench/main.ts --only=scrape`.
 */
import { createApp } from "../../api/app.ts";
import { keys } from "../../core/keys.ts";
import { Host, Vm } from "../../core/schemas.ts";
import {
  createVm,
  startCluster,
  waitFor,
} from "../../tests/helpers/cluster.ts";
import { parseStat } from "../../workers/metrics_proc.ts";
import {
  type Cleanup,
  round,
  type Row,
  sleep,
  summarize,
  type Summary,
  table,
} from "./util.ts";

/** Options of {@linkcode scrapeRun}. */
export interface ScrapeOptions {
  vms: number;
  scrapes: number;
}

/** Result of {@linkcode scrapeRun}. */
export interface ScrapeResult {
  vms: number;
  scrapes: number;
  /** Time per scrape, ms. */
  ms: Summary;
  /** Size of one scrape's body. */
  bytes: number;
  /** Series (sample lines) in one scrape. */
  series: number;
  /** The worker's CPU time per scrape, idle time taken out, ms. */
  cpuMsPerScrape: number;
  /** The worker's CPU time per second while idle, ms. */
  idleCpuMsPerS: number;
}

/** CPU seconds (user + system) of process `pid` so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const p = parseStat(await Deno.readTextFile(`/proc/${pid}/stat`));
  if (!p) throw new Error(`Process ${pid} is gone`);
  return p.cpuSeconds;
}

/** Starts the cluster and worker, runs the VMs, scrapes; tears down. */
export async function scrapeRun(
  opts: ScrapeOptions,
  cleanup?: Cleanup,
): Promise<ScrapeResult> {
  const c = await startCluster({ leaseTtlSeconds: 3, guest: false });
  let down: Promise<void> | undefined;
  const teardown = () => down ??= c.stop();
  cleanup?.add("scrape cluster", teardown);
  try {
    const cpus = opts.vms + 2;
    const w = await c.addWorker({
      name: "m1",
      cpus,
      memoryMiB: cpus * 128,
      env: {
        UCLOUD_DRIVER: "sim",
        UCLOUD_WORKER_METRICS_PORT: "0",
        UCLOUD_WORKER_METRICS_LISTEN: "127.0.0.1",
      },
    });
    const app = createApp({ store: c.store, config: c.config });
    const url = await waitFor(
      "m1 announces /metrics",
      async () => {
        const h = await c.store.get(keys.host("m1"), Host);
        return h?.value.metrics?.url;
      },
      60_000,
      100,
    );
    progress(`${url}; creating ${opts.vms} sim VMs`);
    for (let i = 0; i < opts.vms; i += 10) {
      await Promise.all(
        Array.from(
          { length: Math.min(10, opts.vms - i) },
          (_, j) => createVm(app, `s${i + j}`),
        ),
      );
    }
    await waitFor(
      `${opts.vms} VMs running`,
      async () => {
        const { items } = await c.store.list(keys.vms, Vm);
        return items.filter((v) => v.value.status.phase === "running")
          .length === opts.vms;
      },
      180_000,
      250,
    );
    const get = async () => {
      const t0 = performance.now();
      const res = await fetch(url);
      const text = await res.text();
      if (res.status !== 200) throw new Error(`scrape: ${res.status} ${text}`);
      return { ms: performance.now() - t0, text };
    };
    // Warm up (JIT, first QMP-less reads), then the worker idles a while.
    for (let i = 0; i < 3; i++) await get();
    const pid = w.pid!;
    const idleMs = 3000;
    const idle0 = await cpuSeconds(pid);
    await sleep(idleMs);
    const idleRate = (await cpuSeconds(pid) - idle0) / idleMs;
    const cpu0 = await cpuSeconds(pid);
    const t0 = performance.now();
    const times: number[] = [];
    let text = "";
    for (let i = 0; i < opts.scrapes; i++) {
      const r = await get();
      times.push(r.ms);
      text = r.text;
    }
    const elapsed = performance.now() - t0;
    const cpuMs = (await cpuSeconds(pid) - cpu0) * 1000 - idleRate * elapsed *
        1000;
    const samples = text.split("\n").filter((l) => l && !l.startsWith("#"));
    return {
      vms: opts.vms,
      scrapes: opts.scrapes,
      ms: summarize(times),
      bytes: new TextEncoder().encode(text).length,
      series: samples.length,
      cpuMsPerScrape: round(Math.max(0, cpuMs) / opts.scrapes, 2),
      idleCpuMsPerS: round(idleRate * 1_000_000, 2),
    };
  } finally {
    await teardown();
  }
}

function progress(msg: string): void {
  console.error(`bench: scrape: ${msg}`);
}

/** Rows of the bench table. */
export function scrapeRows(r: ScrapeResult): Row[] {
  const n = `${r.vms} sim VMs, ${r.scrapes} scrapes one at a time`;
  return [
    {
      name: "worker /metrics scrape, p50",
      value: r.ms.p50,
      unit: "ms",
      notes: `p95 ${r.ms.p95} ms, max ${r.ms.max} ms; ${n}`,
    },
    {
      name: "worker /metrics size",
      value: r.bytes,
      unit: "bytes",
      notes: `${r.series} series`,
    },
    {
      name: "worker /metrics CPU per scrape",
      value: r.cpuMsPerScrape,
      unit: "ms",
      notes: `worker user+system, idle (${r.idleCpuMsPerS} ms/s) taken out`,
    },
  ];
}

if (import.meta.main) {
  const arg = (name: string, dflt: number) =>
    Number(
      Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(
        3 + name.length,
      ) ?? dflt,
    );
  const r = await scrapeRun({
    vms: arg("vms", 50),
    scrapes: arg("scrapes", 50),
  });
  console.log(table(scrapeRows(r)));
  console.log(JSON.stringify(r));
  Deno.exit(0);
}
