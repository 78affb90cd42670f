/**
 * The nemesis: injects the faults of a plan (schedule.ts) into a running
 * {@linkcode NemesisEnv} at their offsets and heals each after its
 * duration; `run()` heals whatever is still broken when its signal fires.
 * It also plays systemd for the processes it did not kill: a worker or the
 * API that exits on its own is logged (a finding) and started again after
 * a second.
 *
 * Every injection, heal and unexpected exit is an event with its time,
 * printed as it happens: `fault +12.345s kill-worker h2 pid 4711`.
 *
 * @example
 * ```ts
 * const nemesis = new Nemesis(env, plan, { print: console.log });
 * const ctl = new AbortController();
 * setTimeout(() => ctl.abort(), 60_000);
 * await nemesis.run(ctl.signal); // every fault healed when this resolves
 * ```
 */
import type { NemesisEnv } from "./env.ts";
import type { FaultKind, PlannedFault } from "./schedule.ts";

/** One thing the nemesis did or saw. */
export interface FaultEvent {
  /** Date.now() when it happened. */
  at: number;
  action: "inject" | "heal" | "exit" | "error";
  kind: FaultKind | "supervisor";
  target: string;
  detail?: string;
}

export interface NemesisOptions {
  /** Where event lines go (default console.log). */
  print?: (line: string) => void;
  /** Offsets are from this Date.now() (default: when `run()` starts). */
  start?: number;
}

/** Resolves after `ms`, or at once when `signal` fires. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

export class Nemesis {
  readonly events: FaultEvent[] = [];
  readonly #print: (line: string) => void;
  #start: number;
  /** Processes the nemesis stopped on purpose (no restart on their exit). */
  readonly #expected = new Set<string>();
  #finished = false;
  readonly #pending = new Set<Promise<void>>();

  constructor(
    readonly env: NemesisEnv,
    readonly plan: readonly PlannedFault[],
    opts: NemesisOptions = {},
  ) {
    this.#print = opts.print ?? console.log;
    this.#start = opts.start ?? 0;
  }

  /** How many faults were injected. */
  get injected(): number {
    return this.events.filter((e) => e.action === "inject").length;
  }

  /** Processes that exited without the nemesis killing them. */
  get unexpectedExits(): FaultEvent[] {
    return this.events.filter((e) => e.action === "exit");
  }

  #event(e: Omit<FaultEvent, "at">): void {
    const ev = { at: Date.now(), ...e };
    this.events.push(ev);
    const off = ((ev.at - this.#start) / 1000).toFixed(3);
    const verb = e.action === "inject" ? "fault" : e.action;
    this.#print(
      `${verb} +${off}s ${e.kind} ${e.target}${e.detail ? ` ${e.detail}` : ""}`,
    );
  }

  /** Restarts `target` (a host's worker or `api`) whenever it exits alone. */
  supervise(target: string): void {
    const w = this.env.workers.get(target);
    const pid = target === "api" ? this.env.api.pid : w?.pid;
    const status = target === "api" ? this.env.api.exited : w?.child?.status;
    if (!pid || !status) return;
    status.then(async (s) => {
      if (this.#expected.delete(`${target}:${pid}`) || this.#finished) return;
      this.#event({
        action: "exit",
        kind: "supervisor",
        target,
        detail: `pid ${pid} exited on its own (code ${s.code}${
          s.signal ? `, ${s.signal}` : ""
        }); restarting it in 1 s`,
      });
      await new Promise((r) => setTimeout(r, 1000));
      const now = target === "api"
        ? this.env.api.pid
        : this.env.workers.get(target)!.pid;
      // Another restart (a fault's heal) may have come first.
      if (this.#finished || now !== pid) return;
      await this.#guarded("supervisor", target, async () => {
        if (target === "api") {
          await this.env.api.kill();
          await this.env.api.start();
        } else {
          await this.env.workers.get(target)!.kill();
          await this.env.workers.get(target)!.start();
        }
        this.supervise(target);
      });
    });
  }

  async #guarded(
    kind: FaultEvent["kind"],
    target: string,
    f: () => Promise<void>,
  ): Promise<void> {
    try {
      await f();
    } catch (err) {
      this.#event({ action: "error", kind, target, detail: String(err) });
    }
  }

  /** Injects one fault; returns its heal (run after the duration or at end). */
  async #inject(f: PlannedFault): Promise<(() => Promise<void>) | null> {
    const { env } = this;
    const w = env.workers.get(f.target);
    const heal = (detail: string, g: () => Promise<void>) => async () => {
      await g();
      this.#event({ action: "heal", kind: f.kind, target: f.target, detail });
    };
    const inject = (detail: string) =>
      this.#event({ action: "inject", kind: f.kind, target: f.target, detail });
    switch (f.kind) {
      case "kill-worker": {
        const pid = w!.pid;
        if (!pid) throw new Error("no worker process to kill");
        this.#expected.add(`${f.target}:${pid}`);
        await w!.kill("SIGKILL");
        inject(`pid ${pid}, restart in ${f.durationMs} ms`);
        return heal("worker started", async () => {
          await w!.start();
          this.supervise(f.target);
        });
      }
      case "stop-worker": {
        const pid = w!.pid;
        if (!pid) throw new Error("no worker process to stop");
        Deno.kill(pid, "SIGSTOP");
        inject(`pid ${pid} SIGSTOP for ${f.durationMs} ms`);
        return heal(`pid ${pid} SIGCONT`, () => {
          Deno.kill(pid, "SIGCONT");
          return Promise.resolve();
        });
      }
      case "kill-fencer": {
        const file = `${w!.runDir}/fencer.pid`;
        const pid = await Deno.readTextFile(file).catch(() => "none");
        await w!.killFencer();
        inject(`pid ${pid.trim()}`);
        return null;
      }
      case "partition":
        await env.net.partition(f.target);
        inject(`underlay link down for ${f.durationMs} ms`);
        return heal("underlay link up", () => env.net.heal(f.target));
      case "restart-etcd": {
        inject(`down for ${f.durationMs} ms`);
        await env.cluster.restartEtcd(f.durationMs);
        this.#event({
          action: "heal",
          kind: f.kind,
          target: f.target,
          detail: `etcd pid ${env.cluster.etcd.pid} serving`,
        });
        return null;
      }
      case "kill-api": {
        const pid = env.api.pid;
        if (!pid) throw new Error("no API process to kill");
        this.#expected.add(`api:${pid}`);
        await env.api.kill("SIGKILL");
        inject(`pid ${pid}, restart in ${f.durationMs} ms`);
        return heal("api started", async () => {
          await env.api.start();
          this.supervise("api");
        });
      }
    }
  }

  /**
   * Runs the plan until `signal` fires (or the plan ends), then heals every
   * fault still in place; resolves when all are healed.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (!this.#start) this.#start = Date.now();
    for (const target of [...this.env.hosts, "api"]) this.supervise(target);
    for (const f of this.plan) {
      await pause(this.#start + f.at - Date.now(), signal);
      if (signal.aborted) break;
      await this.#guarded(f.kind, f.target, async () => {
        const heal = await this.#inject(f);
        if (!heal) return;
        const p = pause(f.durationMs, signal).then(() =>
          this.#guarded(f.kind, f.target, heal)
        ).finally(() => this.#pending.delete(p));
        this.#pending.add(p);
      });
    }
    // Plan done or time is up: wait for (or force) every heal.
    if (!signal.aborted) {
      await new Promise<void>((r) =>
        signal.addEventListener("abort", () => r())
      );
    }
    await Promise.all([...this.#pending]);
  }

  /** No more restarts (call before tearing the cluster down). */
  finish(): void {
    this.#finished = true;
  }
}
