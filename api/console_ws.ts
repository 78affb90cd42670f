/**
 * `GET /web/console/{id}/ws?ticket=...`: the console's websocket. The
 * ticket is checked against the request (its VM; for a ticket made with
 * a web session, the same session's cookie) and consumed
 * (resources/console/tickets.ts), the grant it became is handed to the
 * console relay of the VM's host (workers/console_relay.ts, reached over
 * the underlay), and once the relay answers the request is upgraded and
 * binary frames are piped both ways to the VM's VNC server. A refused
 * request is a 403 that changed nothing in etcd. An open console closes
 * when the session or token it was opened with ends (revoked or expired,
 * checked every `console.sessionCheckSeconds`), after
 * `console.maxSeconds`, or when the relay closes (the VM left its host).
 *
 * @example
 * ```ts
 * app.get("/web/console/:id/ws", consoleSocket({ store, config, sessions, isRevoked, log }));
 * ```
 */
import type { Context, Handler } from "hono";
import { getCookie } from "hono/cookie";
import type { ConsoleConfig } from "../core/config_console.ts";
import type { ConsoleRelay } from "../core/console_schemas.ts";
import type { Logger } from "../core/log.ts";
import { ID_RE } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { redeemTicket } from "../resources/console/mod.ts";
import { errorJson } from "./errors.ts";
import { type BearerTokens, SESSION_COOKIE } from "./tokens.ts";

/** What the websocket handler needs. */
export interface ConsoleSocketOptions {
  store: Store;
  console: ConsoleConfig;
  /** Web session tokens; absent: no ticket of a session is accepted. */
  sessions?: BearerTokens;
  /** Whether a token id was revoked (api/revocations.ts). */
  isRevoked: (tokenId: string) => Promise<boolean>;
  log: Logger;
}

/** The relay's greeting (workers/console_relay.ts `RELAY_HELLO`). */
const RELAY_HELLO = "UCLOUD-CONSOLE";
const RELAY_TIMEOUT_MS = 10_000;

/** The websocket handler (see the module comment). */
export function consoleSocket(o: ConsoleSocketOptions): Handler {
  return async (c) => {
    const id = c.req.param("id") ?? "";
    if (!ID_RE.test(id)) return errorJson(c, 400, "Invalid VM id");
    const bad = badUpgrade(c);
    if (bad) return errorJson(c, 400, `Expected a websocket upgrade: ${bad}`);
    if (!sameOrigin(c)) {
      o.log.warn("console refused", { vm: id, reason: "cross-origin" });
      return errorJson(c, 403, "Cannot open the console: cross-origin request");
    }
    const session = await sessionOf(c, o.sessions);
    const r = await redeemTicket(o, {
      ticket: c.req.query("ticket") ?? "",
      vm: id,
      session,
      isRevoked: o.isRevoked,
    });
    if (!r.ok) {
      o.log.warn("console refused", { vm: id, reason: r.reason });
      return errorJson(
        c,
        403,
        "Cannot open the console: the ticket is missing, used, expired or not yours; ask for a new one",
      );
    }
    const t = r.ticket;
    const log = o.log.child({ vm: id, user: t.user, host: r.host });
    let relay: Deno.TcpConn, first: Uint8Array;
    try {
      ({ conn: relay, rest: first } = await openRelay(r.relay, r.grantId));
    } catch (err) {
      log.error("console relay unreachable", { error: String(err) });
      return errorJson(c, 502, "Cannot reach the VM's console on its host");
    }
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(c.req.raw);
    } catch (err) {
      relay.close();
      log.warn("console upgrade failed", { error: String(err) });
      return errorJson(c, 400, "Cannot upgrade to a websocket");
    }
    const { socket, response } = upgraded;
    socket.binaryType = "arraybuffer";
    // A deadline on the monotonic clock (DESIGN.md rule 8): the token's
    // expiry is turned into a time left once, here.
    const until = performance.now() + Math.min(
      o.console.maxSeconds * 1000,
      t.tokenExpiresAt ? Date.parse(t.tokenExpiresAt) - Date.now() : Infinity,
    );
    pipe(socket, relay, first, { ...o, log, until, tokenId: t.tokenId });
    log.info("console open", { via: t.via });
    return response;
  };
}

/** A websocket key: 16 bytes in base64 (RFC 6455 section 4.1). */
const WS_KEY_RE = /^[A-Za-z0-9+/]{22}==$/;

/**
 * Why the request cannot be upgraded to a websocket, checked before the
 * ticket is spent; undefined when it can.
 */
function badUpgrade(c: Context): string | undefined {
  if ((c.req.header("upgrade") ?? "").toLowerCase() !== "websocket") {
    return "no Upgrade: websocket";
  }
  if (!WS_KEY_RE.test(c.req.header("sec-websocket-key") ?? "")) {
    return "no valid Sec-WebSocket-Key";
  }
  if (c.req.header("sec-websocket-version") !== "13") {
    return "Sec-WebSocket-Version must be 13";
  }
  return undefined;
}

/** A websocket's Origin, when sent, must be the page's own. */
function sameOrigin(c: Context): boolean {
  const origin = c.req.header("origin");
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === c.req.header("host");
  } catch {
    return false;
  }
}

/** The valid web session of the request, if any. */
async function sessionOf(
  c: Context,
  sessions?: BearerTokens,
): Promise<{ tokenId: string; user: string } | undefined> {
  const cookie = getCookie(c, SESSION_COOKIE);
  if (!sessions || cookie === undefined) return undefined;
  const r = await sessions.verify(cookie);
  return r.ok ? { tokenId: r.claims.jti, user: r.principal.name } : undefined;
}

/**
 * Connects to a relay and presents the grant; throws unless it says OK.
 * `rest`: the VNC bytes that came in the same read as the answer.
 */
async function openRelay(
  relay: ConsoleRelay,
  grantId: string,
): Promise<{ conn: Deno.TcpConn; rest: Uint8Array }> {
  const conn = await Deno.connect({
    hostname: relay.address,
    port: relay.port,
  });
  const timer = setTimeout(() => conn.close(), RELAY_TIMEOUT_MS);
  try {
    await conn.write(new TextEncoder().encode(`${RELAY_HELLO} ${grantId}\n`));
    // The answer is one short line; VNC data follows it at once.
    const buf = new Uint8Array(4096);
    let len = 0, nl = -1;
    while (nl < 0) {
      const n = await conn.read(buf.subarray(len));
      if (n === null || len + n >= buf.length) {
        throw new Error("the relay closed the connection");
      }
      len += n;
      nl = buf.subarray(0, len).indexOf(10);
    }
    const line = new TextDecoder().decode(buf.subarray(0, nl)).trim();
    if (line !== "OK") throw new Error(`the relay refused: ${line}`);
    return { conn, rest: buf.slice(nl + 1, len) };
  } catch (err) {
    try {
      conn.close();
    } catch { /* closed by the timer */ }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Pipes a websocket and a relay connection until either ends. */
/** The browser's bytes waiting for the relay; past it the console closes. */
const MAX_QUEUED_BYTES = 1 << 20;
/** Bytes unsent to the browser at which reading from the VM pauses. */
const MAX_BUFFERED_BYTES = 1 << 20;
/** How long the browser may leave that much unread before it is closed. */
const STALL_MS = 10_000;

function pipe(
  socket: WebSocket,
  relay: Deno.TcpConn,
  first: Uint8Array,
  o: ConsoleSocketOptions & { until: number; tokenId?: string },
): void {
  let closed = false;
  const close = (code: number, reason: string) => {
    if (closed) return;
    closed = true;
    clearInterval(check);
    try {
      relay.close();
    } catch { /* closed */ }
    if (socket.readyState <= WebSocket.OPEN) socket.close(code, reason);
    o.log.info("console closed", { reason });
  };
  const check = setInterval(async () => {
    if (performance.now() >= o.until) return close(4001, "session ended");
    try {
      if (o.tokenId !== undefined && await o.isRevoked(o.tokenId)) {
        close(4001, "session ended");
      }
    } catch (err) {
      o.log.warn("console session check failed", { error: String(err) });
    }
  }, o.console.sessionCheckSeconds * 1000);
  // Bytes the browser sends wait for the relay, at most MAX_QUEUED_BYTES:
  // a browser sending faster than the VM reads is closed, not buffered.
  const writes: Uint8Array[] = [];
  let queued = 0;
  let writing = false;
  const drain = async () => {
    if (writing) return;
    writing = true;
    try {
      while (writes.length) {
        const data = writes.shift()!;
        let off = 0;
        while (off < data.length) off += await relay.write(data.subarray(off));
        queued -= data.length;
      }
    } catch {
      close(1011, "console connection lost");
    } finally {
      writing = false;
    }
  };
  socket.onmessage = (ev) => {
    if (!(ev.data instanceof ArrayBuffer)) {
      return close(1003, "binary frames only");
    }
    const data = new Uint8Array(ev.data);
    if (queued + data.length > MAX_QUEUED_BYTES) {
      return close(1008, "console input faster than the VM takes it");
    }
    queued += data.length;
    writes.push(data);
    drain();
  };
  socket.onclose = () => close(1000, "closed by the browser");
  socket.onerror = () => close(1011, "websocket error");
  socket.onopen = async () => {
    if (first.length) socket.send(first);
    try {
      for await (const chunk of relay.readable) {
        // The VM's screen waits while the browser has much unread: reading
        // pauses (qemu's VNC then sends less), and a browser that reads
        // nothing for STALL_MS is closed.
        const since = performance.now();
        while (socket.bufferedAmount > MAX_BUFFERED_BYTES && !closed) {
          if (performance.now() - since > STALL_MS) {
            close(1008, "the browser does not read the console");
          } else await new Promise((r) => setTimeout(r, 20));
        }
        if (closed || socket.readyState !== WebSocket.OPEN) break;
        socket.send(chunk);
      }
    } catch { /* relay closed */ }
    close(1000, "the VM's console ended");
  };
}
