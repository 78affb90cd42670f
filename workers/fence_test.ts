/** The fencer process as the worker starts it (real processes). */
import assert from "node:assert/strict";
import {
  ensureFencer,
  type FencerOptions,
  fencerPidFile,
  readDeadline,
  writeDeadline,
} from "./fence.ts";

const FENCER = new URL("./fencer.ts", import.meta.url).pathname;

async function withDirs(f: (o: FencerOptions) => Promise<void>) {
  const stateDir = await Deno.makeTempDir({ prefix: "uc-fence-" });
  const o = {
    stateDir,
    runDir: `${stateDir}-run/x`,
    driver: "sim",
    serialLogMaxBytes: 65536,
  };
  try {
    await f(o);
  } finally {
    const pid = Number(
      await Deno.readTextFile(fencerPidFile(o.runDir)).catch(() => "0"),
    );
    if (pid > 1) Deno.kill(pid, "SIGKILL");
    await Deno.remove(stateDir, { recursive: true });
    await Deno.remove(`${stateDir}-run`, { recursive: true });
  }
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

Deno.test("writeDeadline() creates the run dir; readDeadline() reads it back", async () => {
  await withDirs(async (o) => {
    assert.equal(await readDeadline(o.runDir), null);
    await writeDeadline(o.runDir, 1234);
    assert.equal(await readDeadline(o.runDir), 1234);
  });
});

Deno.test("ensureFencer() starts one fencer, returns it again, and replaces a stale one of the same state dir", async () => {
  await withDirs(async (o) => {
    // A fencer of an older version: other arguments after the script.
    const stale = new Deno.Command("bash", {
      args: ["-c", "sleep 600; :", FENCER, o.stateDir, "sim"],
      stdin: "null",
    }).spawn();
    try {
      const pid = await ensureFencer(o);
      assert.ok(alive(pid));
      assert.equal(
        Number(await Deno.readTextFile(fencerPidFile(o.runDir))),
        pid,
      );
      assert.equal((await stale.status).signal, "SIGKILL");
      assert.equal(await ensureFencer(o), pid, "one fencer per state dir");
      // Other options (a changed config) replace it too.
      const other = await ensureFencer({ ...o, serialLogMaxBytes: 4096 });
      assert.notEqual(other, pid);
      const t = performance.now();
      while (alive(pid) && performance.now() - t < 2000) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(!alive(pid));
    } finally {
      try {
        stale.kill("SIGKILL");
      } catch { /* killed by ensureFencer */ }
    }
  });
});
