import assert from "node:assert/strict";
import { parseArgs, type Phase, PHASES } from "./options.ts";

Deno.test("parseArgs() runs every phase but churn, scale, debian-boot and web by default, and each of those alone when --only names it", () => {
  const optIn: Phase[] = ["churn", "scale", "debian-boot", "web"];
  assert.deepEqual(
    [...parseArgs([]).only],
    PHASES.filter((p) => !optIn.includes(p)),
  );
  const quick = [...parseArgs(["--quick"]).only];
  assert.ok(optIn.every((p) => !quick.includes(p)));
  for (const p of optIn) {
    assert.deepEqual([...parseArgs([`--only=${p}`]).only], [p]);
  }
});
