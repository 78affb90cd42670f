/**
 * The cluster of the scale phase (`scale.ts`): the API as its own process
 * (so its memory is its own), the simulated hosts as real worker processes
 * with the sim driver and no host networking, VMs created through the
 * API's HTTP port, and the wait until every VM runs and no task is left.
 */
import { freePort } from "../../core/etcd_server.ts";
import { idOf, keys } from "../../core/keys.ts";
import { Alive, Vm } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { type Cluster, ROOT, waitFor } from "../../tests/helpers/cluster.ts";
import { progress, sleep } from "./util.ts";

/** How often a churn cycle reads its VM. */
const POLL_MS = 200;

/** The API process: its base URL and pid. */
export interface ApiProc {
  base: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts `api/main.ts` on a free loopback port; waits for `/healthz`. */
export async function startApi(c: Cluster): Promise<ApiProc> {
  const port = freePort();
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      'exec "$0" run -A "$1" 2>>"$2"',
      Deno.execPath(),
      `${ROOT}api/main.ts`,
      `${c.dir}/api.log`,
    ],
    cwd: ROOT,
    env: {
      ...c.env,
      UCLOUD_API_LISTEN: "127.0.0.1",
      UCLOUD_API_PORT: String(port),
    },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
    })();
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      "the API process serving",
      async () => {
        const res = await fetch(`${base}/healthz`);
        await res.body?.cancel();
        return res.ok;
      },
      60_000,
      200,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { base, pid: child.pid, stop };
}

/** Host names of the phase: `sc1` ... `sc<n>`. */
export function hostNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `sc${i + 1}`);
}

/**
 * Starts a worker process for every host, `cpus` cores and 128 MiB per
 * core each, five at a time, each five alive before the next: Deno's
 * start-up is CPU-bound, and 50 at once starve etcd and the keep-alives
 * on 2 cores (measured: leases lost and hosts failed over with no VM).
 */
export async function startHosts(
  c: Cluster,
  names: string[],
  cpus: number,
): Promise<void> {
  for (let i = 0; i < names.length; i += 5) {
    const batch = names.slice(i, i + 5);
    for (const name of batch) {
      await c.addWorker({ name, cpus, memoryMiB: cpus * 128 });
    }
    await waitFor(
      `${i + batch.length} hosts alive`,
      async () => (await c.store.count(keys.alives)) === i + batch.length,
      120_000,
      250,
    );
  }
}

/** Host -> incarnation of every live host (a changed one rejoined). */
export async function incarnations(c: Cluster): Promise<Map<string, string>> {
  const { items } = await c.store.list(keys.alives, Alive);
  return new Map(items.map((kv) => [idOf(kv.key), kv.value.incarnation]));
}

/**
 * `fetch` that retries a 503 (etcd too slow for the API: the answer of
 * an overloaded machine, which a client retries) up to 10 times, 1 s apart.
 */
async function call(url: string, init: RequestInit): Promise<Response> {
  for (let i = 0;; i++) {
    const res = await fetch(url, init);
    if (res.status !== 503 || i >= 10) return res;
    await res.body?.cancel();
    await sleep(1000);
  }
}

/**
 * POSTs a 1-CPU, 128 MiB VM to the API; returns its id. The name is the
 * Idempotency-Key: a retried POST never makes a second VM.
 */
export async function postVm(base: string, name: string): Promise<string> {
  const res = await call(`${base}/v1/vms`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": name },
    body: JSON.stringify({ name, cpus: 1, memory: 128 }),
  });
  if (res.status !== 201 && res.status !== 200) {
    throw new Error(`POST /v1/vms ${name}: ${res.status} ${await res.text()}`);
  }
  return (await res.json()).vm.id;
}

/** DELETEs a VM through the API. */
export async function deleteVm(base: string, id: string): Promise<void> {
  const res = await call(`${base}/v1/vms/${id}`, { method: "DELETE" });
  const text = await res.text();
  if (res.status >= 300) {
    throw new Error(`DELETE /v1/vms/${id}: ${res.status} ${text}`);
  }
}

/** Creates VMs `from` ... `to - 1` (names `sc-<i>`), `lanes` at a time. */
export async function createVms(
  base: string,
  from: number,
  to: number,
  lanes = 8,
): Promise<void> {
  let next = from;
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (next < to) {
      const i = next++;
      await postVm(base, `sc-${i}`);
      if ((i + 1) % 500 === 0) progress(`scale: ${i + 1}/${to} VMs created`);
    }
  }));
}

/** Where the VMs of a stage are: settled, or how far they got. */
export interface Settled {
  settled: boolean;
  /** VMs running (of those asked for). */
  running: number;
  /** Running VMs per host. */
  perHost: Map<string, number>;
}

/**
 * Waits until `count` VMs exist, all running, and no task is queued or
 * claimed. Polls every 2 s (a whole listing: only between the measured
 * windows); a failed poll (etcd too slow) is tried again. After
 * `timeoutMs` it returns how far they got (`settled` false): a size the
 * control plane cannot hold here is a result, not an error.
 */
export async function waitSettled(
  c: Cluster,
  count: number,
  timeoutMs: number,
): Promise<Settled> {
  const end = Date.now() + timeoutMs;
  let last: Settled = { settled: false, running: 0, perHost: new Map() };
  while (Date.now() < end) {
    try {
      const { items } = await c.store.list(keys.vms, Vm);
      const perHost = new Map<string, number>();
      let running = 0;
      for (const { value: v } of items) {
        if (v.status.phase !== "running") continue;
        running++;
        perHost.set(v.status.host!, (perHost.get(v.status.host!) ?? 0) + 1);
      }
      if (running !== last.running) {
        progress(`scale: ${running}/${count} VMs running`);
      }
      last = { settled: false, running, perHost };
      if (
        items.length === count && running === count &&
        !await c.store.count(keys.queues) && !await c.store.count(keys.claims)
      ) {
        return { ...last, settled: true };
      }
    } catch (err) {
      progress(`scale: cannot read the VMs (${err}); again`);
    }
    await sleep(2000);
  }
  return last;
}

/**
 * Create/delete cycles through the API, `inFlight` at a time, started
 * until `seconds` have passed; each waits for running, then for gone.
 */
export async function churnFor(
  base: string,
  store: Store,
  seconds: number,
  inFlight: number,
  counts: { cycles: number; polls: number },
): Promise<void> {
  const end = performance.now() + seconds * 1000;
  const phase = async (id: string) => {
    counts.polls++;
    return (await store.get(keys.vm(id), Vm))?.value.status.phase ?? "gone";
  };
  let n = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < end) {
      const id = await postVm(base, `churn-${n++}`);
      await waitFor(
        `${id} running`,
        async () => {
          const p = await phase(id);
          if (p === "error" || p === "failed") throw new Error(`${id} ${p}`);
          return p === "running";
        },
        120_000,
        POLL_MS,
      );
      await deleteVm(base, id);
      await waitFor(
        `${id} gone`,
        async () => await phase(id) === "gone",
        120_000,
        POLL_MS,
      );
      counts.cycles++;
    }
  }));
}
