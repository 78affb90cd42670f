/**
 * The worker process: one per host. Runs worker incarnations until SIGINT or
 * SIGTERM; after a lost lease session it rejoins with a new incarnation.
 * VMs keep running when the worker stops; the next worker re-adopts them.
 *
 * Usage: `deno task worker` (configuration: README, core/config.ts).
 */
import { loadConfig } from "../core/config.ts";
import { logger } from "../core/log.ts";
import { Store } from "../core/store.ts";
import { sleep } from "../core/watch.ts";
import { QemuDriver } from "../drivers/qemu/driver.ts";
import { Worker } from "./worker.ts";

if (import.meta.main) {
  const config = await loadConfig();
  const log = logger({ component: "worker" });
  const store = Store.connect(config.etcd);
  const driver = new QemuDriver({
    stateDir: config.stateDir,
    accel: config.qemu.accel,
    qemuBinary: config.qemu.binary,
  });
  let stopping = false;
  let current: Worker | undefined;
  const stop = () => {
    stopping = true;
    current?.stop();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  while (!stopping) {
    current = new Worker({ store, config, driver, log });
    try {
      const why = await current.run();
      if (why === "stopped") break;
      log.warn("rejoining with a new incarnation");
    } catch (err) {
      log.error("worker failed; rejoining", { error: String(err) });
    }
    await sleep(500);
  }
  store.close();
  log.info("worker stopped");
  Deno.exit(0);
}
