/**
 * A real qemu VM behind a console relay for the console tests: the test
 * guest started by the qemu driver, its handle written into the VM's
 * status as running on `h1`, and h1's console relay
 * (workers/console_relay.ts) in this process on h1's VM cache
 * (workers/host_vms.ts) and a lease of its own.
 */
import { guestSpec, withDriver } from "../../drivers/qemu/_test_guest.ts";
import type { QemuHandle } from "../../drivers/qemu/handle.ts";
import { logger } from "../../core/log.ts";
import { ConsoleRelayServer } from "../../workers/console_relay.ts";
import { HostVms } from "../../workers/host_vms.ts";
import type { ConsoleEnv } from "./console_env.ts";
import { waitFor } from "./cluster.ts";

/** What `withConsoleVm` gives its body. */
export interface ConsoleVm {
  id: string;
  handle: QemuHandle;
  relay: ConsoleRelayServer;
  vms: HostVms;
}

/** Runs `body` with VM `id` (of `env`) running in qemu on h1 behind its relay. */
export async function withConsoleVm(
  env: ConsoleEnv,
  id: string,
  body: (vm: ConsoleVm) => Promise<void>,
): Promise<void> {
  await withDriver(async (driver) => {
    const handle = await driver.start(await guestSpec(id));
    await env.markRunning(id, "h1", handle);
    const stop = new AbortController();
    const log = logger({ component: "worker", host: "h1" });
    const vms = await HostVms.start(
      { store: env.store, host: "h1", log },
      stop.signal,
    );
    const lease = await env.store.grantLease(60);
    const relay = await ConsoleRelayServer.start({
      store: env.store,
      host: "h1",
      lease,
      vms,
      config: { relayPort: 0 },
      log,
    }, stop.signal);
    try {
      await waitFor("h1's VM cache to hold the VM", () => vms.get(id));
      await body({ id, handle, relay, vms });
    } finally {
      stop.abort();
      await relay.done;
      await vms.done;
      await env.store.revokeLease(lease);
      await driver.stop(handle, { force: true });
    }
  });
}
