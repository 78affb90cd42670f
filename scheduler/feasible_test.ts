/**
 * Unit tests of feasible.ts: which hosts count as live (`isLive`), which a
 * need fits on (`fits`, `feasible`, disk and public bridges), and `without`.
 */
import assert from "node:assert/strict";
import type { Alloc } from "../core/schemas.ts";
import { cand, host } from "./_fixtures.ts";
import { feasible, fits, isLive, noFitReason, without } from "./feasible.ts";
import { NO_ALLOC, reserve } from "./resources.ts";

const one = { cpus: 1, memoryMiB: 128 };

Deno.test("isLive() takes only serving, active hosts", () => {
  assert.equal(isLive(cand("a", 4, 1024)), true);
  // Not alive, or handing over (the cache sets alive from serving()).
  assert.equal(isLive({ ...cand("a", 4, 1024), alive: false }), false);
  // Draining, as a host in an ordered shutdown is.
  assert.equal(
    isLive({ ...cand("a", 4, 1024), host: host("a", 4, 1024, "draining") }),
    false,
  );
});

Deno.test("feasible() keeps live hosts the need fits on, in order", () => {
  const cs = [
    cand("full", 2, 512, 2, 128),
    { ...cand("dead", 64, 65536), alive: false },
    cand("ok2", 4, 1024),
    { ...cand("drain", 64, 65536), host: host("drain", 64, 65536, "draining") },
    cand("ok1", 4, 1024),
  ];
  assert.deepEqual(feasible(cs, one).map((c) => c.host.name), ["ok2", "ok1"]);
  assert.equal(fits(cand("exact", 1, 128), one), true);
  assert.equal(fits(cand("short", 1, 127), one), false);
});

Deno.test("without() leaves out the avoided host only", () => {
  const cs = [cand("a", 4, 1024), cand("b", 4, 1024)];
  assert.deepEqual(without(cs, "a").map((c) => c.host.name), ["b"]);
  assert.equal(without(cs), cs);
});

Deno.test("fits() wants every public bridge the need names", () => {
  const need = { ...one, bridges: ["pub0", "pub1"] };
  const c = (publicBridges?: string[]) => ({
    ...cand("a", 4, 1024),
    host: {
      ...host("a", 4, 1024),
      ...(publicBridges ? { publicBridges } : {}),
    },
  });
  assert.equal(fits(c(), need), false);
  assert.equal(fits(c(["pub0"]), need), false);
  assert.equal(fits(c(["pub1", "pub0", "pub2"]), need), true);
  assert.match(noFitReason([c()], need), /public bridge\(s\) pub0, pub1/);
});

Deno.test("local disk counts only on hosts that track it", () => {
  const disk = (name: string, diskMiB: number, vms: Alloc["vms"] = {}) => ({
    host: host(name, 8, 8192, "active", diskMiB),
    alive: true,
    alloc: { ...NO_ALLOC, vms },
  });
  const need = { cpus: 1, memoryMiB: 128, diskMiB: 10_000 };
  assert.equal(fits(disk("small", 5_000), need), false);
  assert.equal(
    fits(
      disk("used", 20_000, { x: { cpus: 1, memoryMiB: 1, diskMiB: 15_000 } }),
      need,
    ),
    false,
  );
  assert.equal(fits(disk("big", 20_000), need), true);
  assert.equal(fits(cand("shared", 8, 8192), need), true);
  assert.match(
    noFitReason([disk("small", 5_000)], need),
    /10000 MiB free disk .*largest free: 8 CPU\(s\), 8192 MiB, 5000 MiB disk on small/,
  );
});

Deno.test("a 2-core host with cpuRatio 4 takes eight 1-CPU VMs, then refuses", () => {
  const h = {
    ...host("h", 2, 4096),
    allocation: { cpuRatio: 4, memoryRatio: 1, reservedMemoryMiB: 512 },
  };
  let alloc: Alloc | null = null;
  let placed = 0;
  while (fits({ host: h, alloc }, one) && placed < 100) {
    alloc = reserve(alloc, one);
    placed++;
  }
  assert.equal(placed, 8);
  assert.match(
    noFitReason([{ host: h, alive: true, alloc }], one),
    /largest free: 0 CPU\(s\), 2560 MiB on h/,
  );
  // Without the allocation (a worker of an older version): two.
  assert.equal(fits({ host: host("h", 2, 4096), alloc: alloc! }, one), false);
  alloc = reserve(null, one);
  alloc = reserve(alloc, one);
  assert.equal(fits({ host: host("h", 2, 4096), alloc }, one), false);
});

Deno.test("a host whose memory (less the reserve) is full refuses a VM with cores to spare", () => {
  const h = {
    ...host("h", 2, 1024),
    allocation: { cpuRatio: 4, memoryRatio: 1, reservedMemoryMiB: 512 },
  };
  let alloc: Alloc | null = null;
  for (let i = 0; i < 4; i++) {
    assert.equal(fits({ host: h, alloc }, one), true, `vm ${i}`);
    alloc = reserve(alloc, one);
  }
  assert.equal(fits({ host: h, alloc }, one), false);
  assert.match(
    noFitReason([{ host: h, alive: true, alloc }], one),
    /largest free: 4 CPU\(s\), 0 MiB on h/,
  );
  // memoryRatio 1.5 makes room for two more.
  const over = { ...h, allocation: { ...h.allocation, memoryRatio: 1.5 } };
  assert.equal(fits({ host: over, alloc }, one), true);
});
