/**
 * Which VM process runs on which host, for both VM drivers, by one
 * synchronous pass over /proc. Every host of a test cluster has its own
 * state dir `<hostsRoot>/<host>`, and both drivers name a VM's process by a
 * pidfile in `<stateDir>/vms/<id>/`, so the pidfile path names the host and
 * the VM (the process also runs in its host's network namespace, but the
 * path needs no second lookup):
 * - sim (drivers/sim/driver.ts): `sleep` renamed, argv[0]
 *   `ucloud-sim <stateDir>/vms/<id>/sim.pid`;
 * - qemu (drivers/qemu/args.ts): `qemu-system-*` with the arguments
 *   `-pidfile <stateDir>/vms/<id>/qemu.pid`. While it daemonizes, parent and
 *   child share that command line for a moment: two processes on one host.
 *
 * Only the command lines of processes whose `comm` is the driver's are
 * read: `comm` is read without the process's memory lock, `cmdline` is not,
 * and reading the command line of a process busy mapping memory (etcd or
 * deno starting) can stall for a few hundred ms.
 *
 * @example
 * ```ts
 * for (const p of vmProcs(`${cluster.dir}/hosts`, "qemu")) {
 *   console.log(p.vm, "runs on", p.host, "as pid", p.pid);
 * }
 * ```
 */

/** The VM drivers a nemesis run can use. */
export type VmDriver = "sim" | "qemu";

/** A VM process seen on a host. */
export interface VmProc {
  pid: number;
  vm: string;
  host: string;
}

/** `<hostsRoot>/<host>/vms/<vm>/<file>` -> host and VM, or null. */
function parsePidfile(
  path: string,
  hostsRoot: string,
  file: string,
): { host: string; vm: string } | null {
  const head = `${hostsRoot.replace(/\/+$/, "")}/`;
  if (!path.startsWith(head)) return null;
  const m = path.slice(head.length).match(/^([^/]+)\/vms\/([^/]+)\/([^/]+)$/);
  return m && m[3] === file ? { host: m[1], vm: m[2] } : null;
}

/** Host and VM of a sim process's argv[0], or null when it is not ours. */
export function parseSimArgv0(
  argv0: string,
  hostsRoot: string,
): { host: string; vm: string } | null {
  if (!argv0.startsWith("ucloud-sim ")) return null;
  return parsePidfile(argv0.slice("ucloud-sim ".length), hostsRoot, "sim.pid");
}

/**
 * Host and VM of a qemu process from its arguments (`-pidfile <path>`), or
 * null when it is no qemu of a host under `hostsRoot`.
 */
export function parseQemuArgs(
  args: readonly string[],
  hostsRoot: string,
): { host: string; vm: string } | null {
  if (!/(^|\/)qemu-system-[^/]+$/.test(args[0] ?? "")) return null;
  const i = args.indexOf("-pidfile");
  return i < 0 || i + 1 >= args.length
    ? null
    : parsePidfile(args[i + 1], hostsRoot, "qemu.pid");
}

const decoder = new TextDecoder();

function isZombie(pid: string): boolean {
  try {
    const stat = decoder.decode(Deno.readFileSync(`/proc/${pid}/stat`));
    return /^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return true; // exited meanwhile
  }
}

/** `comm` (up to 15 characters) of each driver's VM processes. */
const COMM: Record<VmDriver, (comm: string) => boolean> = {
  sim: (c) => c === "sleep\n",
  qemu: (c) => c.startsWith("qemu-system-"),
};

/** Host and VM of a process's NUL-separated command line, per driver. */
const PARSE: Record<
  VmDriver,
  (args: string[], root: string) => { host: string; vm: string } | null
> = {
  sim: (args, root) => parseSimArgv0(args[0] ?? "", root),
  qemu: parseQemuArgs,
};

/** Every live VM process of `driver` under `hostsRoot`. */
export function vmProcs(hostsRoot: string, driver: VmDriver): VmProc[] {
  const out: VmProc[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    let args: string[];
    try {
      const comm = decoder.decode(Deno.readFileSync(`/proc/${e.name}/comm`));
      if (!COMM[driver](comm)) continue;
      const raw = decoder.decode(Deno.readFileSync(`/proc/${e.name}/cmdline`));
      args = raw.replace(/\0$/, "").split("\0");
    } catch {
      continue; // exited
    }
    const p = PARSE[driver](args, hostsRoot);
    if (p && !isZombie(e.name)) out.push({ pid: Number(e.name), ...p });
  }
  return out;
}
