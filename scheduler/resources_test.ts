/**
 * Unit tests of resources.ts: a VM's need (`needOf`), reservations
 * (`reserve`, `release`, `usage`) and a host's free room (`free`).
 */
import assert from "node:assert/strict";
import type { Vm } from "../core/schemas.ts";
import { cand, host } from "./_fixtures.ts";
import {
  effective,
  free,
  needOf,
  NO_ALLOC,
  release,
  releaseLegacy,
  reserve,
  sizeOf,
  SUMS_ENTRY,
  usage,
} from "./resources.ts";

const one = { cpus: 1, memoryMiB: 128 };

Deno.test("reserve() adds the VM to the host's sums and release() takes it out", () => {
  const sums = (
    cpus: number,
    memoryMiB: number,
    diskMiB: number,
    count: number,
  ) => ({
    cpus,
    memoryMiB,
    diskMiB,
    count,
    vms: count
      ? {
        [`${SUMS_ENTRY}${count}`]: {
          cpus,
          memoryMiB,
          ...(diskMiB ? { diskMiB } : {}),
        },
      }
      : {},
  });
  assert.deepEqual(reserve(null, one), sums(1, 128, 0, 1));
  const two = reserve(reserve(null, one), { ...one, diskMiB: 2048 });
  assert.deepEqual(two, sums(2, 256, 2048, 2));
  assert.deepEqual(release(two, { ...one, diskMiB: 2048 }), sums(1, 128, 0, 1));
  assert.deepEqual(release(null, one), NO_ALLOC);
  assert.deepEqual(sizeOf({ ...one, bridges: ["pub0"] }), one);
});

Deno.test("usage() is the sums plus the entries an older version kept in the document", () => {
  assert.deepEqual(usage(reserve(null, one)), {
    cpus: 1,
    memoryMiB: 128,
    vms: 1,
  });
  assert.deepEqual(
    usage({
      ...reserve(null, one),
      vms: { a: { cpus: 1, memoryMiB: 100 }, b: { cpus: 2, memoryMiB: 28 } },
    }),
    {
      cpus: 4,
      memoryMiB: 256,
      vms: 3,
    },
  );
});

Deno.test("an older version's rewrite keeps the ~sums: entry, from which the sums and count are read", () => {
  const two = reserve(reserve(null, one), { ...one, diskMiB: 2048 });
  // The older version counts the entry as one VM of the total.
  assert.deepEqual(Object.values(two.vms), [
    { cpus: 2, memoryMiB: 256, diskMiB: 2048 },
  ]);
  // Its placement rewrote the document as `{vms}`: the sums' fields are
  // gone (zod defaults), its own VM is a legacy entry.
  const rewritten = {
    ...NO_ALLOC,
    vms: { ...two.vms, "vm-old": { cpus: 1, memoryMiB: 64 } },
  };
  assert.deepEqual(usage(rewritten), {
    cpus: 3,
    memoryMiB: 320,
    diskMiB: 2048,
    vms: 3,
  });
  const three = reserve(rewritten, one);
  assert.deepEqual(three, {
    cpus: 3,
    memoryMiB: 384,
    diskMiB: 2048,
    count: 3,
    vms: {
      "vm-old": { cpus: 1, memoryMiB: 64 },
      [`${SUMS_ENTRY}3`]: { cpus: 3, memoryMiB: 384, diskMiB: 2048 },
    },
  });
  assert.deepEqual(usage(releaseLegacy(three, "vm-old")), {
    cpus: 3,
    memoryMiB: 384,
    diskMiB: 2048,
    vms: 3,
  });
  assert.deepEqual(
    release(release(release(three, one), one), { ...one, diskMiB: 2048 }),
    { ...NO_ALLOC, vms: { "vm-old": { cpus: 1, memoryMiB: 64 } } },
  );
});

Deno.test("needOf() asks for disk in MiB only when the VM names a size", () => {
  const vm = (disk?: number): Vm => ({
    id: "vm-1",
    owner: "alice",
    spec: {
      name: "web1",
      cpus: 2,
      memory: 256,
      image: "tiny",
      ...(disk ? { disk } : {}),
    },
    nics: [],
    desired: "running",
    status: { phase: "pending", updatedAt: "2026-01-01T00:00:00Z" },
    createdAt: "2026-01-01T00:00:00Z",
  });
  assert.deepEqual(needOf(vm()), { cpus: 2, memoryMiB: 256 });
  assert.deepEqual(needOf(vm(20)), {
    cpus: 2,
    memoryMiB: 256,
    diskMiB: 20 * 1024,
  });
});

Deno.test("free() is capacity minus reservations, disk only where tracked", () => {
  assert.deepEqual(free(cand("a", 8, 8192, 3, 1024)), {
    cpus: 5,
    memoryMiB: 7168,
  });
  const disk = {
    host: host("d", 8, 8192, "active", 10_000),
    alloc: reserve(null, { cpus: 1, memoryMiB: 128, diskMiB: 4_000 }),
  };
  assert.deepEqual(free(disk), { cpus: 7, memoryMiB: 8064, diskMiB: 6_000 });
  // A precomputed usage is taken as is.
  assert.equal(free({ ...disk, used: { cpus: 8, memoryMiB: 0 } }).cpus, 0);
});

Deno.test("effective() counts cores × cpuRatio and (memory − reserved) × memoryRatio", () => {
  // A host of an older worker (no allocation): what it has, as before.
  assert.deepEqual(effective(host("old", 2, 2048)), {
    cpus: 2,
    memoryMiB: 2048,
  });
  const h = {
    ...host("h", 3, 4096, "active", 10_000),
    allocation: { cpuRatio: 1.5, memoryRatio: 1.5, reservedMemoryMiB: 1000 },
  };
  // Whole cores only (4.5 → 4); disk is not overcommitted.
  assert.deepEqual(effective(h), {
    cpus: 4,
    memoryMiB: 4644,
    diskMiB: 10_000,
  });
  // A reserve larger than the host leaves nothing, not a negative room.
  const tiny = {
    ...host("t", 1, 256),
    allocation: { cpuRatio: 4, memoryRatio: 2, reservedMemoryMiB: 512 },
  };
  assert.deepEqual(effective(tiny), { cpus: 4, memoryMiB: 0 });
  assert.deepEqual(free({ host: tiny, alloc: null }), {
    cpus: 4,
    memoryMiB: 0,
  });
});
