/**
 * Tests of loadHostKey() (api/identity.ts): the identity key file is created
 * once, mode 0600, and read after.
 */
import assert from "node:assert/strict";
import { loadHostKey } from "./identity.ts";

Deno.test("loadHostKey() creates a 0600 key file once and reads it after", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-identity-key-" });
  try {
    const path = `${dir}/sub/identity.key`;
    const warnings: string[] = [];
    const log = {
      debug: () => {},
      info: () => {},
      warn: (msg: string) => void warnings.push(msg),
      error: () => {},
      child: () => log,
    };
    await loadHostKey(path, log);
    const text = await Deno.readTextFile(path);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal(warnings.length, 1);
    await loadHostKey(path, log);
    assert.equal(await Deno.readTextFile(path), text);
    assert.equal(warnings.length, 1);
    await Deno.writeTextFile(path, "not a key");
    await assert.rejects(loadHostKey(path, log), /Cannot read identity key/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
