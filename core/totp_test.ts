/**
 * Tests of the TOTP verifiers of core/totp.ts: LocalVerifier (window, replay,
 * unknown names), MemoryReplayStore, and UngleichOtpVerifier against a
 * stand-in `fetch` that answers as an ungleich-otp server.
 */
import assert from "node:assert/strict";
import { UnavailableError } from "./errors.ts";
import { importHostKey, newHostKey, newSeed } from "./secrets.ts";
import {
  LocalVerifier,
  MemoryReplayStore,
  MemorySeedStore,
  otpKeys,
  totp,
  UngleichOtpVerifier,
} from "./totp.ts";

function setup(windowSteps = 1) {
  const c = { t: 1_700_000_015_000 };
  const seeds = new MemorySeedStore();
  const seed = newSeed();
  seeds.set("ucloud", "alice", seed);
  seeds.set("ucloud", "carol", seed);
  const replay = new MemoryReplayStore({ now: () => c.t });
  const v = new LocalVerifier({ seeds, replay, windowSteps, now: () => c.t });
  const at = (steps: number) => totp(seed, c.t + steps * 30_000);
  return { c, seed, v, at };
}

const alice = { name: "alice", realm: "ucloud" };

Deno.test("LocalVerifier accepts the current token and one step either side", async () => {
  const { v, at } = setup();
  for (const s of [-1, 0, 1]) {
    assert.deepEqual(await v.verify({ ...alice, token: await at(s) }), {
      ok: true,
    }, `step ${s}`);
  }
});

Deno.test("LocalVerifier refuses tokens two steps away and malformed tokens", async () => {
  const { v, at } = setup();
  for (const s of [-2, 2]) {
    assert.deepEqual(await v.verify({ ...alice, token: await at(s) }), {
      ok: false,
      reason: "invalid",
    });
  }
  for (const token of ["", "12345", "1234567", "12345a"]) {
    assert.deepEqual(await v.verify({ ...alice, token }), {
      ok: false,
      reason: "invalid",
    });
  }
});

Deno.test("LocalVerifier accepts a token once", async () => {
  const { c, v, at } = setup();
  const token = await at(0);
  assert.deepEqual(await v.verify({ ...alice, token }), { ok: true });
  assert.deepEqual(await v.verify({ ...alice, token }), {
    ok: false,
    reason: "replayed",
  });
  // Still refused in the next step, while the token is inside the window.
  c.t += 30_000;
  assert.deepEqual(await v.verify({ ...alice, token }), {
    ok: false,
    reason: "replayed",
  });
  // The record is per name and realm: carol, with the same seed, may use it.
  assert.deepEqual(await v.verify({ name: "carol", realm: "ucloud", token }), {
    ok: true,
  });
});

Deno.test("LocalVerifier with windowSteps 0 accepts only the current step", async () => {
  const { v, at } = setup(0);
  assert.equal((await v.verify({ ...alice, token: await at(1) })).ok, false);
  assert.equal((await v.verify({ ...alice, token: await at(-1) })).ok, false);
  assert.equal((await v.verify({ ...alice, token: await at(0) })).ok, true);
  assert.throws(
    () =>
      new LocalVerifier({
        seeds: new MemorySeedStore(),
        replay: new MemoryReplayStore(),
        windowSteps: 2,
      }),
    RangeError,
  );
});

Deno.test("LocalVerifier says unknown for a name without a seed", async () => {
  const { v, at } = setup();
  assert.deepEqual(
    await v.verify({ name: "bob", realm: "ucloud", token: await at(0) }),
    {
      ok: false,
      reason: "unknown",
    },
  );
  assert.deepEqual(
    await v.verify({ name: "alice", realm: "other", token: await at(0) }),
    { ok: false, reason: "unknown" },
  );
});

Deno.test("MemoryReplayStore forgets records once they expire", async () => {
  const c = { t: 0 };
  const r = new MemoryReplayStore({ now: () => c.t });
  assert.equal(
    await r.claim(otpKeys.used("ucloud", "alice", "1"), 60_000),
    true,
  );
  assert.equal(
    await r.claim(otpKeys.used("ucloud", "alice", "1"), 60_000),
    false,
  );
  c.t = 60_000;
  assert.equal(
    await r.claim(otpKeys.used("ucloud", "alice", "1"), 120_000),
    true,
  );
});

function fakeServer(answer: (body: Record<string, string>) => Response) {
  const seen: Record<string, string>[] = [];
  const fetch =
    ((_url: string | URL | Request, init?: RequestInit) =>
      Promise.resolve().then(() => {
        const body = JSON.parse(String(init?.body));
        seen.push(body);
        return answer(body);
      })) as typeof globalThis.fetch;
  return { seen, fetch };
}

async function ungleich(answer: (body: Record<string, string>) => Response) {
  const { seen, fetch } = fakeServer(answer);
  const keys = await importHostKey(newHostKey());
  const seed = newSeed();
  const v = new UngleichOtpVerifier({
    url: "http://127.0.0.1:1/ungleichotp/verify/",
    name: "ucloud-api",
    realm: "ungleich-auth",
    seed,
    replay: new MemoryReplayStore(),
    tagKey: keys.tag,
    fetch,
  });
  return { v, seen, seed };
}

const caller = { name: "alice", realm: "ungleich-users", token: "123456" };

Deno.test("UngleichOtpVerifier sends both triples and accepts 200 OK once", async () => {
  const { v, seen, seed } = await ungleich(() =>
    Response.json({ status: "OK" })
  );
  assert.deepEqual(await v.verify(caller), { ok: true });
  const sent = seen[0];
  assert.equal(sent.name, "ucloud-api");
  assert.equal(sent.realm, "ungleich-auth");
  assert.match(sent.token, /^\d{6}$/);
  assert.ok(
    [await totp(seed), await totp(seed, Date.now() - 30_000)].includes(
      sent.token,
    ),
  );
  assert.equal(sent.verifyname, "alice");
  assert.equal(sent.verifyrealm, "ungleich-users");
  assert.equal(sent.verifytoken, "123456");
  assert.deepEqual(await v.verify(caller), { ok: false, reason: "replayed" });
});

Deno.test("UngleichOtpVerifier treats 400, 401 and 403 as a wrong token", async () => {
  for (const status of [400, 401, 403]) {
    const { v } = await ungleich(() =>
      Response.json({
        detail: "You do not have permission to perform this action.",
      }, {
        status,
      })
    );
    assert.deepEqual(await v.verify(caller), { ok: false, reason: "invalid" });
  }
});

Deno.test("UngleichOtpVerifier raises UnavailableError for server errors and odd answers", async () => {
  for (
    const answer of [
      () => new Response("oops", { status: 500 }),
      () => Response.json({ status: "maybe" }),
      () => new Response("not json"),
      () => {
        throw new TypeError("connection refused");
      },
    ]
  ) {
    const { v } = await ungleich(answer);
    await assert.rejects(v.verify(caller), UnavailableError);
  }
});
