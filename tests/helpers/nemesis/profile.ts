/**
 * What a nemesis run changes with the VM driver: the sim driver (a plain
 * process per VM) takes a busy workload of up to 18 VMs; the qemu driver
 * runs real qemu under TCG booting the tiny test guest (tests/helpers/
 * cluster.ts `ensureGuest()`), about 250 MiB and much of a core per VM while
 * it boots, so its workload is slower and keeps at most 6 VMs (2 clients
 * with 3 each), 1 CPU and 128 MiB each (the tiny guest needs 96 MiB).
 *
 * "Runs" means the VM's process is up on the host that owns it (qemu's
 * QMP answers within a few tenths of a second of exec), not that the guest
 * has booted. The sim driver keeps the deadline of TTL + 2 s after quiet;
 * qemu gets 1 s more for its own start under TCG (`deadlineExtraMs`).
 *
 * A stop is a guest shutdown (ACPI power button, then the hard stop after
 * `worker.stopTimeoutSeconds`): the tiny guest still booting under TCG
 * cannot react for 5-20 s, so with the default 60 s a stop of a booting VM
 * can outlast the settle time. The qemu profile gives guests 5 s, as a
 * hoster would for throwaway VMs; the graceful path itself is tested in
 * drivers/qemu/driver_test.ts and tests/cli_e2e_test.ts.
 *
 * @example
 * ```ts
 * const p = PROFILES.qemu;
 * new Workload(api, rng, { hosts, start, clients: p.clients,
 *   maxVmsPerClient: p.maxVmsPerClient, pauseMs: p.pauseMs });
 * ```
 */
import type { VmDriver } from "./procs.ts";

/** The per-driver knobs of a nemesis run. */
export interface DriverProfile {
  driver: VmDriver;
  /** Link the tiny test guest's images into every host's state dir. */
  guest: boolean;
  /** Capacity each worker reports: room for every VM of a run. */
  host: { cpus: number; memoryMiB: number };
  clients: number;
  maxVmsPerClient: number;
  /** A client's pause between two requests, ms [min, max]. */
  pauseMs: readonly [number, number];
  /** Added to TTL + 2 s: when VMs that should run must run after quiet. */
  deadlineExtraMs: number;
  /** How long the cluster may take to settle after quiet, ms. */
  settleMs: number;
  /** Environment of every worker (config overrides). */
  workerEnv: Record<string, string>;
}

export const PROFILES: Record<VmDriver, DriverProfile> = {
  sim: {
    driver: "sim",
    guest: false,
    host: { cpus: 64, memoryMiB: 16_384 },
    clients: 3,
    maxVmsPerClient: 6,
    pauseMs: [100, 600],
    deadlineExtraMs: 0,
    settleMs: 30_000,
    workerEnv: {},
  },
  qemu: {
    driver: "qemu",
    guest: true,
    host: { cpus: 16, memoryMiB: 4096 },
    clients: 2,
    maxVmsPerClient: 3,
    pauseMs: [800, 2500],
    // qemu's exec and QMP start under TCG on a busy 2-core machine: a 3 min
    // run saw a VM reach its state 3914 ms after quiet (deadline 4000).
    deadlineExtraMs: 1000,
    settleMs: 60_000,
    workerEnv: { UCLOUD_STOP_TIMEOUT_SECONDS: "5" },
  },
};
