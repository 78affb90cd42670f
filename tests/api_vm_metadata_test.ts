/**
 * A VM's metadata inputs through POST /v1/vms against a real etcd: `keys`
 * (each one of the owner's keys, checked at create) and `userData` (kept
 * in `userdata/<id>`, not in the VM document, read by its owner or an
 * admin with GET /v1/vms/{id}/user-data, deleted with the VM).
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import {
  MAX_NICS,
  MAX_USER_DATA_BYTES,
  MAX_VM_KEYS,
  UserData,
  Vm,
} from "../core/schemas.ts";
import { sshKeygen } from "../resources/keys/_keygen.ts";
import { hostFailed } from "../tasks/host_failed.ts";
import { complete } from "../tasks/queue.ts";
import { vmDelete } from "../tasks/vm_delete.ts";
import {
  type App,
  assertError,
  call,
  headerAuth,
  noSanitize,
} from "./helpers/api.ts";
import { input } from "./helpers/api_fixtures.ts";
import { withApiEnv } from "./helpers/api_env.ts";
import { grant, placementTest, register } from "./helpers/placement.ts";
import { vmDoc, withBench } from "./helpers/task_ctx.ts";

const ALICE = { "X-User": "alice" };
const BOB = { "X-User": "bob" };
const ADMIN = { "X-User": "root/admin" };
const CLOUD = "#cloud-config\nhostname: web1\nruncmd: [touch /ok]\n";

/** Adds SSH key `name` for the user of `headers`. */
async function addKey(
  app: App,
  dir: string,
  headers: Record<string, string>,
  name: string,
): Promise<string> {
  const publicKey = (await sshKeygen(dir, "ed25519")).line;
  const r = await call(app, "POST", "/v1/keys", {
    headers,
    json: { name, publicKey },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return publicKey;
}

/** The hex SHA-256 of `text` (UTF-8). */
async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

Deno.test({
  name:
    "api: a VM's keys and user data are checked, stored apart and read by owner or admin",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ fresh, step }) => {
      const dir = await Deno.makeTempDir({ prefix: "ucloud-vmmeta-" });
      try {
        const { store, app } = fresh({ auth: headerAuth });
        await addKey(app, dir, ALICE, "k1");
        await addKey(app, dir, ALICE, "k2");
        await addKey(app, dir, BOB, "k3");

        await step(
          "POST /v1/vms keeps keys in the spec and user data in userdata/<id>",
          async () => {
            const r = await call(app, "POST", "/v1/vms", {
              headers: ALICE,
              json: { ...input, keys: ["k2", "k1"], userData: CLOUD },
            });
            assert.equal(r.status, 201, JSON.stringify(r.body));
            const vm = r.body.vm as Vm;
            assert.deepEqual(vm.spec.keys, ["k2", "k1"]);
            assert.equal("userData" in vm.spec, false);
            assert.deepEqual(vm.userData, {
              bytes: CLOUD.length,
              sha256: await sha256(CLOUD),
            });
            const stored = await store.get(keys.vm(vm.id), z.unknown());
            assert.ok(!JSON.stringify(stored?.value).includes("runcmd"));
            const doc = await store.get(keys.userData(vm.id), UserData);
            assert.deepEqual(doc?.value, { vm: vm.id, data: CLOUD });
            assert.equal(doc?.modRevision, stored?.modRevision, "one txn");

            for (const who of [ALICE, ADMIN]) {
              const got = await call(
                app,
                "GET",
                `/v1/vms/${vm.id}/user-data`,
                { headers: who },
              );
              assert.equal(got.status, 200);
              assert.equal(
                got.headers.get("content-type"),
                "text/plain; charset=utf-8",
              );
              assert.equal(got.body, CLOUD);
            }
            const bob = await call(app, "GET", `/v1/vms/${vm.id}/user-data`, {
              headers: BOB,
            });
            assertError(bob, 404, undefined, new RegExp(`vm ${vm.id}$`));
            assert.ok(!JSON.stringify(bob.body).includes("runcmd"));
          },
        );

        await step(
          "a VM without keys or user data: all keys later, 404 for its user data",
          async () => {
            const r = await call(app, "POST", "/v1/vms", {
              headers: ALICE,
              json: input,
            });
            assert.equal(r.status, 201);
            const vm = r.body.vm as Vm;
            assert.equal(vm.spec.keys, undefined);
            assert.equal(vm.userData, undefined);
            const got = await call(app, "GET", `/v1/vms/${vm.id}/user-data`, {
              headers: ALICE,
            });
            assertError(got, 404, undefined, /user data of vm/);
          },
        );

        await step(
          "POST /v1/vms answers 400 naming the bad field",
          async () => {
            const post = (body: object, headers = ALICE) =>
              call(app, "POST", "/v1/vms", {
                headers,
                json: { ...input, ...body },
              });
            assertError(
              await post({ keys: ["k1", "nope"] }),
              400,
              "keys.1",
              /Cannot find SSH key nope of alice/,
            );
            // bob's key is not alice's.
            assertError(await post({ keys: ["k3"] }), 400, "keys.0", /k3/);
            assertError(
              await post({ keys: ["k1", "k1"] }),
              400,
              "keys",
              /unique/,
            );
            const many = Array.from({ length: 33 }, (_, i) => `k${i}`);
            assertError(await post({ keys: many }), 400, "keys", /at most 32/);
            assertError(await post({ keys: ["Bad_Name"] }), 400, "keys.0");
            const big = "x".repeat(64 * 1024 + 1);
            assertError(
              await post({ userData: big }),
              400,
              "userData",
              /at most 65536 bytes/,
            );
            // 65536 characters, but more bytes in UTF-8.
            assertError(
              await post({ userData: "é".repeat(32 * 1024 + 1) }),
              400,
              "userData",
              /at most 65536 bytes/,
            );
            assertError(
              await post({ userData: "a\0b" }),
              400,
              "userData",
              /without NUL/,
            );
            assertError(await post({ userData: 7 }), 400, "userData");
            const before = await store.keys(keys.userData(""));
            assert.equal(before.length, 1, "no user data of refused VMs");
          },
        );

        await step(
          "64 KiB of user data fits the request, even when JSON escapes every byte",
          async () => {
            const data = "\u0001".repeat(64 * 1024);
            const r = await call(app, "POST", "/v1/vms", {
              headers: ALICE,
              json: { ...input, userData: data },
            });
            assert.equal(r.status, 201, JSON.stringify(r.body).slice(0, 300));
            assert.equal((r.body.vm as Vm).userData?.bytes, 64 * 1024);
            const other = await call(app, "POST", "/v1/networks", {
              headers: ALICE,
              body: JSON.stringify({ name: "x".repeat(70 * 1024) }),
            });
            assert.equal(other.status, 413, "other routes keep 64 KiB");
          },
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});

Deno.test({
  name: "vm.delete removes the VM's user data with its document",
  ...noSanitize,
  fn: () =>
    withBench(async (b) => {
      const app = createApp({ store: b.store, auth: headerAuth });
      const r = await call(app, "POST", "/v1/vms", {
        headers: ALICE,
        json: { ...input, userData: CLOUD },
      });
      assert.equal(r.status, 201);
      const id = (r.body.vm as Vm).id;
      assert.ok(await b.store.get(keys.userData(id), UserData));
      const del = await call(app, "DELETE", `/v1/vms/${id}`, {
        headers: ALICE,
      });
      assert.equal(del.status, 202);
      assert.equal(del.body.task.kind, "vm.delete");

      const worker = await b.incarnation("h1");
      const ctx = await b.context(worker, "vm.delete", { vm: id });
      const out = await vmDelete(ctx);
      assert.ok(await complete(b.store, ctx.task, worker, out.result, out.txn));
      assert.equal(await b.store.get(keys.vm(id), Vm), null);
      assert.equal(await b.store.get(keys.userData(id), UserData), null);
      const gone = await call(app, "GET", `/v1/vms/${id}/user-data`, {
        headers: ALICE,
      });
      assertError(gone, 404, undefined, new RegExp(`vm ${id}$`));
    }),
});

placementTest(
  "api: the most a VM can name stays in one create txn",
  async ({ step, connect, cacheFor }) => {
    await step(
      "POST /v1/vms places inline with 8 IPv4 networks, 32 keys and 64 KiB of user data",
      async () => {
        const dir = await Deno.makeTempDir({ prefix: "ucloud-vmmeta-" });
        try {
          const store = connect();
          await register(store, await grant(store), [{
            name: "h1",
            cpus: 4,
            memoryMiB: 4096,
          }]);
          await cacheFor(store);
          const app = createApp({ store });
          const networks: string[] = [];
          for (let i = 0; i < MAX_NICS; i++) {
            const r = await call(app, "POST", "/v1/networks", {
              json: { name: `n${i}`, ipv4: `10.0.${i}.0/24` },
            });
            assert.equal(r.status, 201, JSON.stringify(r.body));
            networks.push(r.body.id);
          }
          const names = Array.from({ length: MAX_VM_KEYS }, (_, i) => `k${i}`);
          for (const name of names) await addKey(app, dir, {}, name);
          const r = await call(app, "POST", "/v1/vms", {
            json: {
              ...input,
              networks,
              keys: names,
              userData: "y".repeat(MAX_USER_DATA_BYTES),
            },
          });
          assert.equal(r.status, 201, JSON.stringify(r.body).slice(0, 300));
          assert.equal(r.body.vm.status.phase, "scheduled");
          assert.equal(r.body.vm.nics.length, MAX_NICS);
          assert.ok(await store.get(keys.userData(r.body.vm.id), UserData));
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    );
  },
);

Deno.test({
  name:
    "host.failed deletes the user data of a VM being deleted on the dead host",
  ...noSanitize,
  fn: () =>
    withBench(async (b) => {
      const dead = await b.incarnation("h1", 1);
      await b.store.revokeLease(dead.lease);
      const helper = await b.incarnation("h2");
      const vm = vmDoc("vm-gone", { host: "h1", incarnation: dead.lease }, {
        desired: "deleted",
        userData: { bytes: CLOUD.length, sha256: await sha256(CLOUD) },
      });
      await b.putVm(vm);
      await b.store.txn().put(keys.userData(vm.id), { vm: vm.id, data: CLOUD })
        .commit();
      const ctx = await b.context(helper, "host.failed", {
        host: "h1",
        incarnation: dead.lease,
      });
      await hostFailed(ctx);
      assert.equal(await b.store.get(keys.vm(vm.id), Vm), null);
      assert.equal(await b.store.get(keys.userData(vm.id), UserData), null);
    }),
});
