import assert from "node:assert/strict";
import { firstFit, usage } from "./placement.ts";
import type { Host } from "../core/schemas.ts";

const host = (
  name: string,
  cpus: number,
  mem: number,
  state: Host["state"] = "active",
): Host => ({
  name,
  capacity: { cpus, memoryMiB: mem },
  addresses: [],
  os: "linux",
  drivers: ["qemu"],
  state,
  registeredAt: "2026-01-01T00:00:00Z",
});

Deno.test("firstFit() picks the first live active host with room", () => {
  const r = firstFit([
    { host: host("b", 4, 1024), alive: true, alloc: null },
    {
      host: host("a", 2, 512),
      alive: true,
      alloc: { vms: { x: { cpus: 2, memoryMiB: 128 } } },
    },
    { host: host("0", 64, 65536), alive: false, alloc: null },
    { host: host("1", 64, 65536, "draining"), alive: true, alloc: null },
  ], { cpus: 1, memoryMiB: 128 });
  assert.deepEqual(r, { host: "b" });
});

Deno.test("firstFit() explains when nothing fits", () => {
  assert.deepEqual(firstFit([], { cpus: 1, memoryMiB: 128 }), {
    reason: "no live host is registered",
  });
  const r = firstFit([{ host: host("a", 1, 256), alive: true, alloc: null }], {
    cpus: 1,
    memoryMiB: 512,
  });
  assert.match((r as { reason: string }).reason, /1 free CPU\(s\) and 512 MiB/);
});

Deno.test("usage() sums reservations", () => {
  assert.deepEqual(
    usage({
      vms: { a: { cpus: 1, memoryMiB: 100 }, b: { cpus: 2, memoryMiB: 28 } },
    }),
    {
      cpus: 3,
      memoryMiB: 128,
      vms: 2,
    },
  );
});
