/**
 * h1's real console relay (workers/console_relay.ts) under a client that
 * does not follow its protocol: at most `MAX_HANDSHAKES` handshakes at once
 * (the next is answered `NO busy` at once), an address whose hellos failed
 * `HELLO_FAILURES.limit` times is refused without a read, even with a good
 * grant, and a handshake that ends after the relay stopped opens nothing.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import type { Store } from "../core/store.ts";
import { noSanitize } from "./helpers/api.ts";
import { waitFor } from "./helpers/cluster.ts";
import { withConsoleEnv } from "./helpers/console_env.ts";
import { type RelayFixture, withRelay } from "./helpers/console_relay.ts";
import { HELLO_FAILURES, MAX_HANDSHAKES } from "../workers/console_relay.ts";

/** Connects to the relay of `f`. */
function connect(f: RelayFixture): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: f.relay.address, port: f.relay.port });
}

/** Sends `line` (unless undefined) and reads the relay's answer line. */
async function answer(conn: Deno.TcpConn, line?: string): Promise<string> {
  if (line !== undefined) {
    await conn.write(new TextEncoder().encode(`${line}\n`));
  }
  const buf = new Uint8Array(256);
  let text = "";
  while (!text.includes("\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return text.split("\n")[0];
}

/** Writes a grant for VM `vm` on h1, as the API's redeem does. */
async function grant(env: { store: Store }, vm: string): Promise<string> {
  const id = btoa(
    String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))),
  )
    .replace(/\+/g, "-").replace(/\//g, "_");
  await env.store.txn().put(keys.consoleGrant("h1", id), {
    vm,
    user: "carol",
    createdAt: new Date().toISOString(),
  }).commit();
  return id;
}

Deno.test({
  name:
    "the console relay answers NO busy beyond MAX_HANDSHAKES handshakes in flight",
  ...noSanitize,
  fn: () =>
    withConsoleEnv({}, async (env) => {
      const carol = await env.cookie("carol");
      const id = await env.createVm("a", { cookie: carol.cookie });
      await withRelay(env, id, async (f) => {
        const idle: Deno.TcpConn[] = [];
        try {
          for (let i = 0; i < MAX_HANDSHAKES; i++) idle.push(await connect(f));
          const extra = await connect(f);
          assert.equal(await answer(extra), "NO busy");
          extra.close();
        } finally {
          for (const c of idle) c.close();
        }
        assert.equal(f.openedVnc(), 0);
      });
    }),
});

Deno.test({
  name:
    "the console relay refuses an address after HELLO_FAILURES failed hellos, even with a good grant",
  ...noSanitize,
  fn: () =>
    withConsoleEnv({}, async (env) => {
      const carol = await env.cookie("carol");
      const id = await env.createVm("a", { cookie: carol.cookie });
      await withRelay(env, id, async (f) => {
        for (let i = 0; i < HELLO_FAILURES.limit; i++) {
          const c = await connect(f);
          const line = i % 2 ? "HELLO" : `UCLOUD-CONSOLE ${"x".repeat(32)}`;
          assert.match(await answer(c, line), /^NO (bad hello|unknown)/);
          c.close();
        }
        const c = await connect(f);
        assert.equal(
          await answer(c, `UCLOUD-CONSOLE ${await grant(env, id)}`),
          "NO too many failed hellos",
        );
        c.close();
        assert.equal(f.openedVnc(), 0);
      });
    }),
});

Deno.test({
  name:
    "a console relay handshake that ends after the relay stopped opens nothing and lets the relay end",
  ...noSanitize,
  fn: () =>
    withConsoleEnv({}, async (env) => {
      const carol = await env.cookie("carol");
      const id = await env.createVm("a", { cookie: carol.cookie });
      await withRelay(env, id, async (f) => {
        const c = await connect(f);
        try {
          // Accepted, in its handshake: the relay stops meanwhile.
          await waitFor(
            "the relay's handshake",
            () => f.relay.handshakes === 1,
          );
          f.stop();
          const got = await answer(c, `UCLOUD-CONSOLE ${await grant(env, id)}`);
          assert.equal(got, "NO the relay stops");
          await f.relay.done;
          assert.equal(f.openedVnc(), 0);
        } finally {
          c.close();
        }
      });
    }),
});
