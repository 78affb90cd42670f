/**
 * The console of a real qemu VM over the websocket proxy: the API
 * consumes the ticket and reaches the VM's VNC through h1's console relay;
 * the browser side sees the RFB banner and a framebuffer update. A
 * replayed ticket is refused with etcd unchanged; the console closes when
 * its session is revoked and when the VM leaves the host; a ticket made
 * with a bearer token (the CLI's) needs no cookie.
 */
import assert from "node:assert/strict";
import { dump } from "./helpers/cluster.ts";
import { noSanitize } from "./helpers/api.ts";
import { withConsoleEnv } from "./helpers/console_env.ts";
import { withConsoleVm } from "./helpers/console_vm.ts";
import { openWs, rfbHandshake, upgradeStatus } from "./helpers/console_ws.ts";

Deno.test({
  name:
    "the console of a qemu VM shows RFB over the websocket, once per ticket, until the session or the VM ends",
  ...noSanitize,
  fn: () =>
    withConsoleEnv({ sessionCheckSeconds: 0.5 }, async (env) => {
      const carol = await env.cookie("carol");
      const id = await env.createVm("screen", { cookie: carol.cookie });
      await withConsoleVm(env, id, async () => {
        const wsUrl = (t: string) =>
          `${
            env.origin.replace("http", "ws")
          }/web/console/${id}/ws?ticket=${t}`;
        const made = await env.ticket(id, { cookie: carol.cookie });
        assert.equal(made.status, 201, JSON.stringify(made.body));
        const ticket = made.body.ticket as string;
        const t0 = performance.now();
        const ws = await openWs(wsUrl(ticket), {
          cookie: carol.cookie,
          origin: env.origin,
        });
        const rfb = await rfbHandshake(ws);
        console.log(
          `first framebuffer update ${
            Math.round(performance.now() - t0)
          } ms after the websocket request`,
        );
        assert.equal(rfb.banner, "RFB 003.008\n");
        assert.ok(rfb.width >= 640 && rfb.height >= 400, JSON.stringify(rfb));
        assert.ok(rfb.rects >= 1);

        const before = await dump(env.store);
        assert.equal(
          await upgradeStatus(
            env.origin,
            new URL(wsUrl(ticket)).pathname + `?ticket=${ticket}`,
            {
              cookie: carol.cookie,
            },
          ),
          403,
          "a replayed ticket",
        );
        assert.deepEqual(await dump(env.store), before, "replay changed etcd");

        await env.sessions.revokeId(carol.jti);
        const closed = await ws.closed;
        assert.equal(closed.code, 4001, "closed when the session ended");

        // The CLI's ticket (bearer): the browser needs no cookie.
        const cli = await env.ticket(id, {
          authorization: await env.authorization("carol"),
        });
        assert.equal(cli.status, 201);
        const ws2 = await openWs(wsUrl(cli.body.ticket as string), {
          origin: env.origin,
        });
        assert.equal((await rfbHandshake(ws2)).banner, "RFB 003.008\n");
        await env.markRunning(id, "h2");
        const gone = await ws2.closed;
        assert.notEqual(
          gone.code,
          4001,
          "closed by the relay, not the session",
        );
      });
    }),
});
