/**
 * Network namespaces acting as VMs for network driver tests. A "VM" is a
 * namespace `ucvm-<rand>-<name>` whose `eth0` (the given MAC, up, IPv6
 * autoconfiguration on, DAD off for speed) is a veth to a port device in a
 * host namespace; the port is left down and on no bridge for
 * `NetDriver.sync` to attach. Every namespace and process is tracked by its
 * {@linkcode VmSet} and removed by `destroy()`. Raw frames are built in
 * `frames.ts`, sent and captured by `vm_wire.ts`; DHCP clients are in
 * `vm_dhcp.ts`.
 *
 * @example
 * ```ts
 * const vms = new VmSet();
 * try {
 *   const a = await vms.create({ name: "a", hostNs: h1.ns, port: "uct000000010", mac });
 *   await waitAddress(a, "fd00::10");
 * } finally {
 *   await vms.destroy();
 * }
 * ```
 */
import { run } from "../../drivers/runner.ts";
import { parseIpv6 } from "../../core/netaddr.ts";
import { waitFor } from "./cluster.ts";

/** One namespace acting as a VM. */
export interface VmNs {
  name: string;
  /** The VM's namespace. */
  ns: string;
  /** The host namespace its port is in. */
  hostNs: string;
  /** Host-side device (the port the driver attaches). */
  port: string;
  mac: string;
}

/** Options of {@linkcode VmSet.create}. */
export interface VmOptions {
  name: string;
  hostNs: string;
  port: string;
  mac: string;
  /** Static IPv4 address with length, e.g. "198.51.100.10/24". */
  ipv4?: string;
  /** Bring eth0 up now (default); false: later with {@linkcode linkUp}. */
  up?: boolean;
}

/** Runs `cmd` inside namespace `ns`. */
export function nsRun(
  ns: string,
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; signal?: AbortSignal; stdin?: string } = {},
) {
  return run("ip", ["netns", "exec", ns, cmd, ...args], {
    timeoutMs: 20_000,
    ...opts,
  });
}

function randomId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(2)),
    (x) => x.toString(16).padStart(2, "0"),
  ).join("");
}

/** VM namespaces and helper processes of one test, removed together. */
export class VmSet {
  readonly id = randomId();
  readonly vms: VmNs[] = [];
  readonly children = new Set<Deno.ChildProcess>();

  /** Creates VM namespace `ucvm-<id>-<name>` wired to `port` in `hostNs`. */
  async create(opts: VmOptions): Promise<VmNs> {
    const vm: VmNs = {
      name: opts.name,
      ns: `ucvm-${this.id}-${opts.name}`,
      hostNs: opts.hostNs,
      port: opts.port,
      mac: opts.mac,
    };
    await run("ip", ["netns", "add", vm.ns]);
    this.vms.push(vm);
    await run("ip", [
      "-n",
      opts.hostNs,
      "link",
      "add",
      opts.port,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      vm.ns,
    ]);
    const ipn = (...args: string[]) => run("ip", ["-n", vm.ns, ...args]);
    await ipn("link", "set", "lo", "up");
    await ipn("link", "set", "eth0", "address", opts.mac);
    await nsRun(vm.ns, "sysctl", [
      "-q",
      "-w",
      "net.ipv6.conf.eth0.accept_dad=0",
      "net.ipv6.conf.eth0.accept_ra=1",
      "net.ipv6.conf.eth0.autoconf=1",
      "net.ipv6.conf.eth0.addr_gen_mode=0",
    ]);
    if (opts.ipv4) await ipn("addr", "add", opts.ipv4, "dev", "eth0");
    if (opts.up ?? true) await linkUp(vm);
    return vm;
  }

  /** Kills the helper processes and deletes every VM namespace. */
  async destroy(): Promise<void> {
    for (const c of this.children) {
      try {
        c.kill("SIGKILL");
      } catch { /* exited */ }
      await c.status.catch(() => {});
    }
    this.children.clear();
    for (const vm of this.vms) {
      const pids = await run("ip", ["netns", "pids", vm.ns]).then(
        (r) => r.stdout.split(/\s+/).filter(Boolean).map(Number),
        () => [],
      );
      for (const pid of pids) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await run("ip", ["netns", "del", vm.ns]).catch(() => {});
    }
    this.vms.length = 0;
  }
}

/** Brings the VM's eth0 up (the VM "boots"). */
export async function linkUp(vm: VmNs): Promise<void> {
  await run("ip", ["-n", vm.ns, "link", "set", "eth0", "up"]);
}

/** Names of VM namespaces of this process's sets that still exist. */
export async function leftoverVms(set: VmSet): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"]);
  return stdout.split("\n").map((l) => l.split(" ")[0])
    .filter((n) => n.startsWith(`ucvm-${set.id}-`));
}

/** Global IPv6 addresses on the VM's eth0. */
export async function globalAddrs(vm: VmNs): Promise<string[]> {
  const { stdout } = await run("ip", [
    "-n",
    vm.ns,
    "-j",
    "-6",
    "addr",
    "show",
    "dev",
    "eth0",
    "scope",
    "global",
  ]);
  const links = JSON.parse(stdout || "[]") as {
    addr_info?: { local?: string }[];
  }[];
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => a.local ?? ""))
    .filter(Boolean);
}

/** Waits until `addr` is configured on the VM's eth0. */
export async function waitAddress(
  vm: VmNs,
  addr: string,
  timeoutMs = 20_000,
): Promise<void> {
  const want = parseIpv6(addr);
  await waitFor(
    `${addr} on ${vm.name}`,
    async () => (await globalAddrs(vm)).some((a) => parseIpv6(a) === want),
    timeoutMs,
    20,
  );
}

/** Whether one ping from `vm` to `addr` is answered within `waitS` s. */
export async function ping(
  vm: VmNs,
  addr: string,
  { count = 1, waitS = 1 } = {},
): Promise<boolean> {
  try {
    await nsRun(vm.ns, "busybox", [
      "ping",
      addr.includes(":") ? "-6" : "-4",
      "-c",
      String(count),
      "-W",
      String(waitS),
      addr,
    ]);
    return true;
  } catch {
    return false;
  }
}

let pythonPath: Promise<string> | undefined;

/** The real python3 interpreter (not a pyenv shim). */
export function python(): Promise<string> {
  pythonPath ??= run("python3", ["-c", "import sys; print(sys.executable)"])
    .then((r) => r.stdout.trim());
  return pythonPath;
}

/**
 * Pids of live processes whose program name matches `name` and one of
 * whose arguments names a file under one of `dirs` (daemons a test's
 * driver started: radvd, dnsmasq).
 */
export async function daemonsIn(
  dirs: string[],
  name: RegExp,
): Promise<number[]> {
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const args = (await Deno.readTextFile(`/proc/${e.name}/cmdline`))
        .split("\0");
      if (!name.test(args[0])) continue;
      if (dirs.some((d) => args.some((a) => a.includes(`${d}/`)))) {
        pids.push(Number(e.name));
      }
    } catch { /* exited */ }
  }
  return pids;
}
