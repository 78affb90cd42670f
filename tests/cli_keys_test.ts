/**
 * `ucloud key add | list | show | delete` (cli/main.ts) against the real
 * API (createApp on a real etcd), with keys made by ssh-keygen: the
 * fingerprints printed are ssh-keygen's, refused keys say why, a private
 * key file is refused before any request, and each user sees only their
 * own keys.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { main } from "../cli/main.ts";
import { sshKeygen } from "../resources/keys/_keygen.ts";
import { headerAuth, noSanitize } from "./helpers/api.ts";
import { withApiEnv } from "./helpers/api_env.ts";

Deno.test({
  name: "ucloud key: add, list, show and delete against the real API",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ connect, step }) => {
      const dir = await Deno.makeTempDir({ prefix: "ucloud-cli-keys-" });
      const app = createApp({ store: connect(), auth: headerAuth });
      const requests: string[] = [];
      /** Runs `ucloud argv` as `user`, with `stdin`. */
      const ucloud = async (user: string, argv: string[], stdin = "") => {
        let out = "";
        let err = "";
        const code = await main(argv, {
          fetch: (input, init) => {
            const req = new Request(input, init);
            req.headers.set("x-user", user);
            requests.push(`${req.method} ${new URL(req.url).pathname}`);
            return Promise.resolve(app.fetch(req));
          },
          env: { UCLOUD_API: "http://ucloud.test", XDG_CONFIG_HOME: dir },
          stdout: { write: (s) => out += s },
          stderr: { write: (s) => err += s },
          readStdin: () => Promise.resolve(stdin),
        });
        return { code, out, err };
      };
      try {
        const ed = await sshKeygen(dir, "ed25519", undefined, "alice@laptop");
        const rsa = await sshKeygen(dir, "rsa", 3072, "");

        await step(
          "key add prints the name and ssh-keygen's fingerprint",
          async () => {
            const r = await ucloud("alice", [
              "key",
              "add",
              "--name",
              "laptop",
              "--file",
              ed.file,
            ]);
            assert.equal(r.code, 0, r.err);
            assert.equal(
              r.out,
              `key laptop added: ${ed.fingerprint} (ssh-ed25519)\n`,
            );
            const piped = await ucloud(
              "alice",
              ["key", "add", "--name", "rsa", "--file", "-", "--json"],
              `${rsa.line}\n`,
            );
            assert.equal(piped.code, 0, piped.err);
            const doc = JSON.parse(piped.out);
            assert.equal(doc.fingerprint, rsa.fingerprint);
            assert.equal(doc.owner, "alice");
          },
        );

        await step("key list and show", async () => {
          const list = await ucloud("alice", ["key", "list"]);
          assert.equal(list.code, 0, list.err);
          const lines = list.out.trimEnd().split("\n");
          assert.match(
            lines[0],
            /^NAME +TYPE +FINGERPRINT +COMMENT +CREATED$/,
          );
          assert.match(
            lines[1],
            new RegExp(
              `^laptop +ssh-ed25519 +${
                ed.fingerprint.replace(/[+/]/g, "\\$&")
              } +alice@laptop +\\d{4}-`,
            ),
          );
          assert.match(lines[2], /^rsa +ssh-rsa +SHA256:\S+ +- +\d{4}-/);
          assert.equal(lines.length, 3);
          const json = await ucloud("alice", ["key", "list", "--json"]);
          assert.deepEqual(
            JSON.parse(json.out).items.map((k: { name: string }) => k.name),
            ["laptop", "rsa"],
          );
          const show = await ucloud("alice", ["key", "show", "laptop"]);
          assert.equal(show.code, 0, show.err);
          assert.match(show.out, /^name: +laptop$/m);
          assert.match(show.out, /^owner: +alice$/m);
          assert.match(
            show.out,
            new RegExp(
              `^fingerprint: +${ed.fingerprint.replace(/[+/]/g, "\\$&")}$`,
              "m",
            ),
          );
          assert.ok(
            show.out.split("\n").includes(`public key:  ${ed.line}`),
            show.out,
          );
        });

        await step(
          "refused keys say why; a private key is never sent",
          async () => {
            const weak = await sshKeygen(dir, "rsa", 1024);
            const r = await ucloud("alice", [
              "key",
              "add",
              "--name",
              "weak",
              "--file",
              weak.file,
            ]);
            assert.equal(r.code, 1);
            assert.match(
              r.err,
              /^error: publicKey: the RSA key has 1024 bits; at least 2048 are needed \(field: publicKey\)\n$/,
            );
            const taken = await ucloud("alice", [
              "key",
              "add",
              "--name",
              "laptop",
              "--file",
              rsa.file,
            ]);
            assert.equal(taken.code, 1);
            assert.match(taken.err, /alice already has a key of that name/);
            const before = requests.length;
            const secret = await ucloud("alice", [
              "key",
              "add",
              "--name",
              "oops",
              "--file",
              ed.file.replace(/\.pub$/, ""),
            ]);
            assert.equal(secret.code, 1);
            assert.match(secret.err, /holds a private key, which never leaves/);
            const missing = await ucloud("alice", [
              "key",
              "add",
              "--name",
              "gone",
              "--file",
              `${dir}/nope.pub`,
            ]);
            assert.equal(missing.code, 1);
            assert.match(missing.err, /^error: cannot read .*nope\.pub/);
            await Deno.writeTextFile(`${dir}/big.pub`, "x".repeat(20_000));
            const big = await ucloud("alice", [
              "key",
              "add",
              "--name",
              "big",
              "--file",
              `${dir}/big.pub`,
            ]);
            assert.match(
              big.err,
              /has 20000 bytes: a public key line has at most 16384/,
            );
            assert.equal(requests.length, before, "nothing was sent");
          },
        );

        await step("another user sees none of it; delete", async () => {
          const bob = await ucloud("bob", ["key", "show", "laptop"]);
          assert.equal(bob.code, 1);
          assert.match(bob.err, /^error: Cannot find key laptop\n$/);
          const bobList = await ucloud("bob", ["key", "list", "--json"]);
          assert.deepEqual(JSON.parse(bobList.out), { items: [] });
          const bobDel = await ucloud("bob", ["key", "delete", "laptop"]);
          assert.equal(bobDel.code, 1);
          const del = await ucloud("alice", ["key", "delete", "laptop"]);
          assert.equal(del.code, 0, del.err);
          assert.equal(del.out, "key laptop deleted\n");
          const after = await ucloud("alice", ["key", "show", "laptop"]);
          assert.equal(after.code, 1);
          const list = await ucloud("alice", ["key", "list", "--json"]);
          assert.deepEqual(
            JSON.parse(list.out).items.map((k: { name: string }) => k.name),
            ["rsa"],
          );
        });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});
