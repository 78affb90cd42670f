/**
 * What a task handler gets and returns. Handlers are reconcilers: they read
 * the current documents, drive the world towards the desired state, and
 * return the etcd writes that record the outcome. The worker applies those
 * writes in the same transaction that completes the task, guarded by the
 * claim, so a handler that ran twice records its outcome once.
 *
 * @example
 * ```ts
 * const handler: TaskHandler = async (ctx) => {
 *   await ctx.progress("doing it");
 *   return { result: { done: true }, txn: ctx.guard().put("x", 1) };
 * };
 * ```
 */
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/log.ts";
import type { Task } from "../core/schemas.ts";
import type { Store, Txn } from "../core/store.ts";
import type { ImageStore } from "./image_store.ts";
import type { WorkerId } from "./queue.ts";

/** JSON kept in the VM's status so a restarted worker can re-attach. */
export type DriverHandle = Record<string, unknown>;

/**
 * Boot source of an image, resolved on the host that runs the VM: a kernel,
 * or a disk with the format qemu must open it as (never probed): a qcow2
 * file, or a raw disk (an RBD disk's `rbd:<pool>/<image>:...` name).
 */
export type Boot = { kernel: string; initrd?: string; append?: string } | {
  disk: string;
  format: "qcow2" | "raw";
};

/**
 * A VM NIC as the VM driver sees it: the host-side port device (a tap the
 * network driver made, opened by name), the MAC, and a hot-plug slot
 * (0..7: qemu puts slot N on its own PCIe root port `hpN`; device and
 * netdev id `nicN`).
 */
export interface DriverNic {
  slot: number;
  tap: string;
  mac: string;
  /** The MTU the guest is told (its network's, e.g. VXLAN's 1430). */
  mtu?: number;
}

export interface DriverSpec {
  id: string;
  name: string;
  cpus: number;
  memoryMiB: number;
  boot: Boot;
  /** NICs present from boot (cold-plugged), each on its slot's root port. */
  nics?: DriverNic[];
}

/** How a VM is stopped or rebooted. */
export interface StopOptions {
  signal?: AbortSignal;
  /** The hard stop (or reset) at once, without asking the guest. */
  force?: boolean;
  /** How long the guest gets before the hard stop; default the driver's (60 s). */
  timeoutMs?: number;
}

/**
 * How a stop went: "shutdown" (the guest shut down when asked), "forced"
 * (the hard stop), "gone" (no process was left to stop); `ms` it took.
 */
export interface StopResult {
  how: "shutdown" | "forced" | "gone";
  ms: number;
}

/** How a reboot went: "reboot" (by the guest) or "forced" (a hard reset). */
export interface RebootResult {
  how: "reboot" | "forced";
  ms: number;
}

/** The narrow VM driver life cycle (DESIGN.md: drivers). */
export interface VmDriver {
  readonly name: string;
  start(
    spec: DriverSpec,
    opts?: { signal?: AbortSignal },
  ): Promise<DriverHandle>;
  recover(handle: DriverHandle): Promise<DriverHandle | null>;
  inspect(handle: DriverHandle): Promise<{ state: string; detail?: string }>;
  /**
   * Stops the VM: the guest's own shutdown (ACPI power button, or what the
   * driver has for it), given `timeoutMs`, then the hard stop; `force`:
   * the hard stop at once. Idempotent (a VM already gone: "gone").
   */
  stop(handle: DriverHandle, opts?: StopOptions): Promise<StopResult>;
  /**
   * Reboots the running VM in place (same process): the guest's own
   * reboot, given `timeoutMs`, then a hard reset; `force`: the reset at once.
   */
  reboot(handle: DriverHandle, opts?: StopOptions): Promise<RebootResult>;
  destroy(id: string): Promise<void>;
  listLocal(): Promise<string[]>;
  /**
   * SIGKILLs VM processes of this host at once: every one (self-fencing),
   * or those of `ids` (VMs this host no longer owns). Returns the killed ids.
   */
  fence(ids?: string[]): Promise<string[]>;
  /** Slots of the NICs the running VM has now (from the hypervisor). */
  listNics(handle: DriverHandle): Promise<number[]>;
  /** Hot-plugs a NIC into the running VM; a NIC already in its slot is fine. */
  plugNic(
    handle: DriverHandle,
    nic: DriverNic,
    opts?: { signal?: AbortSignal },
  ): Promise<void>;
  /**
   * Hot-unplugs the NIC of `slot` and waits until the guest released it
   * (or throws after a timeout, naming the slot); an empty slot is fine.
   */
  unplugNic(
    handle: DriverHandle,
    slot: number,
    opts?: { signal?: AbortSignal },
  ): Promise<void>;
}

/** This host's networking, as task handlers use it (workers/net.ts). */
export interface HostNetwork {
  /**
   * Converges this host's bridges, VXLANs, ports, firewall rules and router
   * advertisements to what etcd says now (VMs on this host and their NICs).
   * A port that cannot be set up is left out, not a failure for the others;
   * it throws (PermanentError) only when it is one of VM `vm`'s.
   */
  sync(opts?: { signal?: AbortSignal; vm?: string }): Promise<void>;
  /** The host-side port (tap) device of NIC `nic` of VM `vm`. */
  port(vm: string, nic: { slot: number; mac: string }): string;
  /** The MTU of a port the last sync made (its network's), if it exists. */
  mtu(port: string): Promise<number | undefined>;
}

export interface TaskContext {
  store: Store;
  config: Config;
  task: Task;
  worker: WorkerId;
  /** The host this worker runs on. */
  host: string;
  driver: VmDriver;
  images: (name: string) => Promise<Boot>;
  /** Absent where the worker runs without host networking (benchmarks). */
  net?: HostNetwork;
  /** The image store of `images.store`; absent when this build has none. */
  imageStore?: ImageStore;
  signal: AbortSignal;
  log: Logger;
  /** A transaction that holds only while this worker holds the claim. */
  guard(): Txn;
  /** Sets the task's progress line. */
  progress(message: string): Promise<void>;
}

export interface TaskOutcome {
  result?: unknown;
  /** Writes applied atomically with completion; a lost compare reruns the handler. */
  txn?: Txn;
  /**
   * After `txn` lost a compare: the same writes rebuilt from fresh reads,
   * when what changed is only a document many tasks contend on (e.g. the
   * owner's usage); null: run the handler again (tasks/outcome.ts).
   */
  again?: () => Promise<Txn | null>;
}

export type TaskHandler = (ctx: TaskContext) => Promise<TaskOutcome>;

/** A failure that retrying cannot fix; the task fails at once. */
export class PermanentError extends Error {
  override name = "PermanentError";
}
