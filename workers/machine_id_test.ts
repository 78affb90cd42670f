/**
 * Tests of workers/machine_id.ts: the machine's persistent id, and claiming a
 * host name against other machines' live leases.
 */
import assert from "node:assert/strict";
import { logger } from "../core/log.ts";
import type { Alive, Host } from "../core/schemas.ts";
import {
  claimHostName,
  HostInUseError,
  machineId,
  machineIdPath,
  nameClaim,
} from "./machine_id.ts";

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-machine-id-" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const host = (machineId?: string): Host => ({
  name: "h1",
  capacity: { cpus: 2, memoryMiB: 1024 },
  addresses: [],
  os: "linux",
  drivers: ["sim"],
  state: "active",
  registeredAt: "2026-01-01T00:00:00.000Z",
  incarnation: "7",
  ...(machineId ? { machineId } : {}),
});

const alive: Alive = {
  incarnation: "7",
  started: "2026-01-01T00:00:00.000Z",
  pid: 1234,
  lease: "7",
};

const A = "a".repeat(32);
const B = "b".repeat(32);

Deno.test("machineId() creates a random id once and keeps returning it", async () => {
  await withDir(async (dir) => {
    const id = await machineId(dir);
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.equal(await machineId(dir), id);
    assert.equal(await Deno.readTextFile(machineIdPath(dir)), `${id}\n`);
    // Nothing else is left in the directory.
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["machine-id"]);
    await withDir(async (other) => {
      assert.notEqual(await machineId(other), id);
    });
  });
});

Deno.test("machineId() gives one id to many callers creating it at once", async () => {
  await withDir(async (dir) => {
    const ids = await Promise.all(
      Array.from({ length: 20 }, () => machineId(dir)),
    );
    assert.equal(new Set(ids).size, 1);
    assert.equal(await machineId(dir), ids[0]);
  });
});

Deno.test("machineId() refuses a damaged file instead of making a new identity", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(machineIdPath(dir), "");
    await assert.rejects(
      machineId(dir),
      (err: Error) => err.message.startsWith(`Cannot read machine id ${dir}/`),
    );
    assert.equal(await Deno.readTextFile(machineIdPath(dir)), "");
  });
});

Deno.test("nameClaim() refuses a name alive on another machine, with who and since when", () => {
  assert.deepEqual(nameClaim("h1", B, host(A), alive), {
    ok: false,
    error: `Cannot start: host name h1 is in use by machine ${A} ` +
      "(alive since 2026-01-01T00:00:00.000Z); set worker.host to another name",
  });
});

Deno.test("nameClaim() lets a machine take over a name whose lease is gone", () => {
  assert.deepEqual(nameClaim("h1", B, host(A), undefined), {
    ok: true,
    takeover: A,
  });
});

Deno.test("nameClaim() accepts its own machine, a new name and a host document without machine id", () => {
  assert.deepEqual(nameClaim("h1", A, host(A), alive), { ok: true });
  assert.deepEqual(nameClaim("h1", A, undefined, undefined), { ok: true });
  assert.deepEqual(nameClaim("h1", A, host(), alive), { ok: true });
});

Deno.test("claimHostName() throws HostInUseError when refused and passes otherwise", () => {
  const log = logger({ test: "machine-id" });
  assert.throws(
    () =>
      claimHostName({
        host: "h1",
        machine: B,
        registered: host(A),
        alive,
        log,
      }),
    HostInUseError,
  );
  claimHostName({ host: "h1", machine: A, registered: host(A), alive, log });
  claimHostName({
    host: "h1",
    machine: B,
    registered: host(A),
    alive: undefined,
    log,
  });
});
