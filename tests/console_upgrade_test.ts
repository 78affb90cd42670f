/**
 * The console websocket against h1's real relay: a request that cannot be
 * upgraded (no `Sec-WebSocket-Key`, another `Sec-WebSocket-Version`, no
 * `Upgrade`) is a 400 that spends no ticket and opens nothing at the
 * relay; the same ticket then opens the console.
 */
import assert from "node:assert/strict";
import { dump } from "./helpers/cluster.ts";
import { noSanitize } from "./helpers/api.ts";
import { withConsoleEnv } from "./helpers/console_env.ts";
import { withRelay } from "./helpers/console_relay.ts";
import { openWs } from "./helpers/console_ws.ts";

/** The status of a raw GET with exactly `lines` as headers (besides Host). */
async function rawStatus(url: URL, lines: string[]): Promise<number> {
  const conn = await Deno.connect({
    hostname: url.hostname,
    port: Number(url.port),
  });
  try {
    const head = [
      `GET ${url.pathname}${url.search} HTTP/1.1`,
      `Host: ${url.host}`,
      ...lines,
      "",
      "",
    ].join("\r\n");
    await conn.write(new TextEncoder().encode(head));
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    const m = new TextDecoder().decode(buf.subarray(0, n ?? 0))
      .match(/^HTTP\/1\.1 (\d{3})/);
    if (!m) throw new Error("Not an HTTP answer");
    return Number(m[1]);
  } finally {
    conn.close();
  }
}

Deno.test({
  name:
    "the console websocket refuses a bad upgrade with 400 before it spends the ticket or reaches the relay",
  ...noSanitize,
  fn: () =>
    withConsoleEnv({}, async (env) => {
      const carol = await env.cookie("carol");
      const id = await env.createVm("a", { cookie: carol.cookie });
      await withRelay(env, id, async (f) => {
        const made = await env.ticket(id, { cookie: carol.cookie });
        assert.equal(made.status, 201, JSON.stringify(made.body));
        const url = new URL(
          `/web/console/${id}/ws?ticket=${made.body.ticket}`,
          env.origin,
        );
        const common = [`Cookie: ${carol.cookie}`, `Origin: ${env.origin}`];
        const bad: [string, string[]][] = [
          ["no Sec-WebSocket-Key", [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
          ]],
          ["Sec-WebSocket-Version 8", [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 8",
          ]],
          ["a malformed Sec-WebSocket-Key", [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: short",
            "Sec-WebSocket-Version: 13",
          ]],
        ];
        for (const [what, lines] of bad) {
          const before = await dump(env.store);
          assert.equal(await rawStatus(url, [...lines, ...common]), 400, what);
          assert.deepEqual(await dump(env.store), before, `${what}: etcd`);
        }
        assert.equal(f.openedVnc(), 0, "the relay opened no VNC connection");
        // The ticket is still there: it opens the console.
        const ws = await openWs(url.href.replace("http", "ws"), {
          cookie: carol.cookie,
          origin: env.origin,
        });
        assert.equal(
          new TextDecoder().decode(await ws.read(12)),
          "RFB 003.008\n",
        );
        ws.ws.close();
        await ws.closed;
      });
    }),
});
