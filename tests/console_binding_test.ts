/**
 * Whose browser may use a console ticket, against the real API and h1's
 * real relay: a ticket made with a bearer token (the CLI's) opens in a
 * browser with no session or the maker's, and is refused with 403 and etcd
 * unchanged in a browser logged in as someone else (it would show the
 * maker's VM there: phishing); a ticket an admin made for a user through
 * the web session (`X-Act-As`) opens with the admin's session, not the
 * user's.
 */
import assert from "node:assert/strict";
import { dump } from "./helpers/cluster.ts";
import { noSanitize } from "./helpers/api.ts";
import { withConsoleEnv } from "./helpers/console_env.ts";
import { withRelay } from "./helpers/console_relay.ts";
import { upgradeStatus } from "./helpers/console_ws.ts";

Deno.test({
  name:
    "a console ticket made with a bearer token is refused in another user's session; an admin's X-Act-As ticket opens with the admin's session",
  ...noSanitize,
  fn: () =>
    withConsoleEnv({}, async (env) => {
      const carol = await env.cookie("carol");
      const bob = await env.cookie("bob");
      const alice = await env.cookie("alice"); // an admin
      const id = await env.createVm("a", { cookie: carol.cookie });
      await withRelay(env, id, async () => {
        const ws = (t: unknown) => `/web/console/${id}/ws?ticket=${t}`;
        const bearer = { authorization: await env.authorization("carol") };
        const refused = async (
          what: string,
          t: unknown,
          headers: Record<string, string>,
        ) => {
          const before = await dump(env.store);
          assert.equal(await upgradeStatus(env.origin, ws(t), headers), 403);
          assert.deepEqual(await dump(env.store), before, `${what}: etcd`);
        };

        const cli = (await env.ticket(id, bearer)).body.ticket;
        await refused("bob's session", cli, { cookie: bob.cookie });
        assert.equal(
          await upgradeStatus(env.origin, ws(cli), { cookie: carol.cookie }),
          101,
          "the maker's own session",
        );
        const cli2 = (await env.ticket(id, bearer)).body.ticket;
        assert.equal(await upgradeStatus(env.origin, ws(cli2)), 101);

        const actAs = {
          cookie: alice.cookie,
          "x-act-as": "carol",
          origin: env.origin,
        };
        const made = await env.ticket(id, actAs);
        assert.equal(made.status, 201, JSON.stringify(made.body));
        await refused("the user's session", made.body.ticket, {
          cookie: carol.cookie,
        });
        assert.equal(
          await upgradeStatus(env.origin, ws(made.body.ticket), {
            cookie: alice.cookie,
          }),
          101,
          "the acting admin's session",
        );
      });
    }),
});
