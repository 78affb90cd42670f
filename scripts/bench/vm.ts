/**
 * Bench phase `vm`: with one real worker process running qemu (TCG, tiny
 * test guest), the time from sending `POST /v1/vms` to QMP `query-status`
 * "running" and to the guest's serial marker `UCLOUD-GUEST-READY`, one VM
 * after another; then the time to delete them all.
 */
import { createApp } from "../../api/app.ts";
import { keys } from "../../core/keys.ts";
import { Alive, Vm } from "../../core/schemas.ts";
import { queryStatus } from "../../drivers/qemu/qmp.ts";
import {
  type Cluster,
  qemuPids,
  startCluster,
  waitFor,
} from "../../tests/helpers/cluster.ts";
import type { Options } from "./options.ts";
import {
  type Cleanup,
  progress,
  round,
  type Row,
  serve,
  sleep,
  summarize,
  type Summary,
} from "./util.ts";

const MARKER = "UCLOUD-GUEST-READY";
/** How often the VM phase polls etcd, QMP and the serial log. */
const POLL_MS = 20;
/** Per-VM limit from POST to the guest marker. */
const VM_TIMEOUT_MS = 60_000;

/** One VM's timings, ms from sending the POST. */
export interface VmSample {
  id: string;
  /** POST answered (201). */
  postMs: number;
  /** qemu daemonized (pidfile read), from the handle's `startedAt` (wall clock, 1 ms). */
  qemuStartedMs: number;
  /** The VM document in etcd shows phase running with a handle. */
  phaseRunningMs: number;
  /** QMP `query-status` answered "running". */
  qmpRunningMs: number;
  /** The serial log holds the guest's marker line. */
  guestReadyMs: number;
}

/** Result of {@linkcode benchVm}. */
export interface VmResult {
  count: number;
  warmup: number;
  qmpRunningMs: Summary;
  guestReadyMs: Summary;
  phaseRunningMs: Summary;
  qemuStartedMs: Summary;
  postMs: Summary;
  samples: VmSample[];
  /** From sending every DELETE to every VM document and qemu gone. */
  deleteAllMs: number;
}

/**
 * Creates VM `name` (1 CPU, 128 MiB, plus `opts.body`, e.g. an image) and
 * times it to QMP running and to the guest marker; its id goes to
 * `created` as soon as the POST answers.
 */
export async function vmCreateToRunning(
  cluster: Cluster,
  base: string,
  name: string,
  created: string[],
  opts: { body?: Record<string, unknown>; timeoutMs?: number } = {},
): Promise<VmSample> {
  const wall0 = Date.now();
  const t0 = performance.now();
  const since = () => round(performance.now() - t0);
  const res = await fetch(`${base}/v1/vms`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, cpus: 1, memory: 128, ...opts.body }),
  });
  const body = await res.json();
  if (res.status !== 201) {
    throw new Error(`POST /v1/vms: ${res.status} ${JSON.stringify(body)}`);
  }
  const postMs = since();
  const id = body.vm.id as string;
  created.push(id);
  type Handle = { qmp: string; serial: string; startedAt: string };
  let handle: Handle | undefined;
  let phaseRunningMs = NaN;
  let qmpRunningMs = NaN;
  const timeoutMs = opts.timeoutMs ?? VM_TIMEOUT_MS;
  const end = performance.now() + timeoutMs;
  let lastPhase = "";
  while (performance.now() < end) {
    if (!handle) {
      const vm = (await cluster.store.get(keys.vm(id), Vm))?.value;
      lastPhase = vm?.status.phase ?? "gone";
      if (vm?.status.phase === "failed" || vm?.status.phase === "crashed") {
        throw new Error(
          `VM ${id} is ${vm.status.phase}: ${vm.status.reason ?? "?"}`,
        );
      }
      if (vm?.status.phase === "running" && vm.status.handle) {
        phaseRunningMs = since();
        handle = vm.status.handle as unknown as Handle;
      }
    }
    if (handle && Number.isNaN(qmpRunningMs)) {
      const s = await queryStatus(handle.qmp, { timeoutMs: 2000 }).catch((
        err,
      ) => String(err));
      lastPhase = `qmp: ${s}`;
      if (s === "running") qmpRunningMs = since();
    }
    if (!Number.isNaN(qmpRunningMs)) {
      const serial = await Deno.readTextFile(handle!.serial).catch(() => "");
      if (serial.includes(MARKER)) {
        return {
          id,
          postMs,
          qemuStartedMs: Date.parse(handle!.startedAt) - wall0,
          phaseRunningMs,
          qmpRunningMs,
          guestReadyMs: since(),
        };
      }
      lastPhase = "waiting for guest marker";
    }
    await sleep(POLL_MS);
  }
  throw new Error(
    `VM ${id} not ready after ${timeoutMs} ms (last seen: ${lastPhase})`,
  );
}

/** Runs the VM phase in a cluster of its own (etcd, one worker). */
export async function benchVm(
  opts: Options,
  cleanup: Cleanup,
): Promise<VmResult> {
  progress("vm: starting etcd and a worker (qemu under TCG)");
  const cluster = await startCluster();
  cleanup.add("cluster (worker, qemu, etcd, temp dir)", () => cluster.stop());
  const total = opts.warmupVms + opts.vms;
  const workerLog = async () =>
    `\n--- worker log tail ---\n${
      (await cluster.workers.get("bench1")?.log() ?? "").slice(-3000)
    }`;
  // Room for every VM at once: they are deleted together at the end.
  await cluster.addWorker({
    name: "bench1",
    cpus: total + 1,
    memoryMiB: 256 + total * 128,
  });
  await waitFor(
    "the worker to register",
    () => cluster.store.get(keys.alive("bench1"), Alive),
    30_000,
  ).catch(async (err) => {
    throw new Error(`${err.message}${await workerLog()}`);
  });
  const { base, stop } = serve(createApp({ store: cluster.store }), cleanup);
  const ids: string[] = [];
  const samples: VmSample[] = [];
  try {
    for (let i = 0; i < total; i++) {
      const warm = i < opts.warmupVms;
      const s = await vmCreateToRunning(cluster, base, `bench-${i}`, ids);
      progress(
        `vm ${i + 1}/${total}${warm ? " (warm-up, not counted)" : ""}: ` +
          `qmp running ${s.qmpRunningMs} ms, guest ready ${s.guestReadyMs} ms`,
      );
      if (!warm) samples.push(s);
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}${await workerLog()}`);
  }
  progress(`vm: deleting ${ids.length} VMs through the API`);
  const t = performance.now();
  for (const id of ids) {
    const r = await fetch(`${base}/v1/vms/${id}`, { method: "DELETE" });
    const body = await r.text();
    if (r.status !== 202 && r.status !== 200) {
      throw new Error(`DELETE /v1/vms/${id}: ${r.status} ${body}`);
    }
  }
  await waitFor(
    "every VM document and qemu process gone",
    async () => {
      for (const id of ids) {
        if (await cluster.store.get(keys.vm(id), Vm)) return false;
      }
      return (await qemuPids(cluster.dir)).length === 0;
    },
    60_000,
    POLL_MS,
  ).catch(async (err) => {
    throw new Error(`${err.message}${await workerLog()}`);
  });
  const deleteAllMs = round(performance.now() - t);
  await stop();
  const pick = (f: (s: VmSample) => number) => summarize(samples.map(f));
  return {
    count: samples.length,
    warmup: opts.warmupVms,
    qmpRunningMs: pick((s) => s.qmpRunningMs),
    guestReadyMs: pick((s) => s.guestReadyMs),
    phaseRunningMs: pick((s) => s.phaseRunningMs),
    qemuStartedMs: pick((s) => s.qemuStartedMs),
    postMs: pick((s) => s.postMs),
    samples,
    deleteAllMs,
  };
}

/** Rows of the bench table. */
export function vmRows(vm: VmResult): Row[] {
  const out: Row[] = [];
  const n = `n=${vm.count}, 1 CPU 128 MiB, TCG`;
  const pair = (name: string, s: Summary, notes: string) => [
    { name: `${name} p50`, value: s.p50, unit: "ms", notes },
    {
      name: `${name} p95`,
      value: s.p95,
      unit: "ms",
      notes: `min ${s.min}, max ${s.max}`,
    },
  ];
  out.push(
    ...pair("VM POST -> QMP running", vm.qmpRunningMs, n),
    ...pair(
      "VM POST -> guest ready",
      vm.guestReadyMs,
      `serial marker ${MARKER}`,
    ),
    {
      name: "VM POST -> qemu started p50",
      value: vm.qemuStartedMs.p50,
      unit: "ms",
      notes: "handle.startedAt: qemu daemonized, before QMP wait",
    },
    {
      name: "VM POST -> phase running p50",
      value: vm.phaseRunningMs.p50,
      unit: "ms",
      notes: "etcd vm doc, polled every 20 ms",
    },
    {
      name: `VM delete all ${vm.count + vm.warmup} -> gone`,
      value: vm.deleteAllMs,
      unit: "ms",
      notes: "DELETE each, until docs and qemu gone",
    },
  );
  return out;
}
