/**
 * The targets of the auth matrix, made once bearer tokens exist: alice's
 * network, VM, task and image (what bob must not reach), bob's own network and
 * VM, bad credentials of every kind, the operations of the OpenAPI
 * document, and how to aim and refuse a request at them.
 */
import assert from "node:assert/strict";
import { MemoryRevocationList } from "../../api/revocations.ts";
import { BearerTokens } from "../../api/tokens.ts";
import { keys } from "../../core/keys.ts";
import { dump } from "./cluster.ts";
import { EXPECT } from "./authz_expect.ts";
import type { AuthzEnv } from "./authz_env.ts";
import { oathtool } from "./otp.ts";
import { sshKeygen } from "../../resources/keys/_keygen.ts";

/** Makes the matrix targets with the bearer tokens of alice and bob. */
export async function matrixTargets(
  {
    dir,
    call,
    seeds,
    secrets,
    hostKeys,
    identity,
    store,
    totpHeaders,
    bearerHeaders,
    cookieOf,
  }: AuthzEnv,
  { aliceBearer, bobBearer, bobUsedToken }: {
    aliceBearer: string;
    bobBearer: string;
    bobUsedToken: string;
  },
) {
  // alice's network, VM and task (the things bob must not reach), bob's
  // own network and VM.
  const netOf = async (bearer: string) => {
    const r = await call("POST", "/v1/networks", {
      headers: bearerHeaders(bearer),
      json: { name: "lan" },
    });
    assert.equal(r.status, 201, r.text);
    return (r.body as { id: string }).id;
  };
  const aliceNet = await netOf(aliceBearer);
  const bobNet = await netOf(bobBearer);
  const vmBody = { name: "m", cpus: 1, memory: 128 };
  const made = await call("POST", "/v1/vms", {
    headers: bearerHeaders(aliceBearer),
    // With user data, so bob's GET .../user-data has something to miss.
    json: { ...vmBody, networks: [aliceNet], userData: "#cloud-config\n" },
  });
  assert.equal(made.status, 201, made.text);
  const aliceVm = (made.body as { vm: { id: string } }).vm.id;
  const aliceTask = (made.body as { task: { id: string } }).task.id;
  const bobMade = await call("POST", "/v1/vms", {
    headers: bearerHeaders(bobBearer),
    json: { ...vmBody, name: "b", networks: [bobNet] },
  });
  assert.equal(bobMade.status, 201, bobMade.text);
  const bobVm = (bobMade.body as { vm: { id: string } }).vm.id;
  // alice's SSH key `ak` (bob has none of that name), and one of bob's.
  const publicKey = (await sshKeygen(dir, "ed25519")).line;
  for (const [bearer, name] of [[aliceBearer, "ak"], [bobBearer, "bk"]]) {
    const r = await call("POST", "/v1/keys", {
      headers: bearerHeaders(bearer),
      json: { name, publicKey },
    });
    assert.equal(r.status, 201, r.text);
  }
  // alice's image "h1": `{name}` of every image path (see `url`).
  const image = await call("POST", "/v1/images", {
    headers: bearerHeaders(aliceBearer),
    json: { name: "h1" },
  });
  assert.equal(image.status, 201, image.text);

  // Bad credentials of every kind.
  const now = Date.now();
  const valid = new Set(
    await Promise.all(
      [-30_000, 0, 30_000].map((d) => oathtool(seeds.bob, now + d)),
    ),
  );
  let wrongToken = await oathtool(seeds.bob, now - 3_600_000);
  while (valid.has(wrongToken)) {
    wrongToken = String((Number(wrongToken) + 1) % 1e6).padStart(6, "0");
  }
  secrets.add(wrongToken);
  const expired = await new BearerTokens({
    key: hostKeys.sign,
    revocations: new MemoryRevocationList(),
    ttlSeconds: 60,
    now: () => Date.now() - 3_600_000,
  }).issue({ name: "bob", admin: false });
  secrets.add(expired.token);
  const revoked = (await identity.bearer.issue({ name: "bob", admin: true }))
    .token;
  secrets.add(revoked);
  assert.ok(await identity.bearer.revoke(revoked));
  const bobSession =
    (await identity.sessions.issue({ name: "bob", admin: false })).token;
  secrets.add(bobSession);
  const forged = aliceBearer.slice(0, -4) +
    (aliceBearer.endsWith("AAAA") ? "BBBB" : "AAAA");
  const badCredentials: Record<string, Record<string, string>> = {
    "no credentials": {},
    "wrong token": totpHeaders("bob", wrongToken),
    "replayed token": totpHeaders("bob", bobUsedToken),
    "unknown user": totpHeaders("mallory", wrongToken),
    "expired bearer": bearerHeaders(expired.token),
    "revoked bearer": bearerHeaders(revoked),
    "forged bearer": bearerHeaders(forged),
    "session as bearer": bearerHeaders(bobSession),
    "bearer as session": cookieOf(aliceBearer),
  };

  const spec = (await call("GET", "/v1/openapi.json")).body as {
    paths: Record<string, Record<string, unknown>>;
  };
  const ops: { method: string; path: string; key: string }[] = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of Object.keys(item)) {
      ops.push({
        method: method.toUpperCase(),
        path,
        key: `${method.toUpperCase()} ${path}`,
      });
    }
  }
  assert.deepEqual(
    ops.map((o) => o.key).sort(),
    Object.keys(EXPECT).sort(),
    "every operation of the OpenAPI document must be in EXPECT",
  );

  /**
   * The URL of an operation aimed at `vm` / `task` / network `net`, and at
   * alice's key `ak` (an admin's own: alice is the admin) and quota.
   */
  const url = (path: string, vm: string, task: string, net: string) =>
    path.replace("/v1/keys/{name}", "/v1/keys/ak").replace(
      "/v1/users/{name}",
      "/v1/users/alice",
    ).replace(
      "{id}",
      path.startsWith("/v1/vms")
        ? vm
        : path.startsWith("/v1/networks")
        ? net
        : task,
    ).replace("{name}", "h1").replace("{slot}", "0");
  /** The body an operation needs (without any credentials). */
  const bodyOf = (key: string, who: "bob" | "alice") =>
    key === "POST /v1/vms"
      ? { ...vmBody, name: `n-${crypto.randomUUID().slice(0, 8)}` }
      : key === "POST /v1/auth/seed" || key === "POST /v1/auth/session"
      ? { name: who }
      : key === "POST /v1/auth/services"
      ? { name: "backup", realm: "svc", replace: true }
      : key === "POST /v1/networks" || key === "POST /v1/images"
      ? { name: `n-${crypto.randomUUID().slice(0, 8)}` }
      : key === "POST /v1/keys"
      ? { name: `k-${crypto.randomUUID().slice(0, 8)}`, publicKey }
      : key === "PUT /v1/users/{name}/quota"
      ? { vms: 100 }
      : key === "POST /v1/vms/{id}/nics"
      ? { network: who === "alice" ? aliceNet : bobNet }
      : undefined;

  /**
   * Etcd without the records of password attempts (`attempts/`), which a
   * refused `POST /v1/auth/seed` must write: they are what limits guessing.
   */
  const state = async () =>
    Object.fromEntries(
      Object.entries(await dump(store)).filter(([k]) =>
        !k.startsWith(keys.allAttempts)
      ),
    );
  /** Calls and asserts the status; etcd must not change. */
  const refused = async (
    what: string,
    op: { method: string; key: string },
    path: string,
    status: number,
    init: { headers?: Record<string, string>; json?: unknown },
  ) => {
    const before = await state();
    const r = await call(op.method, path, init);
    assert.equal(r.status, status, `${op.key} ${what}: ${r.text}`);
    assert.deepEqual(
      await state(),
      before,
      `${op.key} ${what} changed etcd`,
    );
    return r;
  };
  return {
    aliceNet,
    bobNet,
    aliceVm,
    aliceTask,
    bobVm,
    wrongToken,
    badCredentials,
    ops,
    url,
    bodyOf,
    refused,
  };
}
