/**
 * Unit tests of checker.ts: which violations `check()` reports (stuck,
 * leaked, lost) from hand-made snapshots of the keyspace and processes.
 */
import assert from "node:assert/strict";
import { check, type Expectations, type Violation } from "./checker.ts";
import type { VmProc } from "./procs.ts";

const NET = "net-1";
const MAC = "02:c1:0d:00:00:01";

/** A clean cluster: one running VM on h1 with a NIC, one network. */
function clean(): { kv: Record<string, string>; procs: VmProc[] } {
  const j = (v: unknown) => JSON.stringify(v);
  return {
    kv: {
      "vm/vm-1": j({
        id: "vm-1",
        owner: "alice",
        desired: "running",
        nics: [{ slot: 0, network: NET, mac: MAC, ipv4: "10.0.0.2" }],
        status: { phase: "running", host: "h1" },
      }),
      "alloc/h1": j({ vms: { "vm-1": { cpus: 1, memoryMiB: 128 } } }),
      "vmowner/alice/vm-1": j({}),
      "alloc/h2": j({ vms: {} }),
      [`network/${NET}`]: j({
        id: NET,
        prefix: "fdc1:d00::/64",
        vni: 100,
        vms: ["vm-1"],
      }),
      "ipam/vni/100": j({ network: NET }),
      "ipam/prefix/fdc1:d00::_64": j({ network: NET }),
      [`ipam/mac/${MAC}`]: j({ network: NET, vm: "vm-1", slot: 0 }),
      [`ipam/v4/${NET}/10.0.0.2`]: j({ network: NET, vm: "vm-1", slot: 0 }),
      "task/t-1": j({
        id: "t-1",
        kind: "vm.start",
        target: "h1",
        state: "succeeded",
        attempts: 1,
        maxAttempts: 5,
        payload: { vm: "vm-1" },
      }),
    },
    procs: [{ pid: 10, vm: "vm-1", host: "h1" }],
  };
}

const want: Expectations = {
  vms: [{ id: "vm-1", desired: "running" }],
  networks: [{ id: NET, deleted: false }],
};

const summary = (vs: Violation[]) => vs.map((v) => `${v.kind} ${v.subject}`);

Deno.test("check() finds nothing in a clean cluster", () => {
  assert.deepEqual(check(clean(), want), []);
});

Deno.test("check() calls a VM without its process stuck and a stray process leaked", () => {
  const s = clean();
  assert.deepEqual(summary(check({ ...s, procs: [] }, want)), [
    "stuck vm vm-1",
  ]);
  const stray = [...s.procs, { pid: 11, vm: "vm-1", host: "h2" }];
  assert.deepEqual(summary(check({ ...s, procs: stray }, want)), [
    "stuck vm vm-1",
    "leaked process of vm vm-1",
  ]);
});

Deno.test("check() calls a missing VM, a deleted one still there and a changed desired state lost", () => {
  const s = clean();
  const { "vm/vm-1": _, ...rest } = s.kv;
  assert.ok(
    summary(check({ kv: rest, procs: [] }, want)).includes("lost vm vm-1"),
  );
  const deleted = {
    ...want,
    vms: [{ id: "vm-1", desired: "deleted" as const }],
  };
  assert.deepEqual(summary(check(s, deleted)), ["lost vm vm-1"]);
  const stopped = {
    ...want,
    vms: [{ id: "vm-1", desired: "stopped" as const }],
  };
  const [v] = check(s, stopped);
  assert.equal(v.kind, "lost");
  assert.match(
    v.detail,
    /desired is running in etcd, the workload last set stopped/,
  );
});

Deno.test("check() calls keys of finished or absent documents leaked and unfinished tasks stuck", () => {
  const s = clean();
  const kv = {
    ...s.kv,
    "alloc/h2": JSON.stringify({
      vms: { "vm-9": { cpus: 1, memoryMiB: 128 } },
    }),
    "claim/t-1": JSON.stringify({ worker: "h1", lease: "1" }),
    "queue/h1/t-1": "{}",
    "task/t-2": JSON.stringify({
      id: "t-2",
      kind: "vm.stop",
      target: "h3",
      state: "queued",
      attempts: 0,
      maxAttempts: 5,
      payload: { vm: "vm-1" },
    }),
    "queue/h3/t-2": "{}",
    "netmember/net-9/h1": "{}",
  };
  assert.deepEqual(summary(check({ kv, procs: s.procs }, want)).sort(), [
    "leaked key alloc/h2",
    "leaked key claim/t-1",
    "leaked key netmember/net-9/h1",
    "leaked key queue/h1/t-1",
    "stuck task t-2",
  ]);
});

Deno.test("check() calls the NIC addresses of a VM deleted by failover leaked (issue 9, defect 3)", () => {
  const s = clean();
  const { "vm/vm-1": _, "vmowner/alice/vm-1": _o, ...kv } = s.kv;
  kv["alloc/h1"] = JSON.stringify({ vms: {} });
  const gone = { ...want, vms: [{ id: "vm-1", desired: "deleted" as const }] };
  assert.deepEqual(summary(check({ kv, procs: [] }, gone)).sort(), [
    `leaked key ipam/mac/${MAC}`,
    `leaked key ipam/v4/${NET}/10.0.0.2`,
    `leaked network ${NET}`,
  ]);
});

Deno.test("check() calls a NIC without its address entries and a network without its VNI lost", () => {
  const s = clean();
  const { [`ipam/mac/${MAC}`]: _, "ipam/vni/100": _v, ...kv } = s.kv;
  assert.deepEqual(summary(check({ kv, procs: s.procs }, want)).sort(), [
    `lost network ${NET}`,
    "lost vm vm-1",
  ]);
});

Deno.test("check() calls a host without its alive key stuck", () => {
  const s = clean();
  const kv = { ...s.kv, "alive/h1": JSON.stringify({ lease: "1" }) };
  assert.deepEqual(
    summary(check({ kv, procs: s.procs }, { ...want, hosts: ["h1", "h2"] })),
    ["stuck host h2"],
  );
});

Deno.test("check() calls a placed VM without a reservation lost and documents nobody made leaked", () => {
  const s = clean();
  const kv = {
    ...s.kv,
    "alloc/h1": JSON.stringify({ vms: {} }),
    "vm/vm-2": JSON.stringify({
      id: "vm-2",
      owner: "alice",
      desired: "stopped",
      status: { phase: "stopped" },
    }),
    "vmowner/alice/vm-2": "{}",
  };
  assert.deepEqual(summary(check({ kv, procs: s.procs }, want)).sort(), [
    "leaked vm vm-2",
    "lost vm vm-1",
  ]);
});

Deno.test("check() takes a netvm key as membership and calls one without a NIC leaked, a NIC without one lost", () => {
  const s = clean();
  const net = JSON.parse(s.kv[`network/${NET}`]);
  const kv = {
    ...s.kv,
    [`network/${NET}`]: JSON.stringify({ ...net, vms: [] }),
    [`netvm/${NET}/vm-1`]: "{}",
  };
  assert.deepEqual(summary(check({ kv, procs: s.procs }, want)), []);
  assert.deepEqual(
    summary(
      check({
        kv: { ...kv, [`netvm/${NET}/vm-2`]: "{}" },
        procs: s.procs,
      }, want),
    ),
    [`leaked key netvm/${NET}/vm-2`],
  );
  const { [`netvm/${NET}/vm-1`]: _, ...lost } = kv;
  assert.deepEqual(summary(check({ kv: lost, procs: s.procs }, want)), [
    "lost vm vm-1",
  ]);
});

Deno.test("check() takes allocvm entries as reservations and calls sums unlike theirs lost or leaked", () => {
  const s = clean();
  const size = { cpus: 1, memoryMiB: 128 };
  const sums = (cpus: number, count: number) =>
    JSON.stringify({
      cpus,
      memoryMiB: 128 * count,
      diskMiB: 0,
      count,
      vms: {},
    });
  const kv = {
    ...s.kv,
    "alloc/h1": sums(1, 1),
    "allocvm/h1/vm-1": JSON.stringify(size),
  };
  assert.deepEqual(summary(check({ kv, procs: s.procs }, want)), []);
  assert.deepEqual(
    summary(
      check({ kv: { ...kv, "alloc/h1": sums(2, 2) }, procs: s.procs }, want),
    ),
    ["leaked key alloc/h1"],
  );
  assert.deepEqual(
    summary(
      check({ kv: { ...kv, "alloc/h1": sums(0, 0) }, procs: s.procs }, want),
    ),
    ["lost key alloc/h1"],
  );
  const { "allocvm/h1/vm-1": _, ...lost } = kv;
  assert.deepEqual(
    summary(
      check({ kv: { ...lost, "alloc/h1": sums(0, 0) }, procs: s.procs }, want),
    ),
    ["lost vm vm-1"],
  );
});

Deno.test("check() calls a VM without its owner index entry lost and an entry without its VM leaked", () => {
  const s = clean();
  const { "vmowner/alice/vm-1": _, ...bare } = s.kv;
  assert.deepEqual(summary(check({ kv: bare, procs: s.procs }, want)), [
    "lost vm vm-1",
  ]);
  const kv = { ...s.kv, "vmowner/bob/vm-1": "{}", "vmowner/bob/vm-9": "{}" };
  assert.deepEqual(summary(check({ kv, procs: s.procs }, want)).sort(), [
    "leaked key vmowner/bob/vm-1",
    "leaked key vmowner/bob/vm-9",
  ]);
});
