/** parseArgs() of the key commands. */
import assert from "node:assert/strict";
import { parseArgs } from "./parse.ts";
import { usageError } from "./_test_api.ts";

Deno.test("parseArgs() reads key add, list, show and delete", () => {
  assert.deepEqual(
    parseArgs(["key", "add", "--name", "k1", "--file", "/k.pub"]),
    {
      api: undefined,
      json: false,
      command: "key add",
      name: "k1",
      file: "/k.pub",
    },
  );
  assert.deepEqual(parseArgs(["key", "add", "--name=k1", "--file=-"]), {
    api: undefined,
    json: false,
    command: "key add",
    name: "k1",
    file: "-",
  });
  assert.deepEqual(parseArgs(["key", "list", "--json"]), {
    api: undefined,
    json: true,
    command: "key list",
  });
  for (const command of ["show", "delete"]) {
    assert.deepEqual(parseArgs(["key", command, "k1"]), {
      api: undefined,
      json: false,
      command: `key ${command}`,
      key: "k1",
    });
    usageError(["key", command], "missing key name");
    usageError(["key", command, "a", "b"], "unexpected argument 'b'");
  }
});

Deno.test("parseArgs() rejects key add without its flags or with a bad name", () => {
  const cases: [string[], string | RegExp][] = [
    [["--file", "/k.pub"], "missing required flag --name"],
    [["--name", "k1"], "missing required flag --file"],
    [[], "missing required flag --name, --file"],
    [["--name", "K1", "--file", "/k.pub"], /^--name must be 1-63 lowercase/],
    [["--name", "k1", "--file", ""], "--file must not be empty"],
    [["--name", "k1", "--file", "/k.pub", "x"], "unexpected argument 'x'"],
    [
      ["--name", "k1", "--file", "/k.pub", "--network", "lan"],
      "--network is not a flag of 'ucloud key add'",
    ],
  ];
  for (const [argv, message] of cases) {
    const err = usageError(["key", "add", ...argv], message);
    assert.deepEqual(err.topic, ["key", "add"]);
  }
  usageError(["key", "list", "k1"], "unexpected argument 'k1'");
  usageError(["key", "rename", "k1"], "unknown command 'key rename'");
  assert.deepEqual(usageError(["key"], "missing key command").topic, ["key"]);
});
