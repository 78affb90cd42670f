/**
 * The console relay of a host: a TCP listener (on the host's underlay
 * address, `console.relayAddress`/`console.relayPort`) through which an API
 * replica reaches a VM's VNC socket. A connection is let in only with a
 * one-time grant the API wrote for this host (resources/console/grants.ts):
 * the client sends `UCLOUD-CONSOLE <grant id>\n`, the relay consumes the
 * grant, checks that the VM runs here (the host's VM cache, host_vms.ts)
 * and answers `OK\n`, then pipes the VM's VNC socket both ways; anything
 * else is answered `NO <reason>\n` and closed. At most `MAX_HANDSHAKES`
 * connections may be in their handshake at once (more are answered `NO
 * busy`), and an address whose hellos failed (malformed, timed out, or an
 * unknown grant: each of those costs a read or an etcd get) `limit` times
 * in a minute is refused without a read until the minute has passed. A
 * handshake that ends after the relay stopped opens nothing. A console closes when its VM
 * leaves this host or stops running (its handle changes), and when the
 * worker's session ends. Where the relay listens is announced under
 * `consolerelay/<host>` on the worker's lease.
 *
 * @example
 * ```ts
 * const relay = await ConsoleRelayServer.start({ store, host, lease, vms, config, log }, signal);
 * relay.port; // 8753
 * await relay.done;
 * ```
 */
import type { ConsoleConfig } from "../core/config_console.ts";
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import type { Store } from "../core/store.ts";
import { addressBucket } from "../core/client_address.ts";
import { SlidingWindow } from "../core/rate_limit.ts";
import { consumeGrant } from "../resources/console/grants.ts";
import type { HostVms } from "./host_vms.ts";

/** The first line a client sends, before the grant id. */
export const RELAY_HELLO = "UCLOUD-CONSOLE";
const LINE_MAX = 128;
const HELLO_TIMEOUT_MS = 5000;
/** Connections in their handshake at once, at most. */
export const MAX_HANDSHAKES = 32;
/** Failed hellos per address (bucket) and minute before it is refused. */
export const HELLO_FAILURES = { limit: 10, windowMs: 60_000 };

/** Options of {@linkcode ConsoleRelayServer.start}. */
export interface ConsoleRelayOptions {
  store: Store;
  host: string;
  /** The worker's lease: the announcement goes with it. */
  lease: string;
  vms: HostVms;
  config: Pick<ConsoleConfig, "relayAddress" | "relayPort">;
  /** The host's underlay address: the default listen address. */
  underlay?: string;
  log: Logger;
}

/** The VNC socket of a VM's handle, if its driver gives one. */
function vncOf(handle: unknown): string | undefined {
  const vnc = (handle as { vnc?: unknown } | undefined)?.vnc;
  return typeof vnc === "string" && vnc.startsWith("/") ? vnc : undefined;
}

/** See the module comment. */
export class ConsoleRelayServer {
  readonly #o: ConsoleRelayOptions;
  readonly #listener: Deno.TcpListener;
  /** Open consoles by VM id, each closed by its function. */
  readonly #open = new Map<string, Set<() => void>>();
  /** Connections in their handshake now. */
  #handshakes = 0;
  /** Failed hellos per address bucket (on the monotonic clock). */
  readonly #failures = new SlidingWindow({
    ...HELLO_FAILURES,
    maxKeys: 10_000,
    now: () => performance.now(),
  });
  /** Set by the stop: a handshake ending later opens nothing. */
  #closed = false;
  /** Resolves once the listener and every console are closed. */
  done: Promise<void> = Promise.resolve();

  private constructor(o: ConsoleRelayOptions, listener: Deno.TcpListener) {
    this.#o = o;
    this.#listener = listener;
  }

  /** The address it listens on. */
  get address(): string {
    return this.#listener.addr.hostname;
  }

  /** Connections in their handshake now. */
  get handshakes(): number {
    return this.#handshakes;
  }

  /** The port it listens on. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /**
   * Listens, announces itself, and serves until `signal` aborts. Throws
   * when it cannot listen (the caller runs on without consoles).
   */
  static async start(
    o: ConsoleRelayOptions,
    signal: AbortSignal,
  ): Promise<ConsoleRelayServer> {
    const hostname = o.config.relayAddress ?? o.underlay ?? "127.0.0.1";
    const listener = Deno.listen({ hostname, port: o.config.relayPort });
    const relay = new ConsoleRelayServer(o, listener);
    try {
      await o.store.txn().put(keys.consoleRelay(o.host), {
        address: hostname,
        port: relay.port,
      }, { lease: o.lease }).commit();
    } catch (err) {
      listener.close();
      throw err;
    }
    o.log.info("console relay listening", {
      address: hostname,
      port: relay.port,
    });
    const unsubscribe = o.vms.onChange((id, before, after) => {
      const was = before?.value.status.handle;
      const now = after?.value.status.handle;
      if (
        !after || after.value.status.phase !== "running" ||
        vncOf(now) !== vncOf(was) ||
        (now as { pid?: number } | undefined)?.pid !==
          (was as { pid?: number } | undefined)?.pid
      ) {
        relay.#closeVm(id, "the VM left this host or stopped");
      }
    });
    const stop = () => {
      relay.#closed = true;
      listener.close();
      for (const id of [...relay.#open.keys()]) {
        relay.#closeVm(id, "the worker stops");
      }
    };
    signal.addEventListener("abort", stop, { once: true });
    relay.done = relay.#serve().finally(async () => {
      unsubscribe();
      signal.removeEventListener("abort", stop);
      // Gone with the lease anyway; a hand-over keeps the lease alive.
      await o.store.txn().ifLease(keys.consoleRelay(o.host), o.lease)
        .delete(keys.consoleRelay(o.host)).commit().catch(() => {});
    });
    return relay;
  }

  async #serve(): Promise<void> {
    const conns = new Set<Promise<void>>();
    try {
      for await (const conn of this.#listener) {
        const p = this.#handle(conn).catch((err) =>
          this.#o.log.warn("console connection failed", {
            error: String(err),
          })
        ).finally(() => conns.delete(p));
        conns.add(p);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.BadResource)) throw err;
    }
    await Promise.all(conns);
  }

  /** Closes every console of VM `id`. */
  #closeVm(id: string, why: string): void {
    const open = this.#open.get(id);
    if (!open) return;
    this.#o.log.info("closing console", { vm: id, why, count: open.size });
    for (const close of open) close();
    this.#open.delete(id);
  }

  async #handle(conn: Deno.TcpConn): Promise<void> {
    const { store, host, vms, log } = this.#o;
    const address = addressBucket(conn.remoteAddr.hostname);
    const refuse = async (reason: string, failed = false) => {
      if (failed) this.#failures.fail(address);
      log.warn("console connection refused", { reason, address });
      await write(conn, `NO ${reason}\n`).catch(() => {});
      try {
        conn.close();
      } catch { /* closed by the hello timeout */ }
    };
    if (this.#failures.retryAfterMs(address) > 0) {
      return await refuse("too many failed hellos");
    }
    if (this.#handshakes >= MAX_HANDSHAKES) return await refuse("busy");
    this.#handshakes++;
    let grant;
    try {
      const line = await readLine(conn, HELLO_TIMEOUT_MS);
      const m = line?.match(new RegExp(`^${RELAY_HELLO} (\\S+)$`));
      if (!m) return await refuse("bad hello", true);
      if (this.#closed) return await refuse("the relay stops");
      grant = await consumeGrant(store, host, m[1]);
      if (!grant) return await refuse("unknown or used grant", true);
    } finally {
      this.#handshakes--;
    }
    const vnc = vncOf(vms.get(grant.vm)?.value.status.handle);
    const phase = vms.get(grant.vm)?.value.status.phase;
    if (!vnc || phase !== "running") {
      return await refuse("the VM has no console on this host");
    }
    let vncConn: Deno.UnixConn;
    try {
      vncConn = await Deno.connect({ transport: "unix", path: vnc });
    } catch (err) {
      return await refuse(`cannot reach the VM's VNC: ${(err as Error).name}`);
    }
    if (this.#closed) {
      vncConn.close();
      return await refuse("the relay stops");
    }
    await write(conn, "OK\n");
    log.info("console opened", { vm: grant.vm, user: grant.user });
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      for (const c of [conn, vncConn]) {
        try {
          c.close();
        } catch { /* closed already */ }
      }
    };
    const open = this.#open.get(grant.vm) ?? new Set();
    open.add(close);
    this.#open.set(grant.vm, open);
    const pipe = (from: Deno.Conn, to: Deno.Conn) =>
      from.readable.pipeTo(to.writable, { preventClose: true }).catch(() => {})
        .finally(close);
    await Promise.all([pipe(conn, vncConn), pipe(vncConn, conn)]);
    open.delete(close);
    if (!open.size && this.#open.get(grant.vm) === open) {
      this.#open.delete(grant.vm);
    }
    log.info("console closed", { vm: grant.vm, user: grant.user });
  }
}

async function write(conn: Deno.Conn, text: string): Promise<void> {
  const data = new TextEncoder().encode(text);
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/**
 * Reads one line (without its `\n`) of at most {@linkcode LINE_MAX} bytes;
 * null on a timeout, a longer line, bytes after the line, or EOF.
 */
async function readLine(conn: Deno.Conn, timeoutMs: number): Promise<
  string | null
> {
  const buf = new Uint8Array(LINE_MAX + 1);
  let len = 0;
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    while (len < buf.length) {
      const n = await conn.read(buf.subarray(len));
      if (n === null) return null;
      len += n;
      const nl = buf.subarray(0, len).indexOf(10);
      if (nl === len - 1) {
        return new TextDecoder().decode(buf.subarray(0, nl));
      }
      if (nl >= 0) return null;
    }
    return null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}
