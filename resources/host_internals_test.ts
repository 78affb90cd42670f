import assert from "node:assert/strict";
import type { Task, Vm } from "../core/schemas.ts";
import { hideHostText, taskView, vmView } from "./host_internals.ts";

const bob = { name: "bob", admin: false };
const root = { name: "root", admin: true };

Deno.test("hideHostText() masks absolute paths and pids, not URLs, CIDRs or names", () => {
  assert.equal(
    hideHostText(
      "qemu pid 4242 exited: cannot open /var/lib/ucloud/vms/vm-1/qmp.sock (pid=17)",
    ),
    "qemu pid <hidden> exited: cannot open <host path> (pid=<hidden>)",
  );
  assert.equal(hideHostText("'/run/ucloud/x/fence'"), "'<host path>'");
  const kept = [
    "image alice/deb12 from https://example.org/a/b.qcow2",
    "network 2001:db8::/64 and 10.0.0.0/8",
    "moving off h1: host h1 is draining",
    "1/2 done",
  ];
  for (const k of kept) assert.equal(hideHostText(k), k);
});

Deno.test("vmView() and taskView() hide host internals from users, not admins", () => {
  const vm: Vm = {
    id: "vm-1",
    owner: "bob",
    spec: { name: "web", cpus: 1, memory: 128, image: "tiny" },
    nics: [],
    desired: "running",
    status: {
      phase: "running",
      host: "h1",
      incarnation: "7587",
      handle: { driver: "qemu", pid: 4242, qmp: "/var/lib/u/vm-1/qmp.sock" },
      reason: "restarted: qemu pid 41 exited",
      crashes: [{ at: "t", reason: "qemu pid 41 exited, see /var/log/x" }],
      updatedAt: "t",
    },
    createdAt: "t",
  };
  const seen = vmView(bob, vm);
  assert.equal(seen.status.handle, undefined);
  assert.equal(seen.status.incarnation, undefined);
  assert.equal(seen.status.host, "h1");
  assert.equal(seen.status.reason, "restarted: qemu pid <hidden> exited");
  assert.equal(
    seen.status.crashes?.[0].reason,
    "qemu pid <hidden> exited, see <host path>",
  );
  assert.equal(vmView(root, vm), vm);
  // An admin acting for bob has bob's rights: bob's view.
  assert.equal(
    vmView({ ...bob, actor: "root" }, vm).status.handle,
    undefined,
  );

  const task: Task = {
    id: "t-1",
    kind: "image.import",
    target: "any",
    payload: { image: "bob/deb", file: "/srv/www/.incoming/bob/deb.qcow2" },
    owner: "bob",
    state: "failed",
    attempts: 1,
    maxAttempts: 1,
    notBefore: 0,
    createdAt: "t",
    updatedAt: "t",
    worker: "h1",
    result: { pid: 9, fenced: ["c1"], handle: { dir: "/x" } },
    error: "qemu-img: Could not open '/srv/www/.incoming/bob/deb.qcow2'",
    history: [{ at: "t", state: "failed", message: "pid 9: /tmp/x" }],
  };
  const t = taskView(bob, task);
  assert.deepEqual(t.payload, { image: "bob/deb", file: "<host path>" });
  assert.deepEqual(t.result, { fenced: ["c1"] });
  assert.equal(t.error, "qemu-img: Could not open '<host path>'");
  assert.equal(t.history[0].message, "pid <hidden>: <host path>");
  assert.equal(t.worker, "h1");
  assert.equal(taskView(root, task), task);
});
