/**
 * The console ticket rate against the real API: one person gets
 * `TICKETS_PER_MINUTE` tickets a minute, then 429 with `Retry-After`
 * (another user is not affected).
 */
import assert from "node:assert/strict";
import { TICKETS_PER_MINUTE } from "../api/console.ts";
import { noSanitize } from "./helpers/api.ts";
import { withConsoleEnv } from "./helpers/console_env.ts";

Deno.test({
  name:
    "POST /v1/vms/{id}/console answers 429 with Retry-After beyond TICKETS_PER_MINUTE per person",
  ...noSanitize,
  fn: () =>
    withConsoleEnv({}, async (env) => {
      const carol = { authorization: await env.authorization("carol") };
      const id = await env.createVm("a", carol);
      await env.markRunning(id, "h1");
      for (let i = 0; i < TICKETS_PER_MINUTE; i++) {
        assert.equal((await env.ticket(id, carol)).status, 201);
      }
      const res = await fetch(`${env.origin}/v1/vms/${id}/console`, {
        method: "POST",
        headers: carol,
      });
      assert.equal(res.status, 429, await res.text());
      assert.ok(Number(res.headers.get("retry-after")) >= 1);
      const alice = { authorization: await env.authorization("alice") };
      assert.equal((await env.ticket(id, alice)).status, 201);
    }),
});
