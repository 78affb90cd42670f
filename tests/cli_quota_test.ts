/**
 * `ucloud quota show | set` (cli/main.ts) against the real API (createApp
 * on a real etcd): a user sees their own limits and usage, an admin sets
 * one limit and the others stay, `unlimited` and `default`, a user cannot
 * set a quota, a create over quota says what is used and allowed, and an
 * admin lists the users with usage or own limits (`quota list`, `GET
 * /v1/users`), which a user may not.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { main } from "../cli/main.ts";
import { ConfigSchema } from "../core/config.ts";
import { headerAuth, noSanitize } from "./helpers/api.ts";
import { withApiEnv } from "./helpers/api_env.ts";

Deno.test({
  name: "ucloud quota: show and set against the real API",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ connect, step }) => {
      const dir = await Deno.makeTempDir({ prefix: "ucloud-cli-quota-" });
      const app = createApp({
        store: connect(),
        auth: headerAuth,
        config: {
          tasks: ConfigSchema.shape.tasks.parse(undefined),
          quota: { cpus: 4 },
        },
      });
      const ucloud = async (user: string, argv: string[]) => {
        let out = "";
        let err = "";
        const code = await main(argv, {
          fetch: (input, init) => {
            const req = new Request(input, init);
            req.headers.set("x-user", user);
            return Promise.resolve(app.fetch(req));
          },
          env: { UCLOUD_API: "http://ucloud.test", XDG_CONFIG_HOME: dir },
          stdout: { write: (s) => out += s },
          stderr: { write: (s) => err += s },
          readStdin: () => Promise.resolve(""),
        });
        return { code, out, err };
      };
      try {
        await step("quota show: your own limits and usage", async () => {
          const vm = await ucloud("bob", [
            "vm",
            "create",
            "--name",
            "w1",
            "--cpus",
            "2",
            "--memory",
            "128",
            "--no-wait",
          ]);
          assert.equal(vm.code, 0, vm.err);
          const r = await ucloud("bob", ["quota", "show"]);
          assert.equal(r.code, 0, r.err);
          assert.match(r.out, /^quota of bob$/m);
          assert.match(r.out, /^cpus\s+2\s+4\s+default$/m);
          assert.match(r.out, /^vms\s+1\s+unlimited\s+default$/m);
          assert.match(r.out, /^memoryMiB\s+128\s+unlimited\s+default$/m);
        });

        await step(
          "quota set: only an admin; one limit changes, the others stay",
          async () => {
            const no = await ucloud("bob", [
              "quota",
              "set",
              "bob",
              "--cpus",
              "64",
            ]);
            assert.equal(no.code, 1);
            assert.match(no.err, /bob is not an admin/);
            const a = await ucloud("root/admin", [
              "quota",
              "set",
              "bob",
              "--vms",
              "3",
            ]);
            assert.equal(a.code, 0, a.err);
            const b = await ucloud("root/admin", [
              "quota",
              "set",
              "bob",
              "--cpus",
              "unlimited",
              "--json",
            ]);
            assert.equal(b.code, 0, b.err);
            const q = JSON.parse(b.out);
            assert.deepEqual(q.own, { vms: 3, cpus: null });
            assert.equal(q.limits.cpus, null);
            const c = await ucloud("root/admin", [
              "quota",
              "set",
              "bob",
              "--cpus",
              "default",
            ]);
            assert.equal(c.code, 0, c.err);
            assert.match(c.out, /^cpus\s+2\s+4\s+default$/m);
            assert.match(c.out, /^vms\s+1\s+3\s+user$/m);
            const bad = await ucloud("root/admin", [
              "quota",
              "set",
              "bob",
              "--cpus",
              "-1",
            ]);
            assert.equal(bad.code, 2);
            assert.match(bad.err, /--cpus must be a whole number/);
          },
        );

        await step(
          "a create over quota says what is used and allowed",
          async () => {
            const r = await ucloud("bob", [
              "vm",
              "create",
              "--name",
              "w2",
              "--cpus",
              "3",
              "--memory",
              "128",
              "--no-wait",
            ]);
            assert.notEqual(r.code, 0);
            assert.match(
              r.err,
              /over quota for cpus: bob uses 2, asks for 3 more, allowed 4/,
            );
          },
        );

        await step("quota list: admins only, used/limit per user", async () => {
          const no = await ucloud("bob", ["quota", "list"]);
          assert.equal(no.code, 1);
          assert.match(no.err, /bob is not an admin/);
          // carol has own limits and holds nothing; bob holds a VM.
          const set = await ucloud("root/admin", [
            "quota",
            "set",
            "carol",
            "--vms",
            "0",
          ]);
          assert.equal(set.code, 0, set.err);
          const r = await ucloud("root/admin", ["quota", "list"]);
          assert.equal(r.code, 0, r.err);
          assert.match(r.out, /^USER\s+VMS\s+CPUS\s+MEMORYMIB/m);
          assert.match(r.out, /^bob\s+1\/3\*\s+2\/4\s+128\/unlimited\s/m);
          assert.match(r.out, /^carol\s+0\/0\*\s+0\/4\s/m);
          const j = await ucloud("root/admin", ["quota", "list", "--json"]);
          assert.deepEqual(
            JSON.parse(j.out).map((q: { user: string }) => q.user),
            ["bob", "carol"],
          );
        });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});
