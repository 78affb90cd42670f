/** The lease session against a real etcd started for each test. */
import assert from "node:assert/strict";
import { monotonicMs } from "./clock.ts";
import { startEtcd } from "./etcd_server.ts";
import { Session } from "./session.ts";
import { Store } from "./store.ts";

async function withStore(
  f: (store: Store, etcdPid: () => number) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "uc-session-" });
  const etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({
    endpoints: [etcd.endpoint],
    prefix: "/s",
    timeoutMs: 1000,
  });
  try {
    await f(store, () => etcd.pid);
  } finally {
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("Session keeps its deadline in CLOCK_BOOTTIME ms (monotonicMs), not epoch ms", async () => {
  await withStore(async (store) => {
    const seen: number[] = [];
    const before = monotonicMs();
    const s = await Session.open(store, {
      ttlSeconds: 2,
      marginMs: 500,
      onDeadline: (d) => seen.push(d),
    });
    try {
      await new Promise((r) => setTimeout(r, 800));
      const now = monotonicMs();
      assert.ok(seen.length >= 2, `${seen.length} deadlines`);
      for (const d of seen) {
        assert.ok(d >= before + 1500 - 10 && d <= now + 1500, `${d}`);
      }
      assert.equal(s.deadline, seen.at(-1));
      assert.ok(s.lastKeepAlive >= before && s.lastKeepAlive <= now);
    } finally {
      await s.close();
    }
  });
});

Deno.test("Session ends at its deadline although the wall clock stepped back 10 s (NTP)", async () => {
  await withStore(async (store, etcdPid) => {
    const s = await Session.open(store, { ttlSeconds: 2, marginMs: 500 });
    const wall = Date.now;
    try {
      await new Promise((r) => setTimeout(r, 700));
      // This process's wall clock steps back, then etcd stops answering.
      Date.now = () => wall() - 10_000;
      Deno.kill(etcdPid(), "SIGSTOP");
      const frozen = performance.now();
      try {
        while (!s.signal.aborted && performance.now() - frozen < 5000) {
          await new Promise((r) => setTimeout(r, 20));
        }
        const after = performance.now() - frozen;
        assert.ok(s.signal.aborted, "not aborted 5 s after the freeze");
        // Deadline = last acknowledged keep-alive + TTL - margin <= 1.5 s.
        assert.ok(after <= 1600, `aborted ${after} ms after the freeze`);
        assert.match(String(s.signal.reason), /deadline passed/);
      } finally {
        Deno.kill(etcdPid(), "SIGCONT");
      }
    } finally {
      Date.now = wall;
      await s.close();
    }
  });
});
