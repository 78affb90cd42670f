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
import { UnreadableError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Claim, Task, Vm } from "../core/schemas.ts";
import { Session } from "../core/session.ts";
import type { Store } from "../core/store.ts";
import { sleep, watchPrefix } from "../core/watch.ts";
import {
  type Boot,
  type DriverSpec,
  PermanentError,
  type TaskContext,
  type VmDriver,
} from "../tasks/context.ts";
import { handlers } from "../tasks/handlers.ts";
import {
  claim,
  complete,
  fail,
  guard,
  reportProgress,
  resume,
  type WorkerId,
} from "../tasks/queue.ts";
import { taskTimeoutMs } from "../tasks/stop_options.ts";
import { withStatus } from "../tasks/vm_common.ts";
import {
  ensureFencer,
  fencerOptions,
  keepFencer,
  stopFencer,
} from "./fence.ts";
import { leaseOf, watchFailures } from "./failure_watch.ts";
import { endHandover } from "./handover.ts";
import { resolveImage } from "./images.ts";
import { HostNet } from "./net.ts";
import { Registration } from "./registration.ts";
import { awaitDrained, markDone } from "./shutdown.ts";
import { VmKeeper } from "./vm_keeper.ts";
import type { NetDriver } from "../drivers/net/mod.ts";
import type { Underlay } from "../drivers/net/types.ts";

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

interface Queued {
  target: string;
  notBefore: number;
}

/** How often a handler whose completion lost a compare is run again. */
const RERUNS = 5;
/** A task document that cannot be read is tried again after this long. */
const UNREADABLE_RETRY_MS = 10_000;

export class Worker {
  readonly host: string;
  readonly #o: WorkerOptions;
  readonly #log: Logger;
  readonly #stop = new AbortController();
  #session?: Session;
  #id?: WorkerId;
  readonly #reg: Registration;
  #net?: HostNet;
  /** Runnable tasks seen in this host's queues, by task id. */
  readonly #queued = new Map<string, Queued>();
  /** Task ids another worker holds a claim on. */
  readonly #claimedElsewhere = new Set<string>();
  /** Task ids this worker is claiming or running. */
  readonly #mine = new Set<string>();
  /** Per-VM chains so tasks of one VM never run at once on this host. */
  readonly #vmChains = new Map<string, Promise<void>>();
  readonly #running = new Set<Promise<void>>();
  #wake?: ReturnType<typeof setTimeout>;
  #handover = false;
  /** An ordered shutdown is about to finish: claim nothing new. */
  #closing = false;
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

  async run(): Promise<"stopped" | "shutdown" | "lost"> {
    const { config, driver } = this.#o;
    const { session, adopted } = await this.#reg.openSession();
    this.#session = session;
    this.#id = { name: this.host, lease: session.lease };
    const signal = AbortSignal.any([session.signal, this.#stop.signal]);
    // Self-fencing the moment the session ends, not once every loop has
    // wound down: the cluster may restart these VMs elsewhere soon.
    let fenced: Promise<string[]> | undefined;
    const selfFence = () => {
      if (!this.#stop.signal.aborted) fenced ??= driver.fence();
    };
    session.signal.addEventListener("abort", selfFence, { once: true });
    try {
      await this.#reg.register(session.lease, adopted, signal);
      if (signal.aborted) return this.#stop.signal.aborted ? "stopped" : "lost";
      // A hand-over ends with this registration: the fencer lets go.
      await endHandover(config.worker.runDir);
      await ensureFencer(fencerOptions(config, driver.name));
      const keeper = new VmKeeper({
        store: this.#o.store,
        driver,
        config,
        host: this.host,
        lease: session.lease,
        alive: () => session.check(),
        log: this.#log,
      });
      await keeper.recover();
      const network = this.#o.network;
      if (network) {
        this.#net = new HostNet({
          store: this.#o.store,
          host: this.host,
          driver: network.driver,
          underlay: network.underlay,
          lease: () => this.#id?.lease,
          log: this.#log,
        });
        await this.#net.sync({ signal }).catch((err) =>
          this.#log.error("network sync at start failed", {
            error: String(err),
          })
        );
      }
      const loops = [
        ...(this.#net ? [this.#net.run(signal)] : []),
        this.#watchQueue(this.host, signal),
        this.#watchQueue("any", signal),
        this.#watchClaims(signal),
        watchFailures({
          store: this.#o.store,
          host: this.host,
          log: this.#log,
          signal,
        }),
        this.#monitor(signal, keeper),
        this.#shutdownWhenDrained(signal),
      ];
      await Promise.all(loops);
      if (this.#shutDown) return "shutdown";
      return this.#stop.signal.aborted ? "stopped" : "lost";
    } finally {
      clearTimeout(this.#wake);
      session.signal.removeEventListener("abort", selfFence);
      if (fenced) {
        const killed = await fenced.catch((err) => [String(err)]);
        this.#log.error("lease lost: fenced every VM of this host", {
          killed,
        });
      }
      await Promise.allSettled([...this.#running]);
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
  }

  /** A transaction that holds only while this incarnation is alive. */
  #aliveGuard() {
    return this.#o.store.txn().ifLease(keys.alive(this.host), this.#id!.lease);
  }

  /**
   * Ordered shutdown (workers/shutdown.ts): once asked and drained, claims
   * nothing more, lets running tasks finish, records the shutdown and stops.
   */
  async #shutdownWhenDrained(signal: AbortSignal): Promise<void> {
    const { store, driver, config } = this.#o;
    const o = {
      store,
      host: this.host,
      lease: this.#id!.lease,
      driver,
      log: this.#log,
    };
    const busy = () =>
      [...this.#queued.values()].some((q) => q.target === this.host);
    const everyMs = config.worker.monitorIntervalMs;
    while (await awaitDrained({ ...o, busy, signal, everyMs })) {
      this.#closing = true;
      await Promise.allSettled([...this.#running]);
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
      this.#closing = false;
      this.#pump();
      await sleep(everyMs, signal);
    }
  }

  /** Keeps VM status in step with what the driver reports (VmKeeper). */
  async #monitor(signal: AbortSignal, keeper: VmKeeper): Promise<void> {
    const { driver, config } = this.#o;
    while (!signal.aborted) {
      await sleep(config.worker.monitorIntervalMs, signal);
      if (signal.aborted) break;
      await keepFencer(fencerOptions(config, driver.name), this.#log);
      try {
        await keeper.pass(new Set(this.#vmChains.keys()));
      } catch (err) {
        this.#log.warn("monitor pass failed", { error: String(err) });
      }
    }
  }

  async #watchQueue(target: string, signal: AbortSignal): Promise<void> {
    const prefix = keys.queueOf(target);
    const parse = (v: string) => {
      try {
        return Number(JSON.parse(v).notBefore) || 0;
      } catch {
        return 0;
      }
    };
    await watchPrefix(this.#o.store, prefix, {
      signal,
      log: this.#log,
      onReset: (items) => {
        for (const [id, q] of this.#queued) {
          if (q.target === target) this.#queued.delete(id);
        }
        for (const it of items) {
          this.#queued.set(it.key.slice(prefix.length), {
            target,
            notBefore: parse(it.value),
          });
        }
        this.#pump();
      },
      onEvent: (ev) => {
        const id = ev.key.slice(prefix.length);
        if (ev.type === "delete") this.#queued.delete(id);
        else {
          this.#queued.set(id, { target, notBefore: parse(ev.value) });
          this.#claimedElsewhere.delete(id);
        }
        this.#pump();
      },
    });
  }

  async #watchClaims(signal: AbortSignal): Promise<void> {
    await watchPrefix(this.#o.store, keys.claims, {
      signal,
      log: this.#log,
      onReset: (items) => {
        this.#claimedElsewhere.clear();
        for (const it of items) {
          const id = it.key.slice(keys.claims.length);
          // Claims of this (adopted) lease are resumed by #pump.
          if (this.#mine.has(id) || leaseOf(it.value) === this.#id!.lease) {
            continue;
          }
          this.#claimedElsewhere.add(id);
        }
        this.#pump();
      },
      onEvent: (ev) => {
        const id = ev.key.slice(keys.claims.length);
        if (ev.type === "delete") this.#claimedElsewhere.delete(id);
        else if (!this.#mine.has(id)) this.#claimedElsewhere.add(id);
        this.#pump();
      },
    });
  }

  /** Claims what is due, up to the concurrency limit; re-arms a timer. */
  #pump(): void {
    const signal = this.#session?.signal;
    if (!signal || signal.aborted || this.#stop.signal.aborted) return;
    if (this.#closing) return;
    clearTimeout(this.#wake);
    const now = Date.now();
    let next = Infinity;
    const ids = [...this.#queued.keys()].sort();
    for (const id of ids) {
      if (this.#mine.size >= this.#o.config.worker.concurrency) break;
      if (this.#mine.has(id) || this.#claimedElsewhere.has(id)) continue;
      const q = this.#queued.get(id)!;
      if (q.notBefore > now) {
        next = Math.min(next, q.notBefore);
        continue;
      }
      this.#mine.add(id);
      const p = this.#claimAndRun(id).catch((err) =>
        this.#log.error("task runner failed", { task: id, error: String(err) })
      ).finally(() => {
        this.#mine.delete(id);
        this.#running.delete(p);
        this.#pump();
      });
      this.#running.add(p);
    }
    if (next < Infinity) {
      this.#wake = setTimeout(() => this.#pump(), next - now + 5);
    }
  }

  async #claimAndRun(id: string): Promise<void> {
    // A claim this lease already holds was made by the previous process of
    // this host whose lease was adopted: resume it.
    let claimed;
    try {
      claimed = await claim(this.#o.store, id, this.#id!) ??
        await resume(this.#o.store, id, this.#id!);
    } catch (err) {
      if (!(err instanceof UnreadableError)) throw err;
      // Corrupt, or a newer version's (the store reported it): try again
      // later, not in a loop.
      const q = this.#queued.get(id);
      if (q) q.notBefore = Date.now() + UNREADABLE_RETRY_MS;
      return;
    }
    if (!claimed) {
      // Someone else holds it, or it is finished or not due: wait for news.
      const c = await this.#o.store.get(keys.claim(id), Claim);
      if (c) this.#claimedElsewhere.add(id);
      else {
        const t = await this.#o.store.get(keys.task(id), Task);
        const q = this.#queued.get(id);
        if (t && q && t.value.notBefore > Date.now()) {
          q.notBefore = t.value.notBefore;
        } else if (!t || t.value.state !== "queued") this.#queued.delete(id);
      }
      return;
    }
    // Its attempts were used up by workers that died running it.
    if (claimed.value.state === "failed") {
      this.#log.warn("task failed", { task: id, error: claimed.value.error });
      return await this.#vmFailed(claimed.value, claimed.value.error ?? "");
    }
    await this.#runClaimed(claimed.value);
  }

  /** Runs a claimed task, after any other task of the same VM here. */
  async #runClaimed(task: Task): Promise<void> {
    const vm = typeof task.payload.vm === "string"
      ? task.payload.vm
      : undefined;
    if (!vm) return await this.#execute(task);
    const before = this.#vmChains.get(vm) ?? Promise.resolve();
    const mine = before.then(() => this.#execute(task));
    const link = mine.catch(() => {});
    this.#vmChains.set(vm, link);
    try {
      await mine;
    } finally {
      if (this.#vmChains.get(vm) === link) this.#vmChains.delete(vm);
    }
  }

  async #execute(task: Task): Promise<void> {
    const { store, config, driver } = this.#o;
    const id = this.#id!;
    const log = this.#log.child({
      task: task.id,
      kind: task.kind,
      ...(typeof task.payload.vm === "string" ? { vm: task.payload.vm } : {}),
    });
    const signal = AbortSignal.any([
      this.#session!.signal,
      this.#stop.signal,
      AbortSignal.timeout(taskTimeoutMs(task, config)),
    ]);
    const handler = handlers[task.kind];
    let current = task;
    const ctx: TaskContext = {
      store,
      config,
      task,
      worker: id,
      host: this.host,
      driver: startsWhileAlive(driver, this.#session!),
      images: this.#o.images ??
        ((name) => resolveImage(config.stateDir, name)),
      net: this.#net,
      signal,
      log,
      guard: () => guard(store, task.id, id),
      progress: async (message) => {
        current = { ...current, progress: message };
        await reportProgress(store, current, id, message);
        log.info("progress", { progress: message });
      },
    };
    log.info("task started", { attempt: task.attempts });
    const started = performance.now();
    try {
      if (!handler) {
        throw new PermanentError(`No handler for task kind ${task.kind}`);
      }
      for (let i = 0; i < RERUNS; i++) {
        const outcome = await handler(ctx);
        if (
          await complete(store, task, id, outcome.result, outcome.txn)
        ) {
          log.info("task succeeded", {
            ms: Math.round(performance.now() - started),
            result: outcome.result,
          });
          // Ports follow the VM: removed after a stop, delete or unplug.
          if (task.kind.startsWith("vm.")) this.#net?.kick();
          return;
        }
        if (!(await this.#holdsClaim(task.id))) {
          log.warn("claim lost before completion; outcome not recorded");
          return;
        }
        log.info("state changed while the task ran; running it again");
      }
      throw new Error(`state kept changing during ${RERUNS} runs`);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (this.#session!.signal.aborted) {
        log.warn("task abandoned: lease session lost", { error: message });
        return;
      }
      const r = await fail(store, task, id, message, {
        retryable: !(err instanceof PermanentError),
        baseMs: config.tasks.backoffBaseMs,
        maxMs: config.tasks.backoffMaxMs,
      });
      log.warn(`task ${r === "retry" ? "will retry" : r}`, { error: message });
      if (r === "failed") await this.#vmFailed(task, message);
    }
  }

  async #holdsClaim(taskId: string): Promise<boolean> {
    const c = await this.#o.store.get(keys.claim(taskId), Claim);
    return c?.lease === this.#id!.lease;
  }

  /** After a task gave up, the VM shows phase failed with the reason. */
  async #vmFailed(task: Task, error: string): Promise<void> {
    if (typeof task.payload.vm !== "string") return;
    for (let i = 0; i < 3; i++) {
      const vm = await this.#o.store.get(keys.vm(task.payload.vm), Vm);
      if (!vm) return;
      const r = await this.#aliveGuard().ifModRevision(vm.key, vm.modRevision)
        .put(
          vm.key,
          withStatus(vm.value, {
            phase: "failed",
            reason: `${task.kind} failed: ${error}`,
          }),
        ).commit();
      if (r.ok) return;
    }
  }
}

/**
 * `driver` for task handlers: `start` checks the lease deadline first, so no
 * VM process starts once it has passed, even before the deadline's timer
 * ran (after SIGSTOP, I/O callbacks may run before timers).
 */
function startsWhileAlive(driver: VmDriver, session: Session): VmDriver {
  return new Proxy(driver, {
    get(target, prop) {
      if (prop === "start") {
        return (spec: DriverSpec, o?: { signal?: AbortSignal }) => {
          session.check();
          return target.start(spec, o);
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
