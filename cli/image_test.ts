/** parseArgs() of the image commands, and the sizes they show. */
import assert from "node:assert/strict";
import { formatSize } from "./image_transfer.ts";
import { parseArgs } from "./parse.ts";
import { usageError } from "./_test_api.ts";

Deno.test("parseArgs() reads image create, upload and the one-image commands", () => {
  const create = (argv: string[]) =>
    parseArgs(["image", "create", "--name", "deb12", ...argv]);
  assert.deepEqual(create([]), {
    api: undefined,
    json: false,
    command: "image create",
    input: { name: "deb12" },
    wait: null,
  });
  assert.deepEqual(
    create(["--file", "d.qcow2", "--wait", "--timeout", "60"]),
    {
      api: undefined,
      json: false,
      command: "image create",
      input: { name: "deb12", file: "d.qcow2" },
      wait: { timeoutSeconds: 60 },
    },
  );
  assert.deepEqual(
    (create(["--url", "https://example.com/d.qcow2"]) as { input: unknown })
      .input,
    { name: "deb12", url: "https://example.com/d.qcow2" },
  );
  assert.deepEqual(
    parseArgs(["image", "upload", "--name", "deb12", "./d.qcow2", "--wait"]),
    {
      api: undefined,
      json: false,
      command: "image upload",
      name: "deb12",
      path: "./d.qcow2",
      wait: { timeoutSeconds: 3600 },
    },
  );
  assert.deepEqual(
    parseArgs(["image", "publish", "deb12", "--owner", "alice"]),
    {
      api: undefined,
      json: false,
      command: "image publish",
      image: "deb12",
      owner: "alice",
    },
  );
});

Deno.test("parseArgs() rejects image input the API would refuse", () => {
  const cases: [string[], string | RegExp][] = [
    [["image", "create"], "missing required flag --name"],
    [["image", "create", "--name", "Deb"], /^--name must be 1-63 lowercase/],
    [
      ["image", "create", "--name", "d", "--file", "../etc/passwd"],
      /^--file must be a file name in your upload directory \(no path\)/,
    ],
    [
      ["image", "create", "--name", "d", "--file", ".."],
      /^--file must be a file name/,
    ],
    [
      ["image", "create", "--name", "d", "--file", "a", "--url", "http://x/"],
      "give --file or --url, not both",
    ],
    [
      ["image", "create", "--name", "d", "--url", "ftp://x/a"],
      /^--url must be an http or https URL/,
    ],
    [
      ["image", "create", "--name", "d", "--wait"],
      /^--wait needs --file or --url/,
    ],
    [["image", "upload", "--name", "d"], /missing/],
    [["image", "show"], /missing/],
    [["image", "delete", "d", "--owner", "A B"], /^--owner must be/],
  ];
  for (const [argv, message] of cases) usageError(argv, message);
});

Deno.test("formatSize() shows bytes in binary units", () => {
  assert.equal(formatSize(undefined), "-");
  assert.equal(formatSize(512), "512 B");
  assert.equal(formatSize(1536), "1.5 KiB");
  assert.equal(formatSize(10 * 1024 ** 3), "10.0 GiB");
});
