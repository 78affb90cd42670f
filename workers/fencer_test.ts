/** The fencer loop on a real sim VM (one plain process). */
import assert from "node:assert/strict";
import { monotonicMs } from "../core/clock.ts";
import { owns, SimDriver } from "../drivers/sim/driver.ts";
import { writeDeadline } from "./fence.ts";
import { runFencer } from "./fencer.ts";

const spec = {
  id: "vm-1",
  name: "a",
  cpus: 1,
  memoryMiB: 128,
  boot: { disk: "/dev/null", format: "raw" as const },
};

async function withFencer(
  f: (d: SimDriver, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "uc-fencer-" });
  const d = new SimDriver({ stateDir: dir });
  const ac = new AbortController();
  const done = runFencer({
    runDir: `${dir}/run`,
    stateDir: dir,
    driver: d,
    serialLogMaxBytes: 4096,
    everyMs: 20,
    capEveryMs: 50,
    signal: ac.signal,
  });
  try {
    await f(d, dir);
  } finally {
    ac.abort();
    await done;
    await d.fence();
    await Deno.remove(dir, { recursive: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("runFencer() compares the deadline file with CLOCK_BOOTTIME, never the wall clock", async () => {
  const wall = Date.now;
  try {
    await withFencer(async (d, dir) => {
      const h = await d.start(spec);
      // A deadline a minute ahead in boottime: as epoch ms it is 1970, and
      // the wall clock is even pushed to the far future. No fencing.
      Date.now = () => wall() + 10 * 365 * 86_400_000;
      await writeDeadline(`${dir}/run`, monotonicMs() + 60_000);
      await sleep(300);
      assert.ok(await owns(h.pid, h.pidfile), "fenced before the deadline");
      // Boottime passes the deadline while the wall clock says it is far
      // ahead (stepped back a year): fenced at once.
      Date.now = () => wall() - 365 * 86_400_000;
      await writeDeadline(`${dir}/run`, monotonicMs() - 1);
      const t = performance.now();
      while (await owns(h.pid, h.pidfile) && performance.now() - t < 3000) {
        await sleep(10);
      }
      assert.equal(await owns(h.pid, h.pidfile), false, "not fenced");
      assert.ok(performance.now() - t < 500, "fenced late");
    });
  } finally {
    Date.now = wall;
  }
});

Deno.test("runFencer() caps every VM's serial log, with or without a deadline", async () => {
  await withFencer(async (_d, dir) => {
    const log = `${dir}/vms/vm-1/serial.log`;
    await Deno.mkdir(`${dir}/vms/vm-1`, { recursive: true });
    await Deno.writeTextFile(log, "x".repeat(10_000));
    const t = performance.now();
    while ((await Deno.stat(log)).size > 0 && performance.now() - t < 3000) {
      await sleep(20);
    }
    assert.equal((await Deno.stat(log)).size, 0);
    assert.equal((await Deno.stat(`${log}.1`)).size, 4096);
  });
});

/**
 * Runs a fencer on its own while `meanwhile` runs; resolves with how long
 * the fencer ran (ms), or null when it still ran after `limitMs`.
 */
async function ranFor(
  meanwhile: (d: SimDriver, dir: string) => Promise<void>,
  limitMs = 30_000,
): Promise<number | null> {
  const dir = await Deno.makeTempDir({ prefix: "uc-fencer-" });
  const d = new SimDriver({ stateDir: dir });
  const ac = new AbortController();
  const t = performance.now();
  const done = runFencer({
    runDir: `${dir}/run`,
    stateDir: dir,
    driver: d,
    serialLogMaxBytes: 4096,
    everyMs: 20,
    capEveryMs: 50,
    signal: ac.signal,
  }).then(() => performance.now() - t);
  try {
    await meanwhile(d, dir);
    return await Promise.race([done, sleep(limitMs).then(() => null)]);
  } finally {
    ac.abort();
    await done;
    await d.fence();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("runFencer() exits when the run and state dirs vanish after the worker stopped", async () => {
  const ms = await ranFor(async (d, dir) => {
    await writeDeadline(`${dir}/run`, monotonicMs() + 60_000);
    const h = await d.start(spec);
    // The worker stops; its last deadline passes and the VM is fenced.
    await writeDeadline(`${dir}/run`, monotonicMs() + 200);
    const t = performance.now();
    while (await owns(h.pid, h.pidfile) && performance.now() - t < 10_000) {
      await sleep(20);
    }
    assert.equal(await owns(h.pid, h.pidfile), false, "not fenced");
    // Then the host's tmpfs and state are wiped: no deadline, no VM.
    await Deno.remove(`${dir}/run`, { recursive: true });
    await Deno.remove(`${dir}/vms`, { recursive: true });
  });
  assert.notEqual(ms, null, "the fencer polls forever");
});

Deno.test("runFencer() exits when no deadline ever came and there is no VM", async () => {
  const ms = await ranFor(() => Promise.resolve());
  assert.notEqual(ms, null, "the fencer polls forever");
  assert.ok(ms! >= 5000, `exited after ${ms} ms, before the grace`);
});

Deno.test("runFencer() takes a deadline file that vanished for the last deadline it read", async () => {
  const ms = await ranFor(async (d, dir) => {
    await writeDeadline(`${dir}/run`, monotonicMs() + 60_000);
    const h = await d.start(spec);
    await writeDeadline(`${dir}/run`, monotonicMs() + 400);
    await sleep(100);
    // The file goes before the deadline passes: the VM is fenced anyway.
    await Deno.remove(`${dir}/run`, { recursive: true });
    const t = performance.now();
    while (await owns(h.pid, h.pidfile) && performance.now() - t < 10_000) {
      await sleep(20);
    }
    assert.equal(await owns(h.pid, h.pidfile), false, "not fenced");
  }, 0);
  assert.equal(ms, null);
});
