/**
 * Keeps the VMs of one host incarnation in step with etcd (DESIGN.md rule
 * 7): at start it takes over the VMs placed on this host
 * (tasks/ownership.ts), keeping live processes; while it runs, a VM it owns
 * whose process died is a crash (restart policy, workers/crash.ts), and a
 * process of a VM it does not own is killed and its files removed (not
 * when its document cannot be read: unreadable is not gone). It reads the
 * VMs from this host's watched cache (workers/host_vms.ts), not from
 * listings: a pass reads etcd only to check, by key, a VM whose process it
 * would remove.
 *
 * @example
 * ```ts
 * const keeper = new VmKeeper({ store, driver, config, host, lease, alive, log, vms });
 * await keeper.recover();
 * await keeper.pass(new Set()); // every monitor interval
 * ```
 */
import type { Config } from "../core/config.ts";
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Vm } from "../core/schemas.ts";
import { UnreadableError } from "../core/errors.ts";
import type { Kv, Store } from "../core/store.ts";
import type { VmDriver } from "../tasks/context.ts";
import { ownedBy, take } from "../tasks/ownership.ts";
import { poweredOffTxn } from "./guest_poweroff.ts";
import { crashTxn } from "./crash.ts";
import type { HostVms } from "./host_vms.ts";

export interface VmKeeperOptions {
  store: Store;
  driver: VmDriver;
  config: Config;
  host: string;
  /** This incarnation's lease: the owner it compares and writes. */
  lease: string;
  /** False once the lease deadline has passed (Session.check). */
  alive: () => boolean;
  log: Logger;
  /** This host's VMs, kept from a watch. */
  vms: HostVms;
}

export class VmKeeper {
  readonly #o: VmKeeperOptions;

  constructor(opts: VmKeeperOptions) {
    this.#o = opts;
  }

  /** A transaction that holds only while this incarnation is alive. */
  #aliveGuard() {
    return this.#o.store.txn().ifLease(keys.alive(this.#o.host), this.#o.lease);
  }

  /**
   * Re-adopts the VMs placed on this host, taking over (tasks/ownership.ts)
   * those a previous incarnation owned: a live process is kept, a VM that
   * should run but whose process is gone (fenced, or the host rebooted)
   * counts as a crash and is restarted. Files of VMs that no longer exist
   * or now run elsewhere are removed.
   */
  async recover(): Promise<void> {
    const { store, driver, vms } = this.#o;
    for (const vm of vms.items()) {
      for (let i = 0, cur: Kv<Vm> | null = vm; cur && i < 3; i++) {
        if (await this.#adopt(cur)) break;
        cur = await store.get(vm.key, Vm);
        if (cur?.value.status.host !== this.#o.host) cur = null;
      }
    }
    await this.#reap(await driver.listLocal(), new Set());
  }

  /**
   * Takes one VM of this host over for this incarnation; false when it
   * changed meanwhile (read it again).
   */
  async #adopt(vm: Kv<Vm>): Promise<boolean> {
    const lease = this.#o.lease;
    const s = vm.value.status;
    const adopted = s.handle ? await this.#o.driver.recover(s.handle) : null;
    if (!adopted && vm.value.desired === "running" && s.phase === "running") {
      return await this.#crashed(
        vm,
        "its process was gone when the worker started (fenced or host restarted)",
        false,
      );
    }
    if (ownedBy(vm.value, this.#o.host, lease)) {
      if (adopted) {
        this.#o.log.info("re-adopted running VM", {
          vm: vm.value.id,
          pid: adopted.pid,
        });
      }
      return true;
    }
    const taken = await take(this.#aliveGuard(), vm, this.#o.host, lease);
    if (taken) {
      this.#o.log.info("took over a VM of a previous incarnation", {
        vm: vm.value.id,
        from: s.incarnation,
        ...(adopted ? { pid: adopted.pid } : {}),
      });
    }
    return taken !== null;
  }

  /**
   * Kills the processes and removes the files of the `local` VMs that
   * this host does not own (gone, evacuated, or moved while this host was
   * cut off), except those a task of this worker is working on (`busy`)
   * and those whose document cannot be read (unreadable is not gone).
   * Read `busy`, then `local`, then the documents: a VM is taken over
   * before its process starts, so a process found here is never newer than
   * the read that judges it. The cache may lag behind etcd, so a VM it does
   * not show as owned is read again by key before its process goes.
   */
  async #reap(local: string[], busy: Set<string>): Promise<void> {
    const { driver, vms } = this.#o;
    const bad = vms.unreadable();
    for (const id of local) {
      if (busy.has(id) || bad.has(id) || this.#keeps(vms.get(id)?.value)) {
        continue;
      }
      let vm: Vm | undefined;
      try {
        vm = (await this.#o.store.get(keys.vm(id), Vm))?.value;
      } catch (err) {
        if (!(err instanceof UnreadableError)) throw err;
        continue;
      }
      if (this.#keeps(vm)) continue;
      try {
        const killed = await driver.fence([id]);
        await driver.destroy(id);
        this.#o.log.warn("removed a VM this host does not own", {
          vm: id,
          killed: killed.length > 0,
          owner: vm ? `${vm.status.host}/${vm.status.incarnation}` : "none",
        });
      } catch (err) {
        this.#o.log.error("cannot remove a VM this host does not own", {
          vm: id,
          error: String(err),
        });
      }
    }
  }

  /**
   * True when the process of `vm` stays: this incarnation owns it, or it
   * is placed here and not yet taken (no incarnation).
   */
  #keeps(vm: Vm | undefined): boolean {
    if (!vm) return false;
    if (ownedBy(vm, this.#o.host, this.#o.lease)) return true;
    return vm.status.host === this.#o.host && !vm.status.incarnation;
  }

  /**
   * Records that the process of `vm` died while it should run (restart
   * policy: workers/crash.ts); false when the VM changed meanwhile.
   */
  async #crashed(vm: Kv<Vm>, why: string, counted = true): Promise<boolean> {
    const { config, driver } = this.#o;
    const pid = vm.value.status.handle?.pid;
    const reason = `${driver.name} ${
      pid ? `(pid ${pid}) ` : ""
    }exited without ucloud stopping it: ${why}`;
    const r = await crashTxn(this.#aliveGuard(), vm, {
      host: this.#o.host,
      lease: this.#o.lease,
      reason,
      policy: config.restart,
      counted,
      maxAttempts: config.tasks.maxAttempts,
    }).commit();
    if (r.ok) this.#o.log.warn("VM crashed", { vm: vm.value.id, reason });
    return r.ok;
  }

  /** The guest of `vm` powered itself off: a stop (workers/guest_poweroff.ts). */
  async #poweredOff(vm: Kv<Vm>): Promise<void> {
    const r = await poweredOffTxn(this.#aliveGuard(), vm, {
      host: this.#o.host,
      maxAttempts: this.#o.config.tasks.maxAttempts,
    }).commit();
    if (r.ok) {
      this.#o.log.info("guest powered off: stopping", { vm: vm.value.id });
    }
  }

  /**
   * One monitor pass: VMs this incarnation owns whose process is gone are
   * crashes (restart policy); processes of VMs it does not own go (#reap).
   * `busy`: VMs a task of this worker is working on, left alone.
   */
  async pass(busy: Set<string>): Promise<void> {
    const { driver, lease, host } = this.#o;
    // In this order: see #reap.
    const local = await driver.listLocal();
    for (const vm of this.#o.vms.items()) {
      const s = vm.value.status;
      if (!ownedBy(vm.value, host, lease) || !s.handle) continue;
      if (s.phase !== "running" || busy.has(vm.value.id)) continue;
      const seen = await driver.inspect(s.handle);
      // Past the lease deadline the fencer may have killed it: no crash.
      if (seen.state === "gone" && this.#o.alive()) {
        await this.#crashed(vm, seen.detail ?? "process exited");
      } else if (seen.state === "shutdown" && this.#o.alive()) {
        await this.#poweredOff(vm);
      }
    }
    await this.#reap(local, busy);
  }
}
