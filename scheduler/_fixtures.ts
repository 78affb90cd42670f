/**
 * Documents for the scheduler's unit tests: hosts, candidates, VMs and
 * tasks built in memory, and a seeded random source for tie-breaks.
 */
import type { Host, Task, Vm } from "../core/schemas.ts";
import { type Candidate, reserve } from "./resources.ts";

const AT = "2026-01-01T00:00:00Z";

/** A registered host with `cpus` cores and `mem` MiB (and local disk). */
export const host = (
  name: string,
  cpus = 4,
  mem = 2048,
  state: Host["state"] = "active",
  diskMiB?: number,
): Host => ({
  name,
  capacity: { cpus, memoryMiB: mem, ...(diskMiB ? { diskMiB } : {}) },
  addresses: [],
  os: "linux",
  drivers: ["qemu"],
  state,
  registeredAt: AT,
});

/** A live host with `usedCpus` cores and `usedMem` MiB reserved. */
export const cand = (
  name: string,
  cpus: number,
  mem: number,
  usedCpus = 0,
  usedMem = 0,
  extra: Partial<Candidate> = {},
): Candidate => ({
  host: host(name, cpus, mem),
  alive: true,
  alloc: usedCpus || usedMem
    ? reserve(null, { cpus: usedCpus, memoryMiB: usedMem })
    : null,
  ...extra,
});

/** A VM of alice's in `phase` on `on` (none: not placed). */
export const vm = (
  id: string,
  on: string | undefined,
  phase: Vm["status"]["phase"] = "running",
  cpus = 1,
  memory = 128,
  desired: Vm["desired"] = "running",
): Vm => ({
  id,
  owner: "alice",
  spec: { name: id, cpus, memory, image: "tiny" },
  nics: [],
  desired,
  status: { phase, ...(on ? { host: on } : {}), updatedAt: AT },
  createdAt: AT,
});

let seq = 0;

/** A task document of `kind` in `state` (as tasks/queue.ts builds them). */
export const task = (
  kind: string,
  payload: Record<string, unknown>,
  state: Task["state"] = "queued",
  target = "any",
): Task => ({
  id: `t-fixture${++seq}`,
  kind,
  target,
  payload,
  state,
  attempts: 0,
  maxAttempts: 5,
  notBefore: 0,
  createdAt: AT,
  updatedAt: AT,
  history: [{ at: AT, state: "queued" }],
});

/** A seeded generator, so tests over random tie-breaks are repeatable. */
export function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}
