/**
 * The worker of one host: registers the host under a lease session, re-adopts
 * the VMs it already runs, claims tasks for its host and `any`, runs their
 * handlers, and keeps VM status in step with what the driver reports.
 * Stateless: everything it knows it reads from etcd and the driver.
 *
 * `run()` resolves "stopped" after `stop()`, "shutdown" after an ordered
 * shutdown (workers/shutdown.ts: the host is drained, the lease revoked),
 * or "lost" when the lease session ended; the caller then starts a new
 * incarnation.
 *
 * @example
 * ```ts
 * const worker = new Worker({ store, config, driver, log });
 * const why = await worker.run();
 * ```
 */
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/log.ts";
import type { Session } from "../core/session.ts";
import type { Store } from "../core/store.ts";
import { sleep } from "../core/watch.ts";
import type { Boot, VmDriver } from "../tasks/context.ts";
import type { WorkerId } from "../tasks/queue.ts";
import { PlacementCache } from "../scheduler/mod.ts";
import { wakeOnCapacity, type Waker } from "./capacity_wake.ts";
import { ClaimLoop } from "./claim_loop.ts";
import { ConsoleRelayServer } from "./console_relay.ts";
import {
  ensureFencer,
  fencerOptions,
  keepFencer,
  stopFencer,
} from "./fence.ts";
import { watchFailures } from "./failure_watch.ts";
import { endHandover } from "./handover.ts";
import { MetadataService } from "./metadata/service.ts";
import { HostNet } from "./net.ts";
import { HostVms } from "./host_vms.ts";
import { WorkerMetrics } from "./metrics.ts";
import { MetricsServer } from "./metrics_server.ts";
import { Registration } from "./registration.ts";
import { awaitDrained, markDone } from "./shutdown.ts";
import { TaskRunner } from "./task_runner.ts";
import { VmKeeper } from "./vm_keeper.ts";
import type { NetDriver } from "../drivers/net/mod.ts";
import type { Underlay } from "../drivers/net/types.ts";

/** Options of a `Worker`. */
export interface WorkerOptions {
  store: Store;
  config: Config;
  driver: VmDriver;
  log: Logger;
  images?: (name: string) => Promise<Boot>;
  /**
   * Host networking (drivers/net); absent: VMs with NICs cannot start here
   * (the sim driver's benchmarks run without it).
   */
  network?: {
    driver: NetDriver;
    underlay: Underlay | null;
    /** Existing public bridges of this host (reported for placement). */
    publicBridges: string[];
  };
}

/** One incarnation of the worker of a host (see the module comment). */
export class Worker {
  readonly host: string;
  readonly #o: WorkerOptions;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #id?: WorkerId;
  readonly #reg: Registration;
  #handover = false;
  /** The host is drained and the shutdown recorded: the lease ends. */
  #shutDown = false;

  constructor(opts: WorkerOptions) {
    this.#o = opts;
    this.host = opts.config.worker.host;
    this.#log = opts.log.child({ host: this.host });
    this.#reg = new Registration({
      store: opts.store,
      config: opts.config,
      host: this.host,
      driverName: opts.driver.name,
      network: opts.network,
      log: this.#log,
    });
  }

  /** The lease this incarnation holds (after registration). */
  get lease(): string | undefined {
    return this.#id?.lease;
  }

  /**
   * Asks `run()` to finish: no new claims, running tasks are aborted. With
   * `handover`, the lease goes to the host's fencer for
   * `worker.handoverSeconds` so the next worker process adopts it with the
   * VMs running (workers/handover.ts).
   */
  stop({ handover = false }: { handover?: boolean } = {}): void {
    this.#handover = handover;
    this.#stop.abort();
  }

  /** Runs this incarnation until it is stopped, shut down or its lease lost. */
  async run(): Promise<"stopped" | "shutdown" | "lost"> {
    const { config, driver } = this.#o;
    const { session, adopted } = await this.#reg.openSession();
    const id = { name: this.host, lease: session.lease };
    this.#id = id;
    const signal = AbortSignal.any([session.signal, this.#stop.signal]);
    // Self-fencing the moment the session ends, not once every loop has
    // wound down: the cluster may restart these VMs elsewhere soon.
    let fenced: Promise<string[]> | undefined;
    const selfFence = () => {
      if (!this.#stop.signal.aborted) fenced ??= driver.fence();
    };
    session.signal.addEventListener("abort", selfFence, { once: true });
    let loop: ClaimLoop | undefined;
    let metadata: MetadataService | undefined;
    let waker: Waker | undefined;
    // This incarnation's /metrics, announced in the host document.
    const metrics = new WorkerMetrics({
      qmpTimeoutMs: config.worker.metrics.qmpTimeoutMs,
      stateDir: config.stateDir,
      lease: session,
      leaseTtlSeconds: config.worker.leaseTtlSeconds,
      candidate: () => PlacementCache.for(this.#o.store)?.candidate(this.host),
    });
    const metricsServer = MetricsServer.start({
      config: config.worker.metrics,
      metrics,
      underlay: this.#o.network?.underlay?.address,
      log: this.#log,
    });
    try {
      metrics.sources.host = await this.#reg.register(
        session.lease,
        adopted,
        signal,
        metricsServer?.url,
      );
      if (signal.aborted) return this.#stop.signal.aborted ? "stopped" : "lost";
      // A hand-over ends with this registration: the fencer lets go.
      await endHandover(config.worker.runDir);
      await ensureFencer(fencerOptions(config, driver.name));
      // This host's VMs, kept from a watch (no listings while it runs).
      const vms = await HostVms.start(
        { store: this.#o.store, host: this.host, log: this.#log },
        signal,
      );
      if (signal.aborted) return this.#stop.signal.aborted ? "stopped" : "lost";
      metrics.sources.vms = () => vms.items();
      const keeper = new VmKeeper({
        store: this.#o.store,
        driver,
        config,
        host: this.host,
        lease: session.lease,
        alive: () => session.check(),
        log: this.#log,
        vms,
      });
      await keeper.recover();
      if (this.#o.network) {
        metadata = await MetadataService.start({
          store: this.#o.store,
          log: this.#log,
          requireToken: config.metadata.requireToken,
        });
      }
      const net = await this.#startNet(signal, vms, metadata);
      // The VMs' consoles; a host whose relay cannot listen runs without.
      const relay = await ConsoleRelayServer.start({
        store: this.#o.store,
        host: this.host,
        lease: session.lease,
        vms,
        config: config.console,
        underlay: this.#o.network?.underlay?.address,
        log: this.#log,
      }, signal).catch((err) => {
        this.#log.error("console relay cannot start: no consoles here", {
          error: String(err),
        });
      });
      if (net && this.#o.network) {
        const counters = this.#o.network.driver.counters;
        metrics.sources.net = { state: () => net.state, counters };
      }
      const runner = new TaskRunner({
        store: this.#o.store,
        config,
        driver,
        host: this.host,
        worker: id,
        session,
        stop: this.#stop.signal,
        log: this.#log,
        images: this.#o.images,
        net,
      });
      loop = new ClaimLoop({
        store: this.#o.store,
        host: this.host,
        worker: id,
        concurrency: config.worker.concurrency,
        log: this.#log,
        signal,
        run: (task) => runner.run(task),
        onWaiting: () => waker?.poke(),
      });
      const cache = PlacementCache.for(this.#o.store);
      waker = cache && wakeOnCapacity(cache, loop, { log: this.#log });
      const loops = [
        vms.done,
        ...(relay ? [relay.done] : []),
        ...(net ? [net.run(signal)] : []),
        ...loop.watch(),
        watchFailures({
          store: this.#o.store,
          host: this.host,
          log: this.#log,
          signal,
        }),
        this.#monitor(signal, keeper, runner),
        this.#shutdownWhenDrained(signal, loop, vms),
      ];
      await Promise.all(loops);
      if (this.#shutDown) return "shutdown";
      return this.#stop.signal.aborted ? "stopped" : "lost";
    } finally {
      loop?.stop();
      waker?.stop();
      session.signal.removeEventListener("abort", selfFence);
      if (fenced) {
        const killed = await fenced.catch((err) => [String(err)]);
        this.#log.error("lease lost: fenced every VM of this host", {
          killed,
        });
      }
      await loop?.settled();
      await metadata?.close();
      await metricsServer?.close();
      await this.#end(session);
    }
  }

  /**
   * Host networking, synced once, when this worker has drivers/net; each
   * sync tells the metadata service what it serves.
   */
  async #startNet(
    signal: AbortSignal,
    vms: HostVms,
    metadata?: MetadataService,
  ): Promise<HostNet | undefined> {
    const network = this.#o.network;
    if (!network) return undefined;
    const net = new HostNet({
      store: this.#o.store,
      host: this.host,
      driver: network.driver,
      underlay: network.underlay,
      lease: () => this.#id?.lease,
      log: this.#log,
      vms,
      metadata,
    });
    await net.sync({ signal }).catch((err) =>
      this.#log.error("network sync at start failed", {
        error: String(err),
      })
    );
    return net;
  }

  /**
   * Ends the incarnation: revokes the lease after an ordered shutdown, or
   * keeps it (handed to the fencer when asked) so its end is the death signal.
   */
  async #end(session: Session): Promise<void> {
    const { config, driver } = this.#o;
    if (this.#shutDown) {
      // Drained: the lease ends now; nothing to fence or hand over.
      await session.close({ revoke: true });
      await stopFencer(fencerOptions(config, driver.name));
    } else {
      if (this.#handover && !session.signal.aborted) {
        await this.#reg.handOver(session).catch((err) =>
          this.#log.error("cannot hand the lease over to the fencer", {
            error: String(err),
          })
        );
      }
      // Never revoke: the lease's end is the death signal, and the fencer
      // kills the VMs at its deadline unless a restarted worker adopts it.
      await session.close({ revoke: false });
    }
    this.#log.info("worker incarnation ended", {
      lease: session.lease,
      why: this.#shutDown
        ? "shut down"
        : this.#stop.signal.aborted
        ? "stopped"
        : "lease lost",
    });
  }

  /**
   * Ordered shutdown (workers/shutdown.ts): once asked and drained, claims
   * nothing more, lets running tasks finish, records the shutdown and stops.
   */
  async #shutdownWhenDrained(
    signal: AbortSignal,
    loop: ClaimLoop,
    vms: HostVms,
  ): Promise<void> {
    const { store, driver, config } = this.#o;
    const o = {
      store,
      host: this.host,
      lease: this.#id!.lease,
      driver,
      log: this.#log,
      vms,
    };
    const busy = () => loop.busy();
    const everyMs = config.worker.monitorIntervalMs;
    while (await awaitDrained({ ...o, busy, signal, everyMs })) {
      loop.setClosing(true);
      await loop.settled();
      const done = !signal.aborted && await markDone(o).catch((err) => {
        this.#log.warn("cannot record the shutdown", { error: String(err) });
        return false;
      });
      if (done) {
        this.#log.info("host drained: the worker shuts down in order");
        this.#shutDown = true;
        this.#stop.abort();
        return;
      }
      loop.setClosing(false);
      await sleep(everyMs, signal);
    }
  }

  /** Keeps VM status in step with what the driver reports (VmKeeper). */
  async #monitor(
    signal: AbortSignal,
    keeper: VmKeeper,
    runner: TaskRunner,
  ): Promise<void> {
    const { driver, config } = this.#o;
    while (!signal.aborted) {
      await sleep(config.worker.monitorIntervalMs, signal);
      if (signal.aborted) break;
      await keepFencer(fencerOptions(config, driver.name), this.#log);
      try {
        await keeper.pass(runner.busyVms());
      } catch (err) {
        this.#log.warn("monitor pass failed", { error: String(err) });
      }
    }
  }
}
