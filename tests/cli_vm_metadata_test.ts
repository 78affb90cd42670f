/**
 * `ucloud vm create --key ... --user-data FILE` and `vm show` (cli/main.ts)
 * against the real API (createApp on a real etcd): the keys and the user
 * data reach the VM, `vm show` prints the keys and the user data's size
 * and SHA-256 (as sha256sum computes it), and a binary, too large or
 * missing file is refused before any request.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { main } from "../cli/main.ts";
import { keys } from "../core/keys.ts";
import { UserData } from "../core/schemas.ts";
import { sshKeygen } from "../resources/keys/_keygen.ts";
import { headerAuth, noSanitize } from "./helpers/api.ts";
import { withApiEnv } from "./helpers/api_env.ts";

/** sha256sum's hex digest of `file`. */
async function sha256sum(file: string): Promise<string> {
  const out = await new Deno.Command("sha256sum", { args: [file] }).output();
  assert.ok(out.success);
  return new TextDecoder().decode(out.stdout).split(" ")[0];
}

Deno.test({
  name: "ucloud vm create --key --user-data and vm show against the real API",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ connect, step }) => {
      const dir = await Deno.makeTempDir({ prefix: "ucloud-cli-vmmeta-" });
      const store = connect();
      const app = createApp({ store, auth: headerAuth });
      const requests: string[] = [];
      /** Runs `ucloud argv` as alice. */
      const ucloud = async (argv: string[]) => {
        let out = "";
        let err = "";
        const code = await main(argv, {
          fetch: (input, init) => {
            const req = new Request(input, init);
            req.headers.set("x-user", "alice");
            requests.push(`${req.method} ${new URL(req.url).pathname}`);
            return Promise.resolve(app.fetch(req));
          },
          env: { UCLOUD_API: "http://ucloud.test", XDG_CONFIG_HOME: dir },
          stdout: { write: (s) => out += s },
          stderr: { write: (s) => err += s },
          readStdin: () => Promise.resolve(""),
        });
        return { code, out, err };
      };
      const create = ["vm", "create", "--cpus", "1", "--memory", "128"];
      try {
        for (const name of ["k1", "k2", "k3"]) {
          const key = await sshKeygen(dir, "ed25519");
          const r = await ucloud([
            "key",
            "add",
            "--name",
            name,
            "--file",
            key.file,
          ]);
          assert.equal(r.code, 0, r.err);
        }
        const yaml = `${dir}/cloud.yaml`;
        const text =
          '#cloud-config\nwrite_files:\n  - path: /etc/ok\n    content: "ünïcode"\n';
        await Deno.writeTextFile(yaml, text);

        await step(
          "vm create sends the keys and the file; vm show prints keys, size and sha256",
          async () => {
            const r = await ucloud([
              ...create,
              "--name",
              "web1",
              "--key",
              "k2",
              "--key",
              "k1",
              "--user-data",
              yaml,
              "--no-wait",
            ]);
            assert.equal(r.code, 0, r.err);
            const id = /\((vm-[^)]+)\)/.exec(r.out)![1];
            const stored = await store.get(keys.userData(id), UserData);
            assert.equal(stored?.value.data, text);

            const show = await ucloud(["vm", "show", "web1"]);
            assert.equal(show.code, 0, show.err);
            assert.match(show.out, /^keys: +k2, k1$/m);
            const bytes = new TextEncoder().encode(text).length;
            assert.match(
              show.out,
              new RegExp(
                `^user data: +${bytes} bytes, sha256 ${await sha256sum(yaml)}$`,
                "m",
              ),
            );
            const json = JSON.parse(
              (await ucloud(["vm", "show", "web1", "--json"])).out,
            );
            assert.deepEqual(json.spec.keys, ["k2", "k1"]);
            assert.deepEqual(json.userData, {
              bytes,
              sha256: await sha256sum(yaml),
            });
          },
        );

        await step("without --key: all of the owner's keys", async () => {
          const r = await ucloud([...create, "--name", "web2", "--no-wait"]);
          assert.equal(r.code, 0, r.err);
          const show = await ucloud(["vm", "show", "web2"]);
          assert.match(
            show.out,
            /^keys: +all of the owner's \(as they are when read\)$/m,
          );
          assert.doesNotMatch(show.out, /^user data:/m);
        });

        await step(
          "a key alice does not have: the API's 400 names it",
          async () => {
            const r = await ucloud([
              ...create,
              "--name",
              "web3",
              "--key",
              "k1",
              "--key",
              "nope",
              "--no-wait",
            ]);
            assert.equal(r.code, 1);
            assert.match(
              r.err,
              /^error: Cannot find SSH key nope of alice \(field: keys\.1\)\n$/,
            );
          },
        );

        await step(
          "a binary, too large or missing file is refused before any request",
          async () => {
            const bin = `${dir}/image.bin`;
            await Deno.writeFile(
              bin,
              new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 1]),
            );
            const latin1 = `${dir}/latin1.txt`;
            await Deno.writeFile(
              latin1,
              new Uint8Array([0x63, 0x61, 0x66, 0xe9]),
            );
            const big = `${dir}/big.yaml`;
            await Deno.writeTextFile(big, "x".repeat(64 * 1024 + 1));
            const before = requests.length;
            const cases: [string, RegExp][] = [
              [
                bin,
                /^error: .*image\.bin is not text: user data must be UTF-8 text \(a cloud-config or a script\); binary files are refused\n$/,
              ],
              [latin1, /latin1\.txt is not text/],
              [
                big,
                /^error: .*big\.yaml has 65537 bytes: user data has at most 65536 \(64 KiB\)\n$/,
              ],
              [`${dir}/none.yaml`, /^error: cannot read .*none\.yaml: /],
            ];
            for (const [file, message] of cases) {
              const r = await ucloud([
                ...create,
                "--name",
                "web4",
                "--user-data",
                file,
              ]);
              assert.equal(r.code, 1, file);
              assert.match(r.err, message);
            }
            assert.equal(requests.length, before, "no request was sent");
          },
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});
