/**
 * Console ticket rules (resources/console/tickets.ts, api/console.ts,
 * api/console_ws.ts) against a real etcd and the API on a port: a
 * websocket without a ticket, another user's ticket, a ticket for another
 * VM, a ticket used after its time and a malformed one are each refused
 * with 403 and change nothing in etcd; tickets are only for the VM's
 * owner (or an admin) while it runs, random and kept in etcd only as their
 * hash on a lease.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { dump } from "./helpers/cluster.ts";
import { withConsoleEnv } from "./helpers/console_env.ts";
import { upgradeStatus } from "./helpers/console_ws.ts";
import { noSanitize } from "./helpers/api.ts";

Deno.test({
  name: "console tickets: refusals change nothing in etcd",
  ...noSanitize,
  fn: () =>
    withConsoleEnv({ ticketTtlSeconds: 1 }, async (env) => {
      const carol = await env.cookie("carol"); // a user (not an admin)
      const bob = await env.cookie("bob");
      const a = await env.createVm("a", { cookie: carol.cookie });
      const b = await env.createVm("b", { cookie: carol.cookie });
      await env.markRunning(a, "h1");
      await env.markRunning(b, "h1");
      // Where h1's relay would listen: refusals never get there.
      await env.store.txn().put(keys.consoleRelay("h1"), {
        address: "127.0.0.1",
        port: 9,
      }).commit();

      const made = await env.ticket(a, { cookie: carol.cookie });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const ticket = made.body.ticket as string;
      assert.match(ticket, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(
        made.body.url,
        `${env.origin}/web/console/${a}#ticket=${ticket}`,
      );
      const stored = await dump(env.store);
      const ticketKeys = Object.keys(stored).filter((k) =>
        k.startsWith(keys.consoleTickets)
      );
      assert.equal(ticketKeys.length, 1);
      assert.ok(
        !Object.values(stored).some((v) => v.includes(ticket)),
        "etcd holds the ticket's hash only",
      );
      const ws = (vm: string, t?: string) =>
        `/web/console/${vm}/ws${t === undefined ? "" : `?ticket=${t}`}`;

      const refused = async (
        what: string,
        path: string,
        headers: Record<string, string>,
      ) => {
        const before = await dump(env.store);
        assert.equal(await upgradeStatus(env.origin, path, headers), 403, what);
        assert.deepEqual(
          await dump(env.store),
          before,
          `${what}: etcd changed`,
        );
      };
      await refused("no ticket", ws(a), { cookie: carol.cookie });
      await refused("a malformed ticket", ws(a, "x".repeat(10)), {
        cookie: carol.cookie,
      });
      await refused("another user's ticket", ws(a, ticket), {
        cookie: bob.cookie,
      });
      await refused("no session for a session's ticket", ws(a, ticket), {});
      await refused("a ticket for another VM", ws(b, ticket), {
        cookie: carol.cookie,
      });
      await new Promise((r) => setTimeout(r, 1200));
      await refused("a ticket after its time", ws(a, ticket), {
        cookie: carol.cookie,
      });

      // Who may ask: the owner (an admin too) of a running VM.
      const other = await env.ticket(a, { cookie: bob.cookie });
      assert.equal(other.status, 404);
      const admin = await env.ticket(a, {
        authorization: await env.authorization("alice"),
      });
      assert.equal(admin.status, 201);
      const stopped = await env.createVm("c", { cookie: carol.cookie });
      assert.equal(
        (await env.ticket(stopped, { cookie: carol.cookie })).status,
        409,
      );
      const anon = await env.ticket(a, {});
      assert.equal(anon.status, 401);
    }),
});
