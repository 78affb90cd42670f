/**
 * `/v1/images` against a real etcd and the real API: create, list, show,
 * publish and delete with owner isolation; bad input as 400 naming the
 * field with etcd unchanged; `file` taken from the user's upload directory
 * (and refused for what is not a regular file there); a delete refused
 * while a VM uses the image; VM create from image documents; URL checks.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { Task, Vm } from "../core/schemas.ts";
import { assertError, call, dump } from "./helpers/api.ts";
import { withApiEnv } from "./helpers/api_env.ts";
import {
  ADMIN,
  ALICE,
  BOB,
  imageApp,
  putImage,
} from "./helpers/image_api_env.ts";

const names = (r: { body: { items: { owner: string; name: string }[] } }) =>
  r.body.items.map((i) => `${i.owner}/${i.name}`).sort();

Deno.test("images API: resource, owners, file and URL sources, VM use", (t) =>
  withApiEnv(t, async (env) => {
    const dir = await Deno.makeTempDir({ prefix: "ucloud-img-api-" });
    const { step } = env;
    try {
      await step(
        "create, list, show, publish, delete; owners apart",
        async () => {
          const { app } = imageApp(env, dir);
          const made = await call(app, "POST", "/v1/images", {
            json: { name: "deb" },
            headers: ALICE,
          });
          assert.equal(made.status, 201, JSON.stringify(made.body));
          assert.equal(made.body.image.state, "uploading");
          assert.equal(made.body.image.owner, "alice");
          assert.equal(made.body.task, undefined);
          const again = await call(app, "POST", "/v1/images", {
            json: { name: "deb" },
            headers: ALICE,
          });
          assertError(again, 409, undefined, /alice has an image of that name/);
          assert.equal(
            (await call(app, "GET", "/v1/images/deb", { headers: BOB })).status,
            404,
          );
          const bobs = await call(app, "GET", "/v1/images", { headers: BOB });
          assert.deepEqual(names(bobs), []);
          const all = await call(app, "GET", "/v1/images", { headers: ADMIN });
          assert.deepEqual(names(all), ["alice/deb"]);
          const shown = await call(app, "GET", "/v1/images/deb", {
            headers: ALICE,
          });
          assert.equal(shown.body.state, "uploading");
          // Only admins publish; then everybody sees the image.
          assertError(
            await call(app, "POST", "/v1/images/deb/publish", {
              headers: ALICE,
            }),
            403,
            undefined,
            /not an admin/,
          );
          const pub = await call(
            app,
            "POST",
            "/v1/images/deb/publish?owner=alice",
            { headers: ADMIN },
          );
          assert.equal(pub.status, 200, JSON.stringify(pub.body));
          assert.equal(pub.body.public, true);
          const seen = await call(app, "GET", "/v1/images/deb", {
            headers: BOB,
          });
          assert.equal(seen.status, 200);
          assert.equal(seen.body.owner, "alice");
          assert.deepEqual(
            names(await call(app, "GET", "/v1/images", { headers: BOB })),
            ["alice/deb"],
          );
          // Published is not bob's: he cannot delete or upload to it.
          assertError(
            await call(app, "DELETE", "/v1/images/deb?owner=alice", {
              headers: BOB,
            }),
            403,
            undefined,
            /not bob's/,
          );
          assert.equal(
            (await call(app, "DELETE", "/v1/images/deb", { headers: BOB }))
              .status,
            404,
          );
          const unpub = await call(
            app,
            "POST",
            "/v1/images/deb/unpublish?owner=alice",
            { headers: ADMIN },
          );
          assert.equal(unpub.body.public, false);
          assert.equal(
            (await call(app, "GET", "/v1/images/deb", { headers: BOB })).status,
            404,
          );
          const del = await call(app, "DELETE", "/v1/images/deb", {
            headers: ALICE,
          });
          assert.deepEqual(del.body, { deleted: "deb" });
          assert.equal(
            (await call(app, "GET", "/v1/images/deb", { headers: ALICE }))
              .status,
            404,
          );
        },
      );

      await step(
        "bad names and paths in file are 400 naming the field",
        async () => {
          const { app, store } = imageApp(env, dir);
          const before = await dump(store);
          for (
            const [json, field] of [
              [{ name: "Bad_Name" }, "name"],
              [{ name: "x", file: "../../etc/passwd" }, "file"],
              [{ name: "x", file: "a/b.qcow2" }, "file"],
              [{ name: "x", file: ".." }, "file"],
              [{ name: "x", file: "/etc/passwd" }, "file"],
              [{ name: "x", url: "ftp://example.com/a" }, "url"],
              [{ name: "x", url: "file:///etc/passwd" }, "url"],
              [{ name: "x", file: "a", url: "http://example.com/a" }, "url"],
              [{ name: "x", source: "y" }, "source"],
            ] as const
          ) {
            const r = await call(app, "POST", "/v1/images", {
              json,
              headers: ALICE,
            });
            assertError(r, 400, field);
          }
          assertError(
            await call(app, "GET", "/v1/images/Bad_Name", { headers: ALICE }),
            400,
            "name",
          );
          assert.deepEqual(await dump(store), before);
        },
      );

      await step("file: taken from the user's upload directory", async () => {
        const { app, store } = imageApp(env, dir, { maxUploadBytes: 1000 });
        const up = `${dir}/alice/upload`;
        await Deno.mkdir(up, { recursive: true });
        await Deno.writeFile(`${up}/disk.qcow2`, new Uint8Array(600));
        const made = await call(app, "POST", "/v1/images", {
          json: { name: "d1", file: "disk.qcow2" },
          headers: ALICE,
        });
        assert.equal(made.status, 201, JSON.stringify(made.body));
        assert.equal(made.body.image.state, "importing");
        assert.deepEqual(made.body.image.source, {
          kind: "file",
          file: "disk.qcow2",
        });
        const staged = `${dir}/.incoming/alice/d1`;
        // The user is not shown the host's path; the task holds it.
        assert.deepEqual(made.body.task.payload, {
          image: "alice/d1",
          file: "<host path>",
        });
        assert.equal(made.body.task.kind, "image.import");
        assert.equal(made.body.image.task, made.body.task.id);
        const task = await store.get(keys.task(made.body.task.id), Task);
        assert.equal(task?.value.state, "queued");
        assert.deepEqual(task?.value.payload, {
          image: "alice/d1",
          file: staged,
        });
        assert.equal((await Deno.stat(staged)).size, 600);
        assert.equal(
          await Deno.stat(`${up}/disk.qcow2`).catch(() => null),
          null,
        );
        // Refused: what is not one regular file of the user's own.
        await Deno.symlink("/etc/passwd", `${up}/link.qcow2`);
        await Deno.mkdir(`${up}/sub`);
        await Deno.writeFile(`${up}/big.qcow2`, new Uint8Array(1001));
        await Deno.writeFile(`${up}/a.qcow2`, new Uint8Array(10));
        await Deno.link(`${up}/a.qcow2`, `${up}/b.qcow2`);
        const before = await dump(store);
        for (
          const [file, why, headers] of [
            ["link.qcow2", /symbolic link/, ALICE],
            ["sub", /not a regular file/, ALICE],
            ["big.qcow2", /1001 bytes, over the limit of 1000/, ALICE],
            ["a.qcow2", /other hard links/, ALICE],
            ["none.qcow2", /no such file/, ALICE],
            ["big.qcow2", /bob has no upload directory/, BOB],
          ] as const
        ) {
          const r = await call(app, "POST", "/v1/images", {
            json: { name: "d2", file },
            headers,
          });
          assertError(r, 400, "file", why);
        }
        assert.deepEqual(await dump(store), before);
        assert.ok((await Deno.lstat(`${up}/link.qcow2`)).isSymlink);
        assert.equal((await Deno.stat(`${up}/big.qcow2`)).size, 1001);
      });

      await step(
        "delete: 409 while the image is being imported, nothing changed",
        async () => {
          const { app, store } = imageApp(env, dir);
          await putImage(store, "alice", "busy", {
            state: "importing",
            task: "t-import-1",
          });
          const before = await dump(store);
          assertError(
            await call(app, "DELETE", "/v1/images/busy", { headers: ALICE }),
            409,
            undefined,
            /being imported \(task t-import-1\)/,
          );
          assert.deepEqual(await dump(store), before);
        },
      );

      await step("delete: 409 naming the VMs that use the image", async () => {
        const { app, store } = imageApp(env, dir);
        const img = await putImage(store, "alice", "base");
        const at = new Date().toISOString();
        const vm: Vm = {
          id: "vm-img-1",
          owner: "alice",
          spec: { name: "u", cpus: 1, memory: 128, image: "base" },
          imageRef: "alice/base",
          nics: [],
          desired: "running",
          status: { phase: "pending", updatedAt: at },
          createdAt: at,
        };
        await store.txn().put(keys.vm(vm.id), vm).commit();
        const before = await dump(store);
        assertError(
          await call(app, "DELETE", "/v1/images/base", { headers: ALICE }),
          409,
          undefined,
          /VMs vm-img-1 use it/,
        );
        assert.deepEqual(await dump(store), before);
        await store.txn().delete(keys.vm(vm.id)).commit();
        const del = await call(app, "DELETE", "/v1/images/base", {
          headers: ALICE,
        });
        assert.equal(del.status, 200, JSON.stringify(del.body));
        const { items } = await store.list(keys.tasks, Task);
        const t = items.map((i) => i.value).find((x) =>
          x.kind === "image.delete"
        );
        assert.deepEqual(t?.payload, { store: "file", storedAs: img.storedAs });
        assert.equal(await store.get(keys.image("alice/base"), Vm), null);
      });

      await step("VM create: image documents must be ready", async () => {
        const { app, store } = imageApp(env, dir);
        await putImage(store, "alice", "imp", { state: "importing" });
        await putImage(store, "alice", "bad", {
          state: "failed",
          reason: "not a qcow2 file",
        });
        await putImage(store, "alice", "good");
        await putImage(store, "bob", "pub", { public: true });
        await putImage(store, "bob", "priv");
        const vm = (image: string) =>
          call(app, "POST", "/v1/vms", {
            json: { name: "v", cpus: 1, memory: 128, image },
            headers: ALICE,
          });
        assertError(
          await vm("imp"),
          409,
          undefined,
          /image imp: it is importing/,
        );
        assertError(
          await vm("bad"),
          409,
          undefined,
          /failed \(not a qcow2 file\)/,
        );
        const good = await vm("good");
        assert.equal(good.status, 201, JSON.stringify(good.body));
        assert.equal(good.body.vm.imageRef, "alice/good");
        assert.equal((await vm("pub")).body.vm.imageRef, "bob/pub");
        // No document: an image installed on the hosts by hand, as before.
        for (const image of ["priv", "tiny"]) {
          const r = await vm(image);
          assert.equal(r.status, 201, JSON.stringify(r.body));
          assert.equal(r.body.vm.imageRef, undefined);
          assert.equal(r.body.vm.spec.image, image);
        }
      });

      await step(
        "url: refused addresses are 400; allowed, image.fetch",
        async () => {
          const { app, store } = imageApp(env, dir);
          const before = await dump(store);
          for (
            const url of [
              "http://127.0.0.1/a.qcow2",
              "http://2130706433/a.qcow2",
              "http://[::1]:8080/a.qcow2",
              "http://169.254.169.254/latest/meta-data/",
              "http://[fd00:ec2::254]/",
              "http://10.1.2.3/a.qcow2",
              "https://192.168.0.1/a.qcow2",
              "http://[fd12::1]/a.qcow2",
            ]
          ) {
            const r = await call(app, "POST", "/v1/images", {
              json: { name: "u1", url },
              headers: ALICE,
            });
            assertError(
              r,
              400,
              "url",
              /is a (loopback|metadata|private) address/,
            );
          }
          assert.deepEqual(await dump(store), before);
          const ok = await call(app, "POST", "/v1/images", {
            json: { name: "u1", url: "https://example.com/a.qcow2" },
            headers: ALICE,
          });
          assert.equal(ok.status, 201, JSON.stringify(ok.body));
          assert.equal(ok.body.task.kind, "image.fetch");
          assert.deepEqual(ok.body.task.payload, {
            image: "alice/u1",
            url: "https://example.com/a.qcow2",
          });
          assert.equal(ok.body.image.state, "importing");
          const priv = imageApp(env, dir, { allowPrivateUrls: true });
          const lo = await call(priv.app, "POST", "/v1/images", {
            json: { name: "u2", url: "http://127.0.0.1:1/a.qcow2" },
            headers: ALICE,
          });
          assert.equal(lo.status, 201, JSON.stringify(lo.body));
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }));
