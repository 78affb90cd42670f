import assert from "node:assert/strict";
import { parseArgs, PHASES } from "./options.ts";

Deno.test("parseArgs() runs every phase but debian-boot by default, and debian-boot alone with --only=debian-boot", () => {
  assert.deepEqual(
    [...parseArgs([]).only],
    PHASES.filter((p) => p !== "debian-boot"),
  );
  assert.deepEqual(
    [...parseArgs(["--quick"]).only].includes("debian-boot"),
    false,
  );
  assert.deepEqual([...parseArgs(["--only=debian-boot"]).only], [
    "debian-boot",
  ]);
});
