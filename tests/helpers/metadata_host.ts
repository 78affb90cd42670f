/**
 * A host's networking and metadata service as the worker runs them
 * (workers/worker.ts: `HostNet` with the `MetadataService` it tells after
 * each sync), in a child process started inside the host's namespace so
 * the service's sockets are the host's: {@linkcode startMetadataHost}.
 * The child syncs once, prints `synced`, then follows etcd (HostNet's
 * VM cache, repair timer and membership watch) until it gets SIGTERM; it leaves the
 * network as it is (the fixture's teardown removes it).
 *
 * Run as a script: `deno run -A metadata_host.ts` with `ETCD`, `PREFIX`,
 * `HOST`, `STATE` and optionally `REQUIRE_TOKEN` in the environment.
 */
import { logger } from "../../core/log.ts";
import { Store } from "../../core/store.ts";
import { NetDriver } from "../../drivers/net/driver.ts";
import { currentNetns } from "../../drivers/net/exec.ts";
import { MetadataService } from "../../workers/metadata/service.ts";
import { HostNet } from "../../workers/net.ts";
import { HostVms } from "../../workers/host_vms.ts";

/** The running child; `stop()` ends it (SIGTERM, then SIGKILL). */
export interface MetadataHost {
  child: Deno.ChildProcess;
  /** Asks for a sync now and waits for it (`sync` on stdin). */
  sync(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the child in namespace `ns`; resolves after its first sync. */
export async function startMetadataHost(o: {
  ns: string;
  etcd: string;
  prefix: string;
  host: string;
  stateDir: string;
  requireToken?: boolean;
}): Promise<MetadataHost> {
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      o.ns,
      Deno.execPath(),
      "run",
      "-A",
      new URL(import.meta.url).pathname,
    ],
    env: {
      ETCD: o.etcd,
      PREFIX: o.prefix,
      HOST: o.host,
      STATE: o.stateDir,
      REQUIRE_TOKEN: o.requireToken ? "1" : "",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stdin = child.stdin.getWriter();
  const next = async () => {
    const { value, done } = await lines.read();
    if (done || !/synced/.test(value)) {
      throw new Error(`metadata host in ${o.ns} did not sync: ${value}`);
    }
  };
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* exited */ }
    const t = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }, 5000);
    await stdin.close().catch(() => {});
    await lines.cancel().catch(() => {});
    await child.status;
    clearTimeout(t);
  };
  try {
    await next();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    child,
    async sync() {
      await stdin.write(new TextEncoder().encode("sync\n"));
      await next();
    },
    stop,
  };
}

if (import.meta.main) {
  const env = (n: string) => Deno.env.get(n) ?? "";
  const log = logger({ component: "metadata-host", host: env("HOST") });
  const store = Store.connect({
    endpoints: [env("ETCD")],
    prefix: env("PREFIX"),
    timeoutMs: 5000,
  });
  const metadata = await MetadataService.start({
    store,
    log,
    requireToken: env("REQUIRE_TOKEN") === "1",
  });
  const driver = new NetDriver({
    stateDir: env("STATE"),
    underlay: null,
    log,
    netns: await currentNetns(),
  });
  const stop = new AbortController();
  const vms = await HostVms.start(
    { store, host: env("HOST"), log },
    stop.signal,
  );
  const net = new HostNet({
    store,
    host: env("HOST"),
    driver,
    underlay: null,
    lease: () => undefined,
    log,
    vms,
    metadata,
  });
  Deno.addSignalListener("SIGTERM", () => stop.abort());
  await net.sync();
  console.log("synced");
  const running = net.run(stop.signal);
  (async () => {
    const input = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
    for await (const chunk of input) {
      for (const _ of chunk.split("\n").filter(Boolean)) {
        await net.sync();
        console.log("synced");
      }
    }
  })().catch(() => {});
  await running;
  await vms.done;
  await metadata.close();
  store.close();
  Deno.exit(0);
}
