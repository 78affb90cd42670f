/**
 * Tests of workers/images.ts: hand-installed kernels boot; a hand-installed
 * disk is refused (VMs would share it read-write).
 */
import assert from "node:assert/strict";
import { PermanentError } from "../tasks/context.ts";
import { resolveImage } from "./images.ts";

Deno.test("resolveImage() boots a hand-installed kernel and refuses a hand-installed disk.qcow2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uc-images-" });
  try {
    await Deno.mkdir(`${dir}/images/k`, { recursive: true });
    await Deno.writeTextFile(`${dir}/images/k/vmlinux`, "x");
    await Deno.writeTextFile(`${dir}/images/k/cmdline`, "console=ttyS0\n");
    assert.deepEqual(await resolveImage(dir, "k"), {
      kernel: `${dir}/images/k/vmlinux`,
      append: "console=ttyS0",
    });
    await Deno.mkdir(`${dir}/images/d`);
    await Deno.writeTextFile(`${dir}/images/d/disk.qcow2`, "x");
    await assert.rejects(
      resolveImage(dir, "d"),
      (e: Error) =>
        e instanceof PermanentError &&
        /import it with ucloud image create/.test(e.message),
    );
    await assert.rejects(resolveImage(dir, "none"), /is not installed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
