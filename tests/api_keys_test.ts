/**
 * `/v1/keys` through createApp against a real etcd, with keys made by
 * ssh-keygen: fingerprints as `ssh-keygen -l -E sha256`, the documents at
 * `key/<owner>/<name>`, `authorizedKeys()`, each user reaching only their
 * own keys, 409 for a taken name (also under concurrent adds), and every
 * refused key a 400 naming `publicKey` that leaves etcd as it was.
 */
import assert from "node:assert/strict";
import { SshKey } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { authorizedKeys } from "../resources/keys/mod.ts";
import {
  type App,
  assertError,
  call,
  dump,
  headerAuth,
  noSanitize,
} from "./helpers/api.ts";
import { withApiEnv } from "./helpers/api_env.ts";
import { type GeneratedKey, sshKeygen } from "../resources/keys/_keygen.ts";

const ALICE = { "x-user": "alice" };
const BOB = { "x-user": "bob" };
const ADMIN = { "x-user": "root/admin" };

const add = (
  app: App,
  name: string,
  publicKey: string,
  headers: Record<string, string> = ALICE,
) => call(app, "POST", "/v1/keys", { json: { name, publicKey }, headers });

Deno.test({
  name: "api: /v1/keys against a real etcd with ssh-keygen's keys",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ fresh, step }) => {
      const dir = await Deno.makeTempDir({ prefix: "ucloud-api-keys-" });
      try {
        const made: Record<string, GeneratedKey> = {
          ed: await sshKeygen(dir, "ed25519", undefined, "alice@laptop"),
          rsa: await sshKeygen(dir, "rsa", 3072),
          ec256: await sshKeygen(dir, "ecdsa", 256),
          ec384: await sshKeygen(dir, "ecdsa", 384),
          ec521: await sshKeygen(dir, "ecdsa", 521),
        };

        await step("keys are added, listed, shown and deleted", async () => {
          const { store, app } = fresh({ auth: headerAuth });
          for (const [name, key] of Object.entries(made)) {
            const r = await add(app, name, `${key.line}\n`);
            assert.equal(r.status, 201, JSON.stringify(r.body));
            assert.equal(r.body.fingerprint, key.fingerprint, name);
            assert.equal(r.body.publicKey, key.line);
            assert.equal(r.body.owner, "alice");
            assert.equal(r.body.type, key.line.split(" ")[0]);
            const doc = await store.get(keys.sshKey("alice", name), SshKey);
            assert.deepEqual(doc?.value, r.body);
          }
          assert.equal(
            (await call(app, "GET", "/v1/keys/ed", { headers: ALICE })).body
              .comment,
            "alice@laptop",
          );
          const list = await call(app, "GET", "/v1/keys", { headers: ALICE });
          assert.equal(list.status, 200);
          assert.deepEqual(
            list.body.items.map((k: SshKey) => [k.name, k.fingerprint]),
            Object.entries(made).map(([n, k]) => [n, k.fingerprint]).sort(),
          );
          assert.deepEqual(
            (await authorizedKeys(store, "alice")).sort(),
            Object.values(made).map((k) => k.line).sort(),
          );

          const del = await call(app, "DELETE", "/v1/keys/rsa", {
            headers: ALICE,
          });
          assert.deepEqual([del.status, del.body], [200, { deleted: "rsa" }]);
          assertError(
            await call(app, "GET", "/v1/keys/rsa", { headers: ALICE }),
            404,
            undefined,
            /Cannot find key rsa/,
          );
          assertError(
            await call(app, "DELETE", "/v1/keys/rsa", { headers: ALICE }),
            404,
            undefined,
          );
          assert.ok(
            !(await authorizedKeys(store, "alice")).includes(
              made.rsa.line,
            ),
          );
          assert.equal(
            await store.get(keys.sshKey("alice", "rsa"), SshKey),
            null,
          );
        });

        await step("a user reaches only their own keys", async () => {
          const { store, app } = fresh({ auth: headerAuth });
          assert.equal((await add(app, "k1", made.ed.line)).status, 201);
          const before = await dump(store);
          for (const method of ["GET", "DELETE"]) {
            assertError(
              await call(app, method, "/v1/keys/k1", { headers: BOB }),
              404,
              undefined,
              /Cannot find key k1/,
            );
          }
          const bobs = await call(app, "GET", "/v1/keys", { headers: BOB });
          assert.deepEqual(bobs.body, { items: [] });
          assert.deepEqual(await dump(store), before);
          assert.deepEqual(await authorizedKeys(store, "bob"), []);
          // Names are per user: bob's k1 is another key.
          const b = await add(app, "k1", made.ec256.line, BOB);
          assert.equal(b.status, 201, JSON.stringify(b.body));
          assert.deepEqual(await authorizedKeys(store, "bob"), [
            made.ec256.line,
          ]);
          assert.deepEqual(await authorizedKeys(store, "alice"), [
            made.ed.line,
          ]);
          // An admin lists their own keys; acting as alice, alice's.
          const own = await call(app, "GET", "/v1/keys", { headers: ADMIN });
          assert.deepEqual(own.body, { items: [] });
          const as = await call(app, "GET", "/v1/keys/k1", {
            headers: { ...ADMIN, "x-act-as": "alice" },
          });
          assert.equal(as.body.fingerprint, made.ed.fingerprint);
          const gone = await call(app, "DELETE", "/v1/keys/k1", {
            headers: BOB,
          });
          assert.equal(gone.status, 200);
          assert.deepEqual(await authorizedKeys(store, "alice"), [
            made.ed.line,
          ]);
        });

        await step(
          "a taken name is 409, also for concurrent adds",
          async () => {
            const { store, app } = fresh({ auth: headerAuth });
            assert.equal((await add(app, "k1", made.ed.line)).status, 201);
            const before = await dump(store);
            assertError(
              await add(app, "k1", made.rsa.line),
              409,
              undefined,
              /Cannot add key k1: alice already has a key of that name/,
            );
            assert.deepEqual(await dump(store), before);
            const keysOf = Object.values(made);
            const answers = await Promise.all(
              keysOf.map((k) => add(app, "race", k.line)),
            );
            assert.deepEqual(
              answers.map((r) => r.status).sort(),
              [201, 409, 409, 409, 409],
            );
            const won = answers.find((r) => r.status === 201)!.body;
            const doc = await store.get(keys.sshKey("alice", "race"), SshKey);
            assert.equal(doc?.value.fingerprint, won.fingerprint);
          },
        );

        await step(
          "refused keys are 400 naming publicKey and why",
          async () => {
            const { store, app } = fresh({ auth: headerAuth });
            const weak = await sshKeygen(dir, "rsa", 1024);
            const [type, data] = made.ed.line.split(" ");
            const before = await dump(store);
            const cases: [unknown, string, RegExp][] = [
              [
                { name: "k", publicKey: weak.line },
                "publicKey",
                /^publicKey: the RSA key has 1024 bits; at least 2048 are needed$/,
              ],
              [
                { name: "k", publicKey: `${type} %%%garbage%%%` },
                "publicKey",
                /not valid base64/,
              ],
              [
                { name: "k", publicKey: `ssh-rsa ${data}` },
                "publicKey",
                /the line says ssh-rsa but the key data holds "ssh-ed25519"/,
              ],
              [
                { name: "k", publicKey: `${made.ed.line}\n${made.rsa.line}` },
                "publicKey",
                /one key on one line/,
              ],
              [
                { name: "k", publicKey: `no-port-forwarding ${made.ed.line}` },
                "publicKey",
                /authorized_keys options .* not allowed/,
              ],
              [
                { name: "k", publicKey: `ssh-dss ${data}` },
                "publicKey",
                /unknown key type "ssh-dss"/,
              ],
              [
                {
                  name: "k",
                  publicKey: `${made.ed.line} ${"x".repeat(16384)}`,
                },
                "publicKey",
                /^publicKey: Too big: expected string to have <=16384 characters$/,
              ],
              [{ name: "k", publicKey: "" }, "publicKey", /Too small/],
              [{ name: "K_1", publicKey: made.ed.line }, "name", /name/],
              [{ publicKey: made.ed.line }, "name", /name/],
              [
                { name: "k", publicKey: made.ed.line, owner: "bob" },
                "owner",
                /Unknown field "owner"/,
              ],
            ];
            for (const [json, field, message] of cases) {
              const r = await call(app, "POST", "/v1/keys", {
                json,
                headers: ALICE,
              });
              assertError(r, 400, field, message);
            }
            assertError(
              await call(app, "GET", "/v1/keys/Bad_Name", { headers: ALICE }),
              400,
              "name",
            );
            assert.deepEqual(await dump(store), before);
          },
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});
