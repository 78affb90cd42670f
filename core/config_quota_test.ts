import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";

const noEnv = () => undefined;

Deno.test("parseConfig() quota: unlimited by default, limits from the file, bad ones refused", () => {
  assert.deepEqual(parseConfig({}, noEnv).quota, {});
  assert.deepEqual(
    parseConfig({ quota: { vms: 20, cpus: 0 } }, noEnv).quota,
    { vms: 20, cpus: 0 },
  );
  assert.throws(
    () => parseConfig({ quota: { cpus: -1 } }, noEnv),
    /quota\.cpus/,
  );
  assert.throws(
    () => parseConfig({ quota: { cores: 4 } }, noEnv),
    /quota: .*cores/,
  );
});
