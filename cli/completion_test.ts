/** ucloud completion bash: the script, run by bash, completes the command tree. */
import assert from "node:assert/strict";
import { main } from "./main.ts";

/** What `ucloud completion bash` prints. */
async function script(): Promise<string> {
  let out = "";
  const code = await main(["completion", "bash"], {
    stdout: { write: (t) => out += t },
    stderr: { write: () => {} },
    env: {},
  });
  assert.equal(code, 0);
  return out;
}

/** The completions bash offers for `words`, the last one being typed. */
async function complete(source: string, words: string[]): Promise<string[]> {
  const file = await Deno.makeTempFile({ suffix: ".bash" });
  try {
    await Deno.writeTextFile(file, source);
    const quoted = words.map((w) => `'${w}'`).join(" ");
    const out = await new Deno.Command("bash", {
      args: [
        "-c",
        `source '${file}'; COMP_WORDS=(${quoted}); ` +
        `COMP_CWORD=${words.length - 1}; _ucloud; ` +
        'printf "%s\\n" "${COMPREPLY[@]}"',
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(out.stderr), "");
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean)
      .sort();
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("ucloud completion bash completes groups, commands and each command's flags", async () => {
  const source = await script();
  assert.match(source, /^complete -F _ucloud ucloud$/m);
  assert.deepEqual(await complete(source, ["ucloud", ""]), [
    "completion",
    "events",
    "help",
    "host",
    "image",
    "key",
    "login",
    "logout",
    "network",
    "quota",
    "task",
    "vm",
    "whoami",
  ]);
  assert.deepEqual(await complete(source, ["ucloud", "vm", "st"]), [
    "start",
    "stop",
  ]);
  assert.deepEqual(
    await complete(source, ["ucloud", "vm", "create", "--n"]),
    ["--name", "--network", "--no-wait"],
  );
  assert.deepEqual(await complete(source, ["ucloud", "key", ""]), [
    "add",
    "delete",
    "list",
    "show",
  ]);
  assert.deepEqual(
    await complete(source, ["ucloud", "key", "add", "--"]),
    ["--api", "--file", "--help", "--json", "--name"],
  );
  // A value flag's value is not a command word.
  assert.deepEqual(
    await complete(source, ["ucloud", "--api", "http://h", "host", "dr"]),
    ["drain"],
  );
  assert.deepEqual(await complete(source, ["ucloud", "whoami", "--"]), [
    "--api",
    "--help",
    "--json",
  ]);
  // Nothing after a flag that takes a value: the value is the user's.
  assert.deepEqual(
    await complete(source, ["ucloud", "vm", "create", "--name", ""]),
    [],
  );
});

Deno.test("ucloud completion refuses a shell it has no script for: exit 2", async () => {
  let err = "";
  const code = await main(["completion", "zsh"], {
    stdout: { write: () => {} },
    stderr: { write: (t) => err += t },
    env: {},
  });
  assert.equal(code, 2);
  assert.equal(
    err,
    "error: no completion for shell 'zsh': only bash is supported\n" +
      "Run 'ucloud completion --help' for usage.\n",
  );
});
