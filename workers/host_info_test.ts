/**
 * Tests of workers/host_info.ts: the state dir's filesystem size as df reports
 * it.
 */
import assert from "node:assert/strict";
import { run } from "../drivers/runner.ts";
import { diskMiB, hostInfo, parseDf } from "./host_info.ts";

Deno.test("hostInfo() reports the state dir's filesystem size from df", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-hostinfo-" });
  try {
    const { stdout } = await run("df", ["-P", "-m", dir]);
    const f = stdout.trim().split("\n").at(-1)!.split(/\s+/);
    // Filesystem, 1048576-blocks, Used, Available, Capacity, Mounted on.
    const expected = Number(f[2]) + Number(f[3]);
    assert.ok(expected > 0);
    assert.equal(await diskMiB(dir), expected);
    const info = await hostInfo({
      name: "h1",
      cpus: 2,
      memoryMiB: 512,
      stateDir: dir,
    });
    assert.deepEqual(info.capacity, {
      cpus: 2,
      memoryMiB: 512,
      diskMiB: expected,
    });
    // Config overrides df; a shared store reports no disk at all.
    const set = await hostInfo({ name: "h1", stateDir: dir, diskMiB: 4096 });
    assert.equal(set.capacity.diskMiB, 4096);
    const shared = await hostInfo({
      name: "h1",
      stateDir: dir,
      diskMiB: 4096,
      localDisk: false,
    });
    assert.equal("diskMiB" in shared.capacity, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseDf() reads used + available, even from a wrapped line", () => {
  assert.equal(
    parseDf(
      "Filesystem     1048576-blocks  Used Available Capacity Mounted on\n" +
        "/dev/vda               258020 24107     79791      24% /\n",
    ),
    24107 + 79791,
  );
  assert.equal(
    parseDf(
      "Filesystem 1048576-blocks Used Available Capacity Mounted on\n" +
        "server.example:/a/very/long/export/name\n" +
        "  1000 300 600 34% /mnt/my data\n",
    ),
    900,
  );
  assert.throws(() => parseDf("garbage"), /Cannot read the size/);
});
