/**
 * Runs the tasks one worker incarnation has claimed: one at a time per VM,
 * each under the lease session and its own timeout; records the outcome
 * (running the handler again when its completion lost a compare) and marks
 * the VM (or the image) failed when a task gives up.
 *
 * @example
 * ```ts
 * const runner = new TaskRunner({ store, config, driver, host, worker: id,
 *   session, stop: stopSignal, log, net: hostNet });
 * await runner.run(claimedTask);
 * ```
 */
import type { Config } from "../core/config.ts";
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Claim, Task, Vm } from "../core/schemas.ts";
import type { Session } from "../core/session.ts";
import type { Store } from "../core/store.ts";
import { imageStoreOf } from "../drivers/images/mod.ts";
import {
  type Boot,
  type DriverSpec,
  PermanentError,
  type TaskContext,
  type VmDriver,
} from "../tasks/context.ts";
import type { ImageStore } from "../tasks/image_store.ts";
import { handlers } from "../tasks/handlers.ts";
import { imageFailed } from "../tasks/image_failed.ts";
import { fail, guard, reportProgress, type WorkerId } from "../tasks/queue.ts";
import { completeOutcome } from "../tasks/outcome.ts";
import { taskTimeoutMs } from "../tasks/stop_options.ts";
import { withStatus } from "../tasks/vm_common.ts";
import { resolveImage } from "./images.ts";
import type { HostNet } from "./net.ts";

/** Options of a `TaskRunner`. */
export interface TaskRunnerOptions {
  store: Store;
  config: Config;
  driver: VmDriver;
  host: string;
  /** The incarnation that holds the claims (host name and lease). */
  worker: WorkerId;
  /** The lease session: its end abandons running tasks. */
  session: Session;
  /** Aborted when the worker is asked to stop. */
  stop: AbortSignal;
  log: Logger;
  images?: (name: string) => Promise<Boot>;
  /** Host networking (absent without drivers/net). */
  net?: HostNet;
  /** The image store; default the one of `config.images`. */
  imageStore?: ImageStore;
}

/** How often a handler whose completion lost a compare is run again. */
const RERUNS = 5;

/** Runs claimed tasks and records their outcome. */
export class TaskRunner {
  readonly #o: TaskRunnerOptions;
  /** Per-VM chains so tasks of one VM never run at once on this host. */
  readonly #vmChains = new Map<string, Promise<void>>();
  readonly #imageStore: ImageStore | undefined;

  constructor(opts: TaskRunnerOptions) {
    this.#o = opts;
    this.#imageStore = opts.imageStore ?? imageStoreOf(opts.config);
  }

  /** The VMs that have a task running or waiting on this host. */
  busyVms(): Set<string> {
    return new Set(this.#vmChains.keys());
  }

  /**
   * Runs a claimed task, after any other task of the same VM here; a task
   * whose attempts were used up by workers that died running it only marks
   * its VM failed.
   */
  async run(task: Task): Promise<void> {
    if (task.state === "failed") {
      this.#o.log.warn("task failed", { task: task.id, error: task.error });
      return await this.#gaveUp(task, task.error ?? "");
    }
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
    const { store, config, driver, session, net } = this.#o;
    const id = this.#o.worker;
    const log = this.#o.log.child({
      task: task.id,
      kind: task.kind,
      ...(typeof task.payload.vm === "string" ? { vm: task.payload.vm } : {}),
    });
    const signal = AbortSignal.any([
      session.signal,
      this.#o.stop,
      AbortSignal.timeout(taskTimeoutMs(task, config)),
    ]);
    const handler = handlers[task.kind];
    let current = task;
    const ctx: TaskContext = {
      store,
      config,
      task,
      worker: id,
      host: this.#o.host,
      driver: startsWhileAlive(driver, session),
      images: this.#o.images ??
        ((name) => resolveImage(config.stateDir, name)),
      net,
      imageStore: this.#imageStore,
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
        if (await completeOutcome(store, task, id, outcome)) {
          log.info("task succeeded", {
            ms: Math.round(performance.now() - started),
            result: outcome.result,
          });
          // Ports follow the VM: removed after a stop, delete or unplug.
          if (task.kind.startsWith("vm.")) net?.kick();
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
      if (session.signal.aborted) {
        log.warn("task abandoned: lease session lost", { error: message });
        return;
      }
      const r = await fail(store, task, id, message, {
        retryable: !(err instanceof PermanentError),
        baseMs: config.tasks.backoffBaseMs,
        maxMs: config.tasks.backoffMaxMs,
      });
      log.warn(`task ${r === "retry" ? "will retry" : r}`, { error: message });
      if (r === "failed") await this.#gaveUp(task, message);
    }
  }

  async #holdsClaim(taskId: string): Promise<boolean> {
    const c = await this.#o.store.get(keys.claim(taskId), Claim);
    return c?.lease === this.#o.worker.lease;
  }

  /**
   * After a task gave up, its VM shows phase failed with the reason, and
   * an image it was fetching or importing state failed.
   */
  async #gaveUp(task: Task, error: string): Promise<void> {
    await this.#vmFailed(task, error);
    if (typeof task.payload.image === "string") {
      const { store, host, worker } = this.#o;
      await imageFailed(
        store,
        task.payload.image,
        `${task.kind} failed: ${error}`,
        () => store.txn().ifLease(keys.alive(host), worker.lease),
      );
    }
  }

  async #vmFailed(task: Task, error: string): Promise<void> {
    if (typeof task.payload.vm !== "string") return;
    const { store, host, worker } = this.#o;
    for (let i = 0; i < 3; i++) {
      const vm = await store.get(keys.vm(task.payload.vm), Vm);
      if (!vm) return;
      // Holds only while this incarnation is alive.
      const r = await store.txn().ifLease(keys.alive(host), worker.lease)
        .ifModRevision(vm.key, vm.modRevision)
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
