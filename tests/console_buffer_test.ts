/**
 * The console proxy does not buffer without bound (api/console_ws.ts): a
 * browser that sends faster than the VM's VNC server reads (here a
 * stand-in that reads nothing, behind h1's real relay) is closed with 1008
 * once 1 MiB waits, instead of the API holding everything it sent.
 */
import assert from "node:assert/strict";
import { noSanitize } from "./helpers/api.ts";
import { withConsoleEnv } from "./helpers/console_env.ts";
import { withRelay } from "./helpers/console_relay.ts";
import { openWs } from "./helpers/console_ws.ts";

Deno.test({
  name:
    "a console whose browser sends faster than the VM reads is closed, not buffered",
  ...noSanitize,
  fn: () =>
    withConsoleEnv({}, async (env) => {
      const carol = await env.cookie("carol");
      const id = await env.createVm("a", { cookie: carol.cookie });
      await withRelay(env, id, async () => {
        const made = await env.ticket(id, { cookie: carol.cookie });
        assert.equal(made.status, 201, JSON.stringify(made.body));
        const url = new URL(
          `/web/console/${id}/ws?ticket=${made.body.ticket}`,
          env.origin,
        );
        const ws = await openWs(url.href.replace("http", "ws"), {
          cookie: carol.cookie,
          origin: env.origin,
        });
        assert.equal(
          new TextDecoder().decode(await ws.read(12)),
          "RFB 003.008\n",
        );
        // 256 MiB in 64 KiB frames, far more than the kernel's socket
        // buffers between the API and the stand-in hold.
        const frame = new Uint8Array(64 * 1024);
        let sent = 0;
        let closed: CloseEvent | undefined;
        ws.closed.then((ev) => closed = ev);
        while (!closed && sent < 256 * 1024 * 1024) {
          if (ws.ws.bufferedAmount > 4 * frame.length) {
            await new Promise((r) => setTimeout(r, 5));
            continue;
          }
          ws.ws.send(frame);
          sent += frame.length;
        }
        const ev = await Promise.race([
          ws.closed,
          new Promise<null>((r) => setTimeout(() => r(null), 30_000)),
        ]);
        assert.ok(ev, `no close after ${sent} bytes sent`);
        // Closed long before all was sent: the API held at most its 1 MiB
        // plus what the sockets between it and the stand-in buffer. (The
        // 1008 frame itself may not reach a client still sending.)
        assert.ok(sent < 64 * 1024 * 1024, `closed only after ${sent} bytes`);
      }, { readVnc: false });
    }),
});
