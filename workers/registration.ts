/**
 * How a worker incarnation comes and goes in etcd: it opens its lease
 * session (adopting the previous process's lease on this machine, or a new
 * one), registers `host/<name>` and `alive/<name>` (waiting out a previous
 * incarnation), and at an orderly stop hands the lease to the fencer
 * (workers/handover.ts).
 *
 * @example
 * ```ts
 * const reg = new Registration({ store, config, host, driverName, log });
 * const { session, adopted } = await reg.openSession();
 * await reg.register(session.lease, adopted, session.signal);
 * ```
 */
import { monotonicMs } from "../core/clock.ts";
import type { Config } from "../core/config.ts";
import { unknownFields } from "../core/documents.ts";
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Alive, Host } from "../core/schemas.ts";
import { Session } from "../core/session.ts";
import type { Store } from "../core/store.ts";
import { sleep } from "../core/watch.ts";
import { ensureFencer, fencerOptions, writeDeadline } from "./fence.ts";
import { writeHandover } from "./handover.ts";
import { hostInfo } from "./host_info.ts";
import { claimHostName, HostInUseError, machineId } from "./machine_id.ts";

export interface RegistrationOptions {
  store: Store;
  config: Config;
  host: string;
  /** The VM driver's name (reported, and the fencer's). */
  driverName: string;
  /** This host's public bridges and underlay, when it has networking. */
  network?: { publicBridges: string[]; underlay: { address: string } | null };
  log: Logger;
}

export class Registration {
  readonly #o: RegistrationOptions;
  /** This machine's id (workers/machine_id.ts), read by openSession. */
  #machine = "";

  constructor(opts: RegistrationOptions) {
    this.#o = opts;
  }

  /**
   * Marks this incarnation's `alive/` document as handing over (no VMs are
   * placed here meanwhile) and leaves the lease to the fencer.
   */
  async handOver(session: Session): Promise<void> {
    const { store, config, driverName } = this.#o;
    const ms = config.worker.handoverSeconds * 1000;
    const fencer = fencerOptions(config, driverName);
    await ensureFencer(fencer);
    const alive = await store.get(keys.alive(this.#o.host), Alive);
    if (alive?.value.lease !== session.lease) return;
    const until = new Date(Date.now() + ms).toISOString();
    const marked = await store.txn()
      .ifModRevision(alive.key, alive.modRevision)
      .put(alive.key, { ...alive.value, handover: until }, {
        lease: session.lease,
      }).commit();
    if (!marked.ok) return;
    await writeHandover(fencer.runDir, {
      lease: session.lease,
      until: monotonicMs() + ms,
      ttlSeconds: config.worker.leaseTtlSeconds,
      marginMs: config.worker.leaseMarginMs,
      etcd: config.etcd,
    });
    this.#o.log.info("lease handed over to the fencer for the next worker", {
      lease: session.lease,
      until,
    });
  }

  /**
   * Adopts the lease of this host's previous worker process when it is still
   * alive in etcd (a restart within the deadline keeps VMs and claims), else
   * grants a new one. Refuses while another worker process of this host runs
   * or another machine holds the host name (HostInUseError).
   */
  async openSession(): Promise<{ session: Session; adopted: boolean }> {
    const { store, config } = this.#o;
    const opts = {
      ttlSeconds: config.worker.leaseTtlSeconds,
      marginMs: config.worker.leaseMarginMs,
      log: this.#o.log,
      onDeadline: (d: number) => {
        writeDeadline(config.worker.runDir, d).catch((err) =>
          this.#o.log.error("cannot write the fence deadline", {
            error: String(err),
          })
        );
      },
    };
    await Deno.mkdir(config.stateDir, { recursive: true });
    this.#machine = await machineId(config.stateDir);
    const alive = await store.get(keys.alive(this.#o.host), Alive);
    if (alive) {
      // Only a lease of this machine may be adopted.
      const registered = await store.get(keys.host(this.#o.host), Host);
      claimHostName({
        host: this.#o.host,
        machine: this.#machine,
        registered: registered?.value,
        alive: alive.value,
        log: this.#o.log,
      });
      const pid = alive.value.pid;
      if (pid !== Deno.pid && await isWorkerProcess(pid)) {
        throw new HostInUseError(
          `Cannot start: worker process ${pid} already runs for host ${this.#o.host}`,
        );
      }
      const adopted = await Session.adopt(store, alive.value.lease, opts);
      if (adopted) {
        this.#o.log.info("adopted the lease of the previous worker process", {
          lease: adopted.lease,
          pid,
        });
        return { session: adopted, adopted: true };
      }
    }
    return { session: await Session.open(store, opts), adopted: false };
  }

  /**
   * Writes host/<name> (announcing `metricsUrl`, the worker's /metrics,
   * when given) and alive/<name>; waits out a previous incarnation.
   * Returns the host document written (undefined: `signal` aborted first).
   */
  async register(
    lease: string,
    adopted: boolean,
    signal: AbortSignal,
    metricsUrl?: string,
  ): Promise<Host | undefined> {
    const { store, config } = this.#o;
    const info = await hostInfo({
      name: this.#o.host,
      cpus: config.worker.cpus,
      memoryMiB: config.worker.memoryMiB,
      diskMiB: config.worker.diskMiB,
      stateDir: config.stateDir,
      localDisk: config.worker.localDisk,
      drivers: [this.#o.driverName],
      allocation: {
        cpuRatio: config.scheduler.cpuAllocationRatio,
        memoryRatio: config.scheduler.memoryAllocationRatio,
        reservedMemoryMiB: config.scheduler.reservedMemoryMiB,
      },
      signal,
    });
    const network = this.#o.network;
    if (network) {
      info.publicBridges = network.publicBridges;
      if (network.underlay) info.underlay = network.underlay.address;
    }
    let waiting = false;
    while (!signal.aborted) {
      const prev = await store.get(keys.host(this.#o.host), Host);
      const prevAlive = await store.get(keys.alive(this.#o.host), Alive);
      claimHostName({
        host: this.#o.host,
        machine: this.#machine,
        registered: prev?.value,
        alive: prevAlive?.value,
        log: this.#o.log,
      });
      const host: Host = {
        // What a newer version added stays; the rest is this worker's.
        ...unknownFields(Host, prev?.value),
        ...info,
        machineId: this.#machine,
        state: prev?.value.state ?? "active",
        registeredAt: new Date().toISOString(),
        incarnation: lease,
        ...(metricsUrl ? { metrics: { url: metricsUrl } } : {}),
        // An adopted lease keeps its ordered shutdown (workers/shutdown.ts).
        ...(prev?.value.shutdown?.incarnation === lease
          ? { shutdown: prev.value.shutdown }
          : {}),
      };
      const alive: Alive = {
        incarnation: lease,
        started: adopted && prevAlive
          ? prevAlive.value.started
          : new Date().toISOString(),
        pid: Deno.pid,
        lease,
      };
      const txn = store.txn()
        .ifModRevision(keys.host(this.#o.host), prev?.modRevision ?? "0")
        .put(keys.host(this.#o.host), host)
        .put(keys.alive(this.#o.host), alive, { lease });
      if (adopted) {
        txn.ifModRevision(
          keys.alive(this.#o.host),
          prevAlive?.modRevision ?? "0",
        );
      } else txn.ifAbsent(keys.alive(this.#o.host));
      if ((await txn.commit()).ok) {
        this.#o.log.info("host registered", {
          lease,
          adopted,
          capacity: host.capacity,
          allocation: host.allocation,
        });
        return host;
      }
      if (!waiting && prevAlive && prevAlive.value.lease !== lease) {
        waiting = true;
        this.#o.log.info(
          "waiting for the previous incarnation's lease to expire",
        );
      }
      await sleep(100, signal);
    }
    return undefined;
  }
}

/** True when `pid` is a live ucloud worker process on this machine. */
async function isWorkerProcess(pid: number): Promise<boolean> {
  try {
    const cmd = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return cmd.includes("workers/main.ts");
  } catch {
    return false;
  }
}
