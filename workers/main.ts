/**
 * The worker process: one per host. Runs worker incarnations until SIGINT or
 * SIGTERM; after a lost lease session it rejoins with a new incarnation.
 * VMs keep running when the worker stops; the next worker re-adopts them.
 * With `worker.shutdownDrain`, SIGTERM shuts the host down in order
 * instead (workers/shutdown.ts, as `ucloud host shutdown`): the worker
 * exits 0 once the host is drained; a second signal stops it at once. The
 * worker also exits 0 after an ordered shutdown asked through the API.
 * Also runs the rebalancer on `scheduler.rebalanceSchedule` with Deno.cron
 * (one round per schedule tick in the whole cluster: workers/maintenance.ts).
 *
 * Usage: `deno task worker` (configuration: README, core/config.ts); needs
 * `--unstable-cron`.
 */
import { loadConfig } from "../core/config.ts";
import { logger } from "../core/log.ts";
import { Store } from "../core/store.ts";
import { sleep } from "../core/watch.ts";
import { QemuDriver } from "../drivers/qemu/driver.ts";
import { ensureQemuUser } from "../drivers/qemu/qemu_user.ts";
import { SimDriver } from "../drivers/sim/driver.ts";
import type { Boot, VmDriver } from "../tasks/context.ts";
import { PlacementCache } from "../scheduler/mod.ts";
import { HostInUseError } from "./machine_id.ts";
import { scheduleMaintenance, scheduleRebalance } from "./maintenance.ts";
import { requestShutdown } from "./shutdown.ts";
import { Worker } from "./worker.ts";
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/log.ts";
import { detectUnderlay, NetDriver } from "../drivers/net/mod.ts";
import { currentNetns } from "../drivers/net/exec.ts";

/** The network driver of this host, its underlay and public bridges. */
async function hostNetwork(config: Config, log: Logger) {
  const detected = await detectUnderlay(config.network.underlayDevice);
  const address = config.network.underlayAddress;
  const underlay = detected && address ? { ...detected, address } : detected;
  if (!underlay) {
    log.warn(
      "no IPv6 underlay found: private networks stay on this host (set network.underlayDevice)",
    );
  }
  const publicBridges: string[] = [];
  for (const b of config.network.publicBridges) {
    try {
      await Deno.stat(`/sys/class/net/${b}/bridge`);
      publicBridges.push(b);
    } catch {
      log.warn("configured public bridge does not exist here", { bridge: b });
    }
  }
  // Taps are the qemu user's alone (drivers/qemu/qemu_user.ts).
  await ensureQemuUser(config.qemu.user);
  const driver = new NetDriver({
    stateDir: config.stateDir,
    underlay,
    vxlanPort: config.network.vxlanPort,
    log,
    tapUser: config.qemu.user,
    // A host that is a named namespace (tests) names its DHCP namespaces
    // after it.
    netns: await currentNetns(),
  });
  return { driver, underlay, publicBridges };
}

if (import.meta.main) {
  const config = await loadConfig();
  const log = logger({ component: "worker" });
  const store = Store.connect(config.etcd);
  // vm.create handlers find the cache by store.
  const placement = PlacementCache.start(store, { log });
  const sim = config.worker.driver === "sim";
  const driver: VmDriver = sim
    ? new SimDriver({ stateDir: config.stateDir })
    : new QemuDriver({
      stateDir: config.stateDir,
      accel: config.qemu.accel,
      qemuBinary: config.qemu.binary,
      user: config.qemu.user,
    });
  // The sim driver boots nothing: any image name resolves.
  const images = sim
    ? (): Promise<Boot> => Promise.resolve({ disk: "/dev/null", format: "raw" })
    : undefined;
  // Host networking (bridges, VXLAN, nftables, radvd) for VMs with NICs.
  // The sim driver's benchmark hosts run without it.
  const network = sim ? undefined : await hostNetwork(config, log);
  let stopping = false;
  let current: Worker | undefined;
  // An orderly stop hands the lease to the fencer (worker.handoverSeconds).
  const stopNow = () => {
    stopping = true;
    current?.stop({ handover: config.worker.handoverSeconds > 0 });
  };
  let draining = false;
  const stop = (signal: string) => {
    const host = config.worker.host;
    if (!config.worker.shutdownDrain || draining || !current?.lease) {
      return stopNow();
    }
    draining = true;
    log.info("shutting the host down in order: drain, then exit", { signal });
    requestShutdown(store, {
      host,
      by: `${signal} on ${host}`,
      maxAttempts: config.tasks.maxAttempts,
    }).catch((err) => {
      log.error("cannot ask for the shutdown; stopping now", {
        error: String(err),
      });
      stopNow();
    });
  };
  Deno.addSignalListener("SIGINT", () => stopNow());
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  // Only a registered incarnation takes part.
  const takesPart = () => !stopping && !!current?.lease;
  scheduleRebalance(store, config, { log, takesPart });
  scheduleMaintenance(store, config, { log, takesPart });
  let code = 0;
  while (!stopping) {
    current = new Worker({ store, config, driver, log, images, network });
    try {
      const why = await current.run();
      if (why === "shutdown") log.info("host drained and shut down in order");
      if (why !== "lost") break;
      log.warn("rejoining with a new incarnation");
    } catch (err) {
      // Another machine holds this host name: retrying changes nothing.
      if (err instanceof HostInUseError) {
        log.error(err.message);
        code = 1;
        break;
      }
      log.error("worker failed; rejoining", { error: String(err) });
    }
    await sleep(500);
  }
  await placement.close();
  store.close();
  log.info("worker stopped");
  Deno.exit(code);
}
