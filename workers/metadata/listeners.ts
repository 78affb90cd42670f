/**
 * The metadata service's sockets: `want(specs)` opens each wanted listener
 * that is not open and closes each open one that is no longer wanted. A
 * listener that cannot bind (its address is not on the host yet) is
 * logged and tried again by the next `want()`. Each request goes to the
 * handler with the listener it arrived on and the connection's source
 * address (`Deno.serve`'s `remoteAddr`), which is all the caller's
 * identity is made of.
 *
 * A link-local listener is bound to its bridge by the address's scope
 * (`fe80::a9fe:a9fe%ucb5`), which the kernel turns into the bridge's
 * ifindex: a spec's id carries that ifindex, so a bridge made again gets
 * a new socket.
 *
 * @example
 * ```ts
 * const ls = new Listeners({ handler: (req, l, remote) => app.fetch(req, { listener: l, remote }), log });
 * await ls.want([{ id: "v6", hostname: "fd00:ec2::254", port: 80, listener: { kind: "ipv6" } }]);
 * await ls.close();
 * ```
 */
import type { Logger } from "../../core/log.ts";
import { sleep } from "../../core/watch.ts";
import type { ListenerKind } from "./identity.ts";

/** One wanted listener. */
export interface ListenSpec {
  /** Identity of the socket: a spec with another id is another socket. */
  id: string;
  hostname: string;
  /** 0: any free port (tests). */
  port: number;
  listener: ListenerKind;
}

/** Options of {@linkcode Listeners}. */
export interface ListenersOptions {
  handler: (
    req: Request,
    listener: ListenerKind,
    remote: string,
  ) => Response | Promise<Response>;
  log: Logger;
  /** How long a closing listener waits for its requests to end. */
  closeWaitMs?: number;
}

interface Open {
  spec: ListenSpec;
  server: Deno.HttpServer<Deno.NetAddr>;
  stop: AbortController;
}

/** See the module comment. */
export class Listeners {
  readonly #o: ListenersOptions;
  readonly #open = new Map<string, Open>();
  /** Ids whose bind failed, to log a failure once until it changes. */
  readonly #failed = new Map<string, string>();

  constructor(opts: ListenersOptions) {
    this.#o = opts;
  }

  /** The open listeners and the address each is bound to. */
  addresses(): { spec: ListenSpec; port: number }[] {
    return [...this.#open.values()].map((o) => ({
      spec: o.spec,
      port: o.server.addr.port,
    }));
  }

  /** Opens and closes listeners so that exactly `specs` are open (or tried). */
  async want(specs: ListenSpec[]): Promise<void> {
    const ids = new Set(specs.map((s) => s.id));
    const closing = [...this.#open.values()].filter((o) => !ids.has(o.spec.id));
    for (const id of this.#failed.keys()) {
      if (!ids.has(id)) this.#failed.delete(id);
    }
    await Promise.all(closing.map((o) => this.#close(o)));
    for (const s of specs) if (!this.#open.has(s.id)) this.#listen(s);
  }

  /** Closes every listener. */
  async close(): Promise<void> {
    await this.want([]);
  }

  #listen(spec: ListenSpec): void {
    const { log, handler } = this.#o;
    const stop = new AbortController();
    try {
      const server = Deno.serve({
        hostname: spec.hostname,
        port: spec.port,
        signal: stop.signal,
        onListen: () => {},
        onError: (err) => {
          log.error("metadata request failed", { error: String(err) });
          return new Response("internal error\n", { status: 500 });
        },
      }, (req, info) => handler(req, spec.listener, info.remoteAddr.hostname));
      this.#open.set(spec.id, { spec, server, stop });
      this.#failed.delete(spec.id);
      log.info("metadata listener open", {
        address: spec.hostname,
        port: server.addr.port,
      });
    } catch (err) {
      const why = String(err);
      if (this.#failed.get(spec.id) !== why) {
        log.warn("metadata listener cannot bind yet; retried at next sync", {
          address: spec.hostname,
          port: spec.port,
          error: why,
        });
      }
      this.#failed.set(spec.id, why);
    }
  }

  async #close(o: Open): Promise<void> {
    this.#open.delete(o.spec.id);
    o.stop.abort();
    // Keep-alive connections may hold shutdown open: do not wait for them.
    const waited = new AbortController();
    await Promise.race([
      o.server.finished,
      sleep(this.#o.closeWaitMs ?? 1000, waited.signal),
    ]);
    waited.abort();
    this.#o.log.info("metadata listener closed", { address: o.spec.hostname });
  }
}
