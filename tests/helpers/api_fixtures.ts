/**
 * Documents the API tests put into etcd by hand: the default VM `input`,
 * `place()` a VM as the worker would, live hosts by `register()`.
 */
import assert from "node:assert/strict";
import { keys } from "../../core/keys.ts";
import { Vm } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";

/** The VM most tests create. */
export const input = { name: "web1", cpus: 1, memory: 128 };

/** Plays the worker: puts the VM on `host` in `phase`. */
export async function place(
  store: Store,
  id: string,
  host: string | undefined,
  phase: Vm["status"]["phase"],
) {
  const cur = await store.get(keys.vm(id), Vm);
  assert.ok(cur);
  const status = { ...cur.value.status, phase, host };
  if (!host) delete status.host;
  const r = await store.txn().ifModRevision(cur.key, cur.modRevision)
    .put(cur.key, { ...cur.value, status }).commit();
  assert.ok(r.ok);
}

/** A host document with room for a few VMs. */
export const hostDoc = (name: string) => ({
  name,
  capacity: { cpus: 4, memoryMiB: 2048 },
  addresses: [],
  os: "linux",
  drivers: ["qemu"],
  state: "active",
  registeredAt: "2025-01-01T00:00:00.000Z",
});

/** An alive document bound to `lease`. */
export const aliveDoc = (lease: string) => ({
  incarnation: lease,
  started: "2025-01-02T00:00:00.000Z",
  pid: 42,
  lease,
});

/** Registers live hosts as a worker would: host doc, alive bound to `lease`. */
export async function register(store: Store, lease: string, names: string[]) {
  for (const name of names) {
    const r = await store.txn().put(keys.host(name), hostDoc(name))
      .put(keys.alive(name), aliveDoc(lease), { lease }).commit();
    assert.ok(r.ok);
  }
}
