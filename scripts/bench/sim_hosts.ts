/**
 * The three hosts of the failover-sim phase (`failover_sim.ts`), network
 * namespaces with a worker each: starting their workers, reading the VMs,
 * telling whether a VM's sim process really runs on its host, and gathering
 * every VM on the victim host before a round.
 */
import type { createApp } from "../../api/app.ts";
import { keys } from "../../core/keys.ts";
import { Vm } from "../../core/schemas.ts";
import { owns } from "../../drivers/sim/driver.ts";
import { type Cluster, waitFor } from "../../tests/helpers/cluster.ts";
import type { HostNet } from "../../tests/helpers/netns.ts";
import { startWorkerIn } from "../../tests/helpers/ns_worker.ts";

/** The hosts; the first is the one killed in every round. */
export const HOSTS = ["s1", "s2", "s3"];
/** The host whose processes are killed. */
export const VICTIM = HOSTS[0];
const OTHERS = HOSTS.slice(1);
/** How often the phase polls etcd and /proc. */
export const POLL_MS = 20;
/** Limit of each wait of the phase. */
export const WAIT_MS = 120_000;

type App = ReturnType<typeof createApp>;

/** The three hosts of one run and what the rounds do with them. */
export class Hosts {
  readonly #ino = new Map<string, number>();

  constructor(
    readonly c: Cluster,
    readonly net: HostNet,
    readonly app: App,
    readonly count: number,
  ) {
    for (const h of net.hosts.values()) {
      this.#ino.set(h.name, Deno.statSync(`/run/netns/${h.ns}`).ino!);
    }
  }

  /** Starts (or restarts) a host's worker; room for every VM on each host. */
  start(name: string) {
    const cpus = this.count + 2;
    return startWorkerIn(this.c, this.net, {
      name,
      cpus,
      memoryMiB: cpus * 128,
    });
  }

  allAlive(): Promise<boolean> {
    return waitFor(
      "every host alive",
      async () => (await this.c.store.count(keys.alives)) === HOSTS.length,
      WAIT_MS,
    );
  }

  async vms(): Promise<Vm[]> {
    return (await this.c.store.list(keys.vms, Vm)).items.map((kv) => kv.value);
  }

  /**
   * Phase running on its host, and its sim process alive in that host's
   * namespace (compared by the inode of the network namespace).
   */
  async runs(v: Vm): Promise<boolean> {
    const h = v.status.handle as { pid?: number; pidfile?: string } | undefined;
    if (v.status.phase !== "running" || !v.status.host || !h?.pid) return false;
    const ino = this.#ino.get(v.status.host);
    try {
      if (Deno.statSync(`/proc/${h.pid}/ns/net`).ino !== ino) return false;
    } catch {
      return false;
    }
    return await owns(h.pid, h.pidfile ?? "");
  }

  /** Whether every one of `vms` {@linkcode runs}. */
  async allRun(vms: Vm[]): Promise<boolean> {
    return (await Promise.all(vms.map((v) => this.runs(v)))).every(Boolean);
  }

  /**
   * Puts every VM on the victim: drains the other hosts (their VMs move to
   * the only active host), creates the VMs on the first call, waits until
   * all of them run on the victim and no task is left, enables the others.
   */
  async gather(create: boolean): Promise<void> {
    for (const h of OTHERS) await this.#post(`/v1/hosts/${h}/drain`, {});
    if (create) {
      for (let i = 0; i < this.count; i++) {
        await this.#post("/v1/vms", { name: `fs${i}`, cpus: 1, memory: 128 });
      }
    }
    await waitFor(
      `${this.count} VMs running on ${VICTIM}`,
      async () => {
        const vms = await this.vms();
        return vms.length === this.count &&
          vms.every((v) => v.status.host === VICTIM) &&
          await this.allRun(vms);
      },
      WAIT_MS,
      100,
    );
    await waitFor(
      "no task queued or running",
      async () =>
        (await this.c.store.count(keys.queues)) === 0 &&
        (await this.c.store.count(keys.claims)) === 0,
      WAIT_MS,
      100,
    );
    for (const h of OTHERS) await this.#post(`/v1/hosts/${h}/enable`, {});
  }

  async #post(path: string, body: unknown): Promise<void> {
    const res = await this.app.request(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (res.status >= 300) {
      throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    }
  }
}
