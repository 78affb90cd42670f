/**
 * Tests of core/documents.ts: decoding stored documents with their schema
 * version, keeping fields this version does not know, and stamping the version
 * on write.
 */
import assert from "node:assert/strict";
import {
  decodeDocument,
  keepUnknown,
  SCHEMA_VERSION,
  stamp,
  unknownFields,
} from "./documents.ts";
import { Host, Network, Task, Vm } from "./schemas.ts";

/** A VM as a newer version might write it: unknown fields at every level. */
function futureVm() {
  return {
    schemaVersion: SCHEMA_VERSION + 5,
    id: "vm-1",
    owner: "alice",
    spec: { name: "web", cpus: 1, memory: 128, image: "tiny", gpu: "a100" },
    nics: [{
      slot: 0,
      network: "net-1",
      mac: "52:54:00:00:00:01",
      ipv6: "fd00::1",
      state: "attached",
      mtu: 9000,
    }],
    desired: "running",
    status: {
      phase: "running",
      host: "h1",
      handle: { pid: 1 },
      crashes: [{ at: "2026-01-01T00:00:00Z", reason: "x", signal: 9 }],
      updatedAt: "2026-01-01T00:00:00Z",
      migration: { to: "h2" },
    },
    createdAt: "2026-01-01T00:00:00Z",
    movable: true,
  };
}

Deno.test("decodeDocument() keeps unknown fields at every level of a VM and takes the schema version out", () => {
  const doc = futureVm();
  const d = decodeDocument(JSON.stringify(doc), Vm);
  assert.ok(d.ok);
  assert.equal(d.schemaVersion, SCHEMA_VERSION + 5);
  const { schemaVersion: _, ...want } = doc;
  assert.deepEqual(d.value, want);
  // A read-modify-write as the handlers do it keeps them too.
  const next = { ...d.value, status: { ...d.value.status, phase: "stopped" } };
  const back = JSON.parse(JSON.stringify(stamp(next)));
  assert.equal(back.schemaVersion, SCHEMA_VERSION);
  assert.equal(back.spec.gpu, "a100");
  assert.equal(back.nics[0].mtu, 9000);
  assert.deepEqual(back.status.migration, { to: "h2" });
  assert.equal(back.status.crashes[0].signal, 9);
  assert.equal(back.movable, true);
});

Deno.test("decodeDocument() keeps unknown fields of hosts, tasks and networks", () => {
  const host = {
    name: "h1",
    capacity: { cpus: 4, memoryMiB: 1024, gpus: 2 },
    addresses: [],
    os: "linux",
    drivers: ["qemu"],
    state: "active",
    registeredAt: "t",
    rack: "r1",
  };
  const h = decodeDocument(JSON.stringify(host), Host);
  assert.ok(h.ok);
  assert.deepEqual(h.value, host);
  const task = {
    id: "t-1",
    kind: "vm.stop",
    target: "h1",
    payload: { vm: "vm-1", graceful: true },
    state: "queued",
    attempts: 0,
    maxAttempts: 3,
    notBefore: 0,
    createdAt: "t",
    updatedAt: "t",
    history: [{ at: "t", state: "queued", trace: "abc" }],
    priority: 5,
  };
  const t = decodeDocument(JSON.stringify(task), Task);
  assert.ok(t.ok);
  assert.deepEqual(t.value, task);
  const net = {
    id: "net-1",
    name: "n",
    owner: "alice",
    kind: "private",
    prefix: "fd00::/64",
    ra: true,
    dhcp: { v6: false, v4: false, v4Lease: 60 },
    vms: [],
    createdAt: "t",
    mtu: 1400,
  };
  const n = decodeDocument(JSON.stringify(net), Network);
  assert.ok(n.ok);
  assert.deepEqual(n.value, net);
});

Deno.test("decodeDocument() reads a document without schemaVersion as version 0", () => {
  const { schemaVersion: _, ...old } = futureVm();
  const d = decodeDocument(JSON.stringify(old), Vm);
  assert.ok(d.ok);
  assert.equal(d.schemaVersion, 0);
});

Deno.test("decodeDocument() says why a document cannot be read", () => {
  const reason = (text: string) => {
    const d = decodeDocument(text, Vm);
    assert.ok(!d.ok);
    return d.reason;
  };
  assert.equal(reason("{not json"), "not JSON");
  assert.match(reason(JSON.stringify({ id: "vm-1" })), /^schema: owner: /);
  assert.match(
    reason(JSON.stringify({ ...futureVm(), schemaVersion: "2" })),
    /schemaVersion is not a version/,
  );
  assert.match(
    reason(JSON.stringify({
      ...futureVm(),
      status: { phase: "teleporting", updatedAt: "t" },
    })),
    /^schema: status\.phase: /,
  );
});

Deno.test("stamp() writes the current schemaVersion first and leaves non-objects alone", () => {
  assert.deepEqual(Object.keys(stamp({ a: 1, schemaVersion: 99 }) as object), [
    "schemaVersion",
    "a",
  ]);
  assert.deepEqual(stamp({ a: 1 }), { schemaVersion: SCHEMA_VERSION, a: 1 });
  assert.equal(stamp(1), 1);
  assert.deepEqual(stamp([1]), [1]);
  assert.equal(stamp(null), null);
});

Deno.test("keepUnknown() keeps a __proto__ key as plain data", () => {
  const raw = JSON.parse('{"a":1,"__proto__":{"polluted":true}}');
  const out = keepUnknown(raw, { a: 1 }) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(out), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(JSON.parse(JSON.stringify(out)), raw);
});

Deno.test("keepUnknown() does not pair array elements when the lengths differ", () => {
  assert.deepEqual(keepUnknown([{ a: 1, x: 1 }], [{ a: 1 }, { a: 2 }]), [
    { a: 1 },
    { a: 2 },
  ]);
});

Deno.test("unknownFields() returns the fields a schema does not name", () => {
  assert.deepEqual(
    unknownFields(Host, { name: "h1", rack: "r1", state: "active" }),
    { rack: "r1" },
  );
  assert.deepEqual(unknownFields(Host, undefined), {});
});
