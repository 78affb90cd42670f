/**
 * h1's real console relay (workers/console_relay.ts, on h1's real VM cache,
 * workers/host_vms.ts) in front of a unix socket standing in for a VM's
 * VNC server, for console tests that need no qemu: the socket answers the
 * RFB banner and counts the connections still open, so a test can see
 * whether a console leaked one.
 */
import { logger } from "../../core/log.ts";
import { ConsoleRelayServer } from "../../workers/console_relay.ts";
import { HostVms } from "../../workers/host_vms.ts";
import type { ConsoleEnv } from "./console_env.ts";
import { waitFor } from "./cluster.ts";

/** What `withRelay` gives its body. */
export interface RelayFixture {
  relay: ConsoleRelayServer;
  vms: HostVms;
  /** VNC connections the relay opened and that are still open. */
  openVnc: () => number;
  /** VNC connections the relay opened in all. */
  openedVnc: () => number;
  /** Stops the relay (as the worker's shutdown does). */
  stop: () => void;
}

/**
 * Runs `body` with VM `id` (of `env`) running on h1 behind h1's relay.
 * `readVnc: false`: the stand-in never reads what it is sent (a VM whose
 * VNC server is stuck), so the bytes back up to the API.
 */
export async function withRelay(
  env: ConsoleEnv,
  id: string,
  body: (f: RelayFixture) => Promise<void>,
  { readVnc = true }: { readVnc?: boolean } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-vnc-" });
  const path = `${dir}/vnc.sock`;
  const vnc = Deno.listen({ transport: "unix", path });
  let open = 0, opened = 0;
  let release = () => {};
  const released = new Promise<void>((r) => release = r);
  const served = (async () => {
    const conns: Promise<void>[] = [];
    for await (const c of vnc) {
      opened++, open++;
      conns.push((async () => {
        try {
          await c.write(new TextEncoder().encode("RFB 003.008\n"));
          if (readVnc) { for await (const _ of c.readable) { /* discard */ } }
          else {
            await released;
            c.close();
          }
        } catch { /* closed */ }
        open--;
      })());
    }
    await Promise.all(conns);
  })().catch(() => {});
  await env.markRunning(id, "h1", { driver: "qemu", pid: 1, vnc: path });
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
    await body({
      relay,
      vms,
      openVnc: () => open,
      openedVnc: () => opened,
      stop: () => stop.abort(),
    });
  } finally {
    stop.abort();
    release();
    await relay.done;
    await vms.done;
    vnc.close();
    await served;
    await env.store.revokeLease(lease);
    await Deno.remove(dir, { recursive: true });
  }
}
