/**
 * The `sim` VM driver: a VM is one plain long-running process (`sleep
 * infinity`, renamed so it can be recognised), for control-plane scale
 * tests and benchmarks where booting qemu would measure the wrong thing.
 * Same life cycle and files as the qemu driver, trivially:
 * `<stateDir>/vms/<id>/sim.pid` names the process, whose argv[0] is
 * `ucloud-sim <pidfile>` (checked before every signal, so a reused pid is
 * never signalled). The process runs in its own session, detached from the
 * worker, so a restarted worker re-adopts it like a daemonized qemu.
 * Its NICs are the file `<stateDir>/vms/<id>/nics.json` (slot to NIC),
 * written from `spec.nics` on a fresh start and removed on stop, so NICs
 * live as long as the process, like qemu's.
 *
 * @example
 * ```ts
 * const driver = new SimDriver({ stateDir: "/var/lib/ucloud" });
 * const handle = await driver.start({ id: "vm-1", name: "a", cpus: 1,
 *   memoryMiB: 128, boot: { disk: "/dev/null", format: "raw" } });
 * await driver.inspect(handle); // { state: "running" }
 * await driver.stop(handle); // { how: "shutdown", ms: 12 }
 * await driver.destroy("vm-1");
 * ```
 *
 * @module
 */
import { basename, resolve } from "node:path";
import type {
  DriverHandle,
  DriverNic,
  DriverSpec,
  RebootResult,
  StopOptions,
  StopResult,
} from "../../tasks/context.ts";
import { checkSlot, nicOptions } from "../qemu/nic_options.ts";
import { run } from "../runner.ts";

export type SimHandle = {
  driver: "sim";
  pid: number;
  dir: string;
  pidfile: string;
  startedAt: string;
};

export interface SimDriverOptions {
  /** VMs live in `<stateDir>/vms/<id>/`. */
  stateDir: string;
}

const ID_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
const START_TIMEOUT_MS = 10_000;
const POLL_MS = 10;
const STOP_TIMEOUT_MS = 60_000;
const KILL_WAIT_MS = 5_000;
/** Renames the process and execs sleep; `$1` is the pidfile. */
const SCRIPT = 'exec </dev/null >/dev/null 2>&1; echo $$ >"$1.tmp" && ' +
  'mv "$1.tmp" "$1" && exec -a "ucloud-sim $1" sleep infinity';
/** The boot flag of a guest that ignores the power button (the test guest's). */
const IGNORE_FLAG = /(^|\s)ucloud\.ignore_acpi=1(\s|$)/;

export class SimDriver {
  readonly name = "sim";
  readonly stateDir: string;
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor({ stateDir }: SimDriverOptions) {
    this.stateDir = resolve(stateDir);
  }

  #paths(id: string): { dir: string; pidfile: string } {
    if (!ID_RE.test(id)) {
      throw new TypeError(`Cannot use vm id ${JSON.stringify(id)}`);
    }
    const dir = `${this.stateDir}/vms/${id}`;
    return { dir, pidfile: `${dir}/sim.pid` };
  }

  /** Starts the VM's process; idempotent (re-attaches to a live one). */
  async start(
    spec: DriverSpec,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<SimHandle> {
    const { dir, pidfile } = this.#paths(spec.id);
    return await this.#exclusive(spec.id, async () => {
      signal?.throwIfAborted();
      const running = await livePid(pidfile);
      if (running !== null) return await handleOf(running, dir, pidfile);
      const nics: Nics = {};
      (spec.nics ?? []).forEach((nic, i) => {
        nicOptions(nic, `nics[${i}]`, `start vm ${spec.id}`);
        if (nics[nic.slot]) {
          throw new RangeError(
            `Cannot start vm ${spec.id}: nics[${i}].slot ${nic.slot} is already used by another NIC`,
          );
        }
        nics[nic.slot] = { ...nic };
      });
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      await Deno.remove(pidfile).catch(() => {});
      await writeNics(dir, nics);
      // An ignored SIGTERM stays ignored across exec.
      const ignore = "append" in spec.boot &&
        IGNORE_FLAG.test(spec.boot.append ?? "");
      const script = ignore ? `trap '' TERM; ${SCRIPT}` : SCRIPT;
      await run("setsid", ["-f", "bash", "-c", script, "ucloud-sim", pidfile], {
        signal,
        timeoutMs: START_TIMEOUT_MS,
      });
      const until = Date.now() + START_TIMEOUT_MS;
      while (Date.now() < until) {
        const pid = await livePid(pidfile);
        if (pid !== null) return await handleOf(pid, dir, pidfile);
        signal?.throwIfAborted();
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      throw new Error(
        `Cannot start vm ${spec.id}: no sim process after ${START_TIMEOUT_MS} ms`,
      );
    });
  }

  /** The handle when its process still runs, else null. */
  async recover(handle: DriverHandle): Promise<SimHandle | null> {
    const h = checkHandle(handle);
    return await owns(h.pid, h.pidfile) ? h : null;
  }

  async inspect(
    handle: DriverHandle,
  ): Promise<{ state: "running" | "gone"; detail?: string }> {
    const h = checkHandle(handle);
    return await owns(h.pid, h.pidfile)
      ? { state: "running" }
      : { state: "gone", detail: `sim process ${h.pid} is gone` };
  }

  /**
   * SIGTERM (the power button: the process exits on it, unless it was
   * started to ignore it), given `timeoutMs` (default 60000), then
   * SIGKILL; `force`: SIGKILL at once. Idempotent ("gone").
   */
  async stop(
    handle: DriverHandle,
    { force = false, timeoutMs = STOP_TIMEOUT_MS }: StopOptions = {},
  ): Promise<StopResult> {
    const h = checkHandle(handle);
    const began = performance.now();
    let how: StopResult["how"] = "gone";
    if (await owns(h.pid, h.pidfile)) {
      how = !force && kill(h.pid, "SIGTERM") &&
          await gone(h, timeoutMs)
        ? "shutdown"
        : "forced";
      if (how === "forced") {
        kill(h.pid, "SIGKILL");
        if (!await gone(h, KILL_WAIT_MS)) {
          throw new Error(
            `Cannot stop sim pid ${h.pid}: still running after SIGKILL`,
          );
        }
      }
    }
    await Deno.remove(h.pidfile).catch(() => {});
    await Deno.remove(nicsFile(h.dir)).catch(() => {});
    return { how, ms: Math.round(performance.now() - began) };
  }

  /**
   * A sim VM has no guest to reboot: checks that its process runs and
   * reports the reboot asked for ("forced" with `force`, else "reboot").
   */
  async reboot(
    handle: DriverHandle,
    { force = false }: StopOptions = {},
  ): Promise<RebootResult> {
    await this.#running(handle, "reboot");
    return { how: force ? "forced" : "reboot", ms: 0 };
  }

  /** Slots of the VM's NICs, sorted; throws when its process is gone. */
  async listNics(handle: DriverHandle): Promise<number[]> {
    const h = await this.#running(handle, "list NICs");
    return Object.keys(await readNics(h.dir)).map(Number).sort((a, b) => a - b);
  }

  /** Adds `nic`; the same NIC already in its slot is fine, another is not. */
  async plugNic(handle: DriverHandle, nic: DriverNic): Promise<void> {
    const h = checkHandle(handle);
    nicOptions(nic, "nic", "plug NIC");
    const what = `plug NIC into slot ${nic.slot} of vm ${basename(h.dir)}`;
    await this.#exclusive(`nics:${h.dir}`, async () => {
      await this.#running(h, what);
      const nics = await readNics(h.dir);
      const held = nics[nic.slot];
      if (held) {
        if (held.mac.toLowerCase() === nic.mac.toLowerCase()) return;
        throw new Error(
          `Cannot ${what}: the slot holds a NIC with MAC ${held.mac}; unplug it first`,
        );
      }
      nics[nic.slot] = { slot: nic.slot, tap: nic.tap, mac: nic.mac };
      await writeNics(h.dir, nics);
    });
  }

  /** Removes the NIC of `slot`; an empty slot is fine. */
  async unplugNic(handle: DriverHandle, slot: number): Promise<void> {
    const h = checkHandle(handle);
    checkSlot(slot, "slot", "unplug NIC");
    const what = `unplug NIC from slot ${slot} of vm ${basename(h.dir)}`;
    await this.#exclusive(`nics:${h.dir}`, async () => {
      await this.#running(h, what);
      const nics = await readNics(h.dir);
      if (!nics[slot]) return;
      delete nics[slot];
      await writeNics(h.dir, nics);
    });
  }

  /** The handle when its process runs; else throws "Cannot <what>: ...". */
  async #running(handle: DriverHandle, what: string): Promise<SimHandle> {
    const h = checkHandle(handle);
    if (!await owns(h.pid, h.pidfile)) {
      throw new Error(
        `Cannot ${what}: sim process ${h.pid} of vm ${
          basename(h.dir)
        } is not running`,
      );
    }
    return h;
  }

  /** Removes the VM's directory; refuses while its process runs. */
  async destroy(id: string): Promise<void> {
    const { dir, pidfile } = this.#paths(id);
    await this.#exclusive(id, async () => {
      const pid = await livePid(pidfile);
      if (pid !== null) {
        throw new Error(
          `Cannot destroy vm ${id}: sim pid ${pid} is still running; stop it first`,
        );
      }
      await Deno.remove(dir, { recursive: true }).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    });
  }

  /** Ids of the VMs that have a directory here, sorted. */
  async listLocal(): Promise<string[]> {
    const ids: string[] = [];
    try {
      for await (const e of Deno.readDir(`${this.stateDir}/vms`)) {
        if (e.isDirectory && ID_RE.test(e.name)) ids.push(e.name);
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    return ids.sort();
  }

  /** Self-fencing: SIGKILLs every sim process here (or of VMs `ids`) at once. */
  async fence(ids?: string[]): Promise<string[]> {
    const killed: string[] = [];
    await Promise.all((ids ?? await this.listLocal()).map(async (id) => {
      const pid = await livePid(this.#paths(id).pidfile);
      if (pid !== null && kill(pid, "SIGKILL")) killed.push(id);
    }));
    return killed.sort();
  }

  async #exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(id) ?? Promise.resolve();
    const current = before.catch(() => {}).then(fn);
    const tail = current.catch(() => {});
    this.#locks.set(id, tail);
    try {
      return await current;
    } finally {
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    }
  }
}

/** A VM's NICs by slot. */
type Nics = Record<number, DriverNic>;

function nicsFile(dir: string): string {
  return `${dir}/nics.json`;
}

async function readNics(dir: string): Promise<Nics> {
  try {
    return JSON.parse(await Deno.readTextFile(nicsFile(dir)));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    throw err;
  }
}

/** Replaces the NICs file atomically (write, then rename). */
async function writeNics(dir: string, nics: Nics): Promise<void> {
  const file = nicsFile(dir);
  await Deno.writeTextFile(`${file}.tmp`, JSON.stringify(nics) + "\n");
  await Deno.rename(`${file}.tmp`, file);
}

function checkHandle(handle: DriverHandle): SimHandle {
  const h = handle as Partial<SimHandle>;
  if (
    h?.driver !== "sim" || !Number.isInteger(h.pid) ||
    typeof h.pidfile !== "string" || typeof h.dir !== "string"
  ) {
    throw new TypeError(
      `Cannot use handle ${JSON.stringify(handle)}: not a sim handle`,
    );
  }
  return h as SimHandle;
}

async function handleOf(
  pid: number,
  dir: string,
  pidfile: string,
): Promise<SimHandle> {
  const { mtime } = await Deno.stat(pidfile);
  return {
    driver: "sim",
    pid,
    dir,
    pidfile,
    startedAt: (mtime ?? new Date()).toISOString(),
  };
}

/** The pid in `pidfile` when that process is our sim process, else null. */
async function livePid(pidfile: string): Promise<number | null> {
  let pid: number;
  try {
    pid = Number((await Deno.readTextFile(pidfile)).trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 1) return null;
  return await owns(pid, pidfile) ? pid : null;
}

/** Whether `pid` is alive (not a zombie) and is the sim of `pidfile`. */
export async function owns(pid: number, pidfile: string): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2).charAt(0);
    if (state === "Z" || state === "X") return false;
    const argv0 = (await Deno.readTextFile(`/proc/${pid}/cmdline`))
      .split("\0")[0];
    return argv0 === `ucloud-sim ${pidfile}`;
  } catch {
    return false;
  }
}

/** True once the sim process is gone; false after `timeoutMs`. */
async function gone(h: SimHandle, timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (await owns(h.pid, h.pidfile)) {
    if (performance.now() >= until) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return true;
}

function kill(pid: number, sig: Deno.Signal): boolean {
  try {
    Deno.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}
