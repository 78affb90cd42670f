/**
 * The documents of a final etcd dump as the nemesis checker reads them
 * (only the fields it needs), and how it describes them in findings.
 *
 * @example
 * ```ts
 * const vms = docs<VmDoc>(kv, "vm/");
 * describeVm(vms.get("vm-1")); // "phase running on h1, desired running"
 * ```
 */
import type { VmProc } from "./procs.ts";

/** The fields of a VM document the checker reads. */
export interface VmDoc {
  id: string;
  owner?: string;
  desired: string;
  nics?: { network: string; mac: string; ipv4?: string; slot: number }[];
  status: {
    phase: string;
    host?: string;
    reason?: string;
    incarnation?: string;
  };
}

/** The fields of a task document the checker reads. */
export interface TaskDoc {
  id: string;
  kind: string;
  target: string;
  state: string;
  attempts: number;
  maxAttempts: number;
  payload: Record<string, unknown>;
  error?: string;
  progress?: string;
  notBefore?: number;
}

/** The fields of a network document the checker reads. */
export interface NetDoc {
  id: string;
  prefix: string;
  vni?: number;
  vms: string[];
}

/** The JSON value, or undefined when absent or not JSON. */
export function parse<T>(raw: string | undefined): T | undefined {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return undefined;
  }
}

/** Documents under `prefix` by the rest of their key. */
export function docs<T>(
  kv: Record<string, string>,
  prefix: string,
): Map<string, T> {
  const out = new Map<string, T>();
  for (const [k, v] of Object.entries(kv)) {
    if (!k.startsWith(prefix)) continue;
    const doc = parse<T>(v);
    if (doc !== undefined) out.set(k.slice(prefix.length), doc);
  }
  return out;
}

/** `phase running on h1, desired running, reason "..."` or `absent`. */
export function describeVm(vm: VmDoc | undefined): string {
  if (!vm) return "absent";
  const s = vm.status;
  return `phase ${s.phase}${
    s.host ? ` on ${s.host}` : ""
  }, desired ${vm.desired}${s.reason ? `, reason "${s.reason}"` : ""}`;
}

/** `pid 1 on h1, pid 2 on h2` or `no process`. */
export function describeProcs(procs: readonly VmProc[]): string {
  return procs.length
    ? procs.map((p) => `pid ${p.pid} on ${p.host}`).join(", ")
    : "no process";
}
