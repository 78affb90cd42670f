/**
 * Evidence for a violation: the worker log lines (JSON, one per line) about
 * one VM, and the lease and fencing lines of every host, within a time
 * window; and the task documents of that VM from the final etcd dump. Each
 * is condensed to one short line.
 *
 * @example
 * ```ts
 * for (const l of await logEvidence(env, "vm-1", from - 5000, to + 1000)) {
 *   console.log(l);
 * }
 * ```
 */
import type { Violation } from "./checker.ts";
import type { NemesisEnv } from "./env.ts";
import type { FaultEvent } from "./faults.ts";
import type { DoubleRun } from "./sampler.ts";

/** `+12.345s`: time `t` as an offset from `start`. */
export function at(start: number, t: number): string {
  return `+${((t - start) / 1000).toFixed(3)}s`;
}

/** Host-wide events worth seeing next to a VM's own lines. */
const CONTEXT =
  /lease|fence|registered|adopt|failover|incarnation|evacuat|rejoin/i;

interface LogLine {
  ts?: string;
  host?: string;
  msg?: string;
  [k: string]: unknown;
}

function condense(l: LogLine): string {
  const fields = [
    "kind",
    "task",
    "vm",
    "error",
    "reason",
    "killed",
    "failed",
    "evacuated",
    "lease",
  ]
    .filter((k) => l[k] !== undefined)
    .map((k) =>
      `${k}=${typeof l[k] === "string" ? l[k] : JSON.stringify(l[k])}`
    );
  return `${(l.ts ?? "").slice(11, 23)} ${l.host ?? "?"} ${l.msg}${
    fields.length ? ` ${fields.join(" ")}` : ""
  }`.slice(0, 400);
}

/**
 * Worker log lines (all hosts) in [from, to] that mention `vm`, or (with
 * `context`) are host-wide lease/fencing events; the last `max`, oldest
 * first.
 */
export async function logEvidence(
  env: NemesisEnv,
  vm: string,
  from: number,
  to: number,
  max = 40,
  context = true,
): Promise<string[]> {
  const out: { at: number; line: string }[] = [];
  for (const w of env.workers.values()) {
    for (const raw of (await w.log()).split("\n")) {
      if (!raw.startsWith("{")) continue;
      let l: LogLine;
      try {
        l = JSON.parse(raw);
      } catch {
        continue;
      }
      const at = Date.parse(l.ts ?? "");
      if (!(at >= from && at <= to)) continue;
      if (!raw.includes(vm) && !(context && CONTEXT.test(l.msg ?? ""))) {
        continue;
      }
      out.push({ at, line: condense(l) });
    }
  }
  out.sort((a, b) => a.at - b.at);
  return out.slice(-max).map((x) => x.line);
}

interface TaskLine {
  id: string;
  kind: string;
  target: string;
  state: string;
  createdAt: string;
  worker?: string;
  error?: string;
  payload: Record<string, unknown>;
  history?: { at: string; state: string; worker?: string; message?: string }[];
}

/** The VM's tasks in the dump, oldest first, one line each. */
export function taskEvidence(
  kv: Record<string, string>,
  vm: string,
  max = 20,
): string[] {
  const tasks: TaskLine[] = [];
  for (const [k, v] of Object.entries(kv)) {
    if (!k.startsWith("task/") || !v.includes(vm)) continue;
    try {
      const t = JSON.parse(v) as TaskLine;
      if (t.payload?.vm === vm) tasks.push(t);
    } catch { /* not a task */ }
  }
  tasks.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  return tasks.slice(-max).map((t) => {
    const steps = (t.history ?? []).map((h) =>
      `${h.at.slice(11, 23)} ${h.state}${h.worker ? `@${h.worker}` : ""}${
        h.message ? ` (${h.message.slice(0, 80)})` : ""
      }`
    ).join(", ");
    return `${t.id} ${t.kind} -> ${t.target}: ${steps}`.slice(0, 400);
  });
}

/** What {@linkcode printDetails} prints. */
export interface Details {
  env: NemesisEnv;
  start: number;
  kv: Record<string, string>;
  print: (line: string) => void;
  doubleRuns: readonly DoubleRun[];
  violations: readonly Violation[];
  /** The workload's history lines of a VM. */
  history: (vm: string) => readonly string[];
  /** Processes that exited on their own. */
  exits: readonly FaultEvent[];
}

/**
 * Prints every double run and violation, each VM one with its workload
 * history, its tasks and the log lines around it; then notes on hosts
 * without a fencer and processes that exited on their own.
 */
export async function printDetails(d: Details): Promise<void> {
  const { env, start, print } = d;
  const vm = async (
    id: string,
    from: number,
    to: number,
    max: number,
    context: boolean,
  ) => {
    for (const h of d.history(id).slice(-8)) print(`    workload ${h}`);
    for (const t of taskEvidence(d.kv, id, 8)) print(`    task ${t}`);
    for (const l of await logEvidence(env, id, from, to, max, context)) {
      print(`    log ${l}`);
    }
  };
  for (const r of d.doubleRuns) {
    print(
      `DOUBLE RUN: vm ${r.vm} on ${r.hosts.join(" and ")} from ${
        at(start, r.from)
      } to ${at(start, r.to)} (${r.samples} samples, pids ${r.pids.join(" ")})`,
    );
    await vm(r.vm, r.from - 8000, r.to + 1000, 40, true);
  }
  const shown = new Set<string>();
  for (const v of d.violations) {
    print(`${v.kind.toUpperCase()}: ${v.subject}: ${v.detail}`);
    const id = `${v.subject} ${v.detail}`.match(/\bvm (vm-[a-z0-9-]+)/)?.[1];
    if (id && !shown.has(id)) {
      shown.add(id);
      await vm(id, start, Date.now(), 12, false);
    }
  }
  for (const h of env.hosts) {
    const run = env.workers.get(h)?.runDir;
    const pid = run
      ? await Deno.readTextFile(`${run}/fencer.pid`).catch(() => "")
      : "";
    const cmd = pid
      ? await Deno.readTextFile(`/proc/${pid.trim()}/cmdline`).catch(() => "")
      : "";
    if (!cmd.includes("fencer.ts")) {
      print(`note: host ${h} has no fencer running at the end`);
    }
  }
  for (const e of d.exits) {
    print(`note: ${e.target} ${e.detail} at ${at(start, e.at)}`);
  }
}
