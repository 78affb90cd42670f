/**
 * Which qemu (pid, vm id) runs in which host namespace of a multi-host test
 * network (`qemuByHost`), and a sampler that repeats that and reports every
 * moment one VM ran in two namespaces at once (`startSampler`,
 * `findViolations`).
 */
import type { HostNet } from "./netns.ts";

/** A qemu process seen in a host's namespace. */
export interface QemuProc {
  pid: number;
  /** From `-pidfile <...>/vms/<id>/qemu.pid`; null without one. */
  vmId: string | null;
}

async function nsInode(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).ino;
  } catch {
    return null;
  }
}

/**
 * Which qemu processes run in which host namespace, by comparing the inode
 * of `/proc/<pid>/ns/net` with that of `/run/netns/<ns>`. Every host is in
 * the map (maybe with []); qemus outside the network's namespaces are left
 * out. A qemu that is daemonizing shows up twice for a moment (parent and
 * child have the same command line).
 */
export async function qemuByHost(
  net: HostNet,
): Promise<Map<string, QemuProc[]>> {
  const byInode = new Map<number, string>();
  const out = new Map<string, QemuProc[]>();
  for (const h of net.hosts.values()) {
    out.set(h.name, []);
    const ino = await nsInode(`/run/netns/${h.ns}`);
    if (ino !== null) byInode.set(ino, h.name);
  }
  if (byInode.size === 0) return out;
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    let args: string[];
    let ino: number | null;
    try {
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
      args = cmd.replace(/\0$/, "").split("\0");
      if (!args[0].includes("qemu-system")) continue;
      ino = await nsInode(`/proc/${e.name}/ns/net`);
    } catch {
      continue; // exited
    }
    const host = ino === null ? undefined : byInode.get(ino);
    if (!host) continue;
    const i = args.indexOf("-pidfile");
    const m = i >= 0 ? args[i + 1]?.match(/\/vms\/([^/]+)\/qemu\.pid$/) : null;
    out.get(host)!.push({ pid: Number(e.name), vmId: m ? m[1] : null });
  }
  return out;
}

/** One look at the hosts. */
export interface QemuSample {
  /** Date.now() when the sample was taken. */
  at: number;
  byHost: Map<string, QemuProc[]>;
}

/** One moment at which one VM ran in more than one host namespace. */
export interface Violation {
  at: number;
  vmId: string;
  /** The distinct hosts, sorted. */
  hosts: string[];
  pids: number[];
}

/**
 * Every (sample, vm id) where the VM's qemu runs in two or more distinct
 * namespaces. Two qemus of one VM in the same namespace are not flagged:
 * a daemonizing qemu briefly is two processes with one command line.
 */
export function findViolations(samples: QemuSample[]): Violation[] {
  const out: Violation[] = [];
  for (const s of samples) {
    const seen = new Map<string, { hosts: Set<string>; pids: number[] }>();
    for (const [host, procs] of s.byHost) {
      for (const p of procs) {
        if (p.vmId === null) continue;
        const v = seen.get(p.vmId) ?? { hosts: new Set(), pids: [] };
        v.hosts.add(host);
        v.pids.push(p.pid);
        seen.set(p.vmId, v);
      }
    }
    for (const [vmId, v] of seen) {
      if (v.hosts.size > 1) {
        out.push({ at: s.at, vmId, hosts: [...v.hosts].sort(), pids: v.pids });
      }
    }
  }
  return out;
}

/** A running {@linkcode startSampler}. */
export interface Sampler {
  /** Samples taken so far (live array). */
  readonly samples: QemuSample[];
  /** Stops sampling; resolves with every sample and the violations in them. */
  stop(): Promise<{ samples: QemuSample[]; violations: Violation[] }>;
}

/** Samples {@linkcode qemuByHost} every `everyMs` until `stop()`. */
export function startSampler(net: HostNet, everyMs = 50): Sampler {
  const samples: QemuSample[] = [];
  let stopped = false;
  let wake: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let error: unknown;
  const loop = (async () => {
    while (!stopped) {
      try {
        const at = Date.now();
        samples.push({ at, byHost: await qemuByHost(net) });
      } catch (err) {
        error = err;
        return;
      }
      if (stopped) break;
      await new Promise<void>((r) => {
        wake = r;
        timer = setTimeout(r, everyMs);
      });
    }
  })();
  return {
    samples,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      wake?.();
      await loop;
      if (error) throw error;
      return { samples, violations: findViolations(samples) };
    },
  };
}
