/**
 * Multi-host test networks: every "host" is a network namespace joined to
 * the root namespace by a veth pair on one bridge, with IPv6 ULA addresses
 * only (`fd75:c10d:<rand>::/64`).
 *
 * `createHostNet(names)` builds the bridge, namespaces and veths;
 * `partition(name)` / `heal(name)` cut a host off and reconnect it while
 * its processes keep running; `killHost(name)` SIGKILLs everything in a
 * host; `destroy()` removes it all (idempotent). Networks left behind by a
 * test process that died are swept by the next `createHostNet`. etcd and
 * workers on such a network: `ns_worker.ts`; which qemu runs in which host:
 * `qemu_by_host.ts`.
 *
 * @example
 * ```ts
 * const net = await createHostNet(["h1", "h2"]);
 * try {
 *   await net.partition("h1");
 *   await net.heal("h1");
 * } finally {
 *   await net.destroy();
 * }
 * ```
 */
import { run } from "../../drivers/runner.ts";
import { canonicalPrefix6, formatIpv6, parseIpv6 } from "../../core/netaddr.ts";
import { holdNetns, killAllIn } from "./netns_procs.ts";

/** The ULA /48 every test network takes a /64 of. */
export const ULA_PREFIX = "fd75:c10d";

/** One host of a {@linkcode HostNet}. */
export interface NetHost {
  name: string;
  /** Network namespace name, `uc-<rand>-<name>` (`/run/netns/<ns>`). */
  ns: string;
  /** The host's address on `eth0` inside the namespace (no brackets). */
  address: string;
  /** Root-namespace end of the veth pair, a port of the bridge. */
  vethRoot: string;
}

/** Bridge, namespaces and veths made by {@linkcode createHostNet}. */
export interface HostNet {
  /** Random 4 hex digits shared by every name and the /64 of this network. */
  readonly id: string;
  /** Bridge in the root namespace, `ucbr<rand>`. */
  readonly bridge: string;
  /** The /64, e.g. `fd75:c10d:1a2b::/64`. */
  readonly prefix: string;
  /** The bridge's address: where the namespaces reach the root (etcd). */
  readonly etcdAddress: string;
  readonly hosts: Map<string, NetHost>;
  /** The host called `name`; throws when there is none. */
  host(name: string): NetHost;
  /**
   * Cuts the host off from the root namespace and every other host: the
   * root-side veth goes down (the namespace's eth0 then has no carrier and
   * its packets are dropped). Nothing inside the namespace is touched, so
   * the worker and its VMs keep running, and a firewall flush inside the
   * namespace cannot undo it. TCP connections stay open and resume after
   * `heal` unless they time out meanwhile.
   */
  partition(name: string): Promise<void>;
  /** Brings the root-side veth up again (bridge port forwards at once: no STP). */
  heal(name: string): Promise<void>;
  /** Whether the root-side veth is down (from the kernel, not a flag). */
  isPartitioned(name: string): Promise<boolean>;
  /** Pids of the processes in the host's namespace (`ip netns pids`). */
  pids(name: string): Promise<number[]>;
  /**
   * SIGKILLs every process in the host's namespace (worker and its qemus)
   * until none is left; returns the pids killed.
   */
  killHost(name: string): Promise<number[]>;
  /**
   * Kills every process left in the namespaces, deletes veths, namespaces
   * and the bridge. Idempotent; throws when something could not be removed.
   */
  destroy(): Promise<void>;
}

/** Options of {@linkcode createHostNet}. */
export interface HostNetOptions {
  /**
   * First remove networks left behind by test processes that died without
   * cleaning up (owner pid recorded in the bridge's alias). Default true.
   */
  sweepStale?: boolean;
}

const ALIAS = "ucloud-test-hostnet owner=";

async function ip(...args: string[]): Promise<string> {
  return (await run("ip", args, { timeoutMs: 10_000 })).stdout;
}

/** Runs `ip`; "does not exist" errors are not errors (for cleanup). */
async function ipQuiet(...args: string[]): Promise<void> {
  try {
    await ip(...args);
  } catch (err) {
    const msg = String(err);
    if (
      !/Cannot find device|No such file|does not exist|No such device/.test(
        msg,
      )
    ) throw err;
  }
}

function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(2));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function checkName(name: string): void {
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name)) {
    throw new Error(`Bad host name ${JSON.stringify(name)}: [a-z0-9-]{1,32}`);
  }
}

/** Pids in a namespace; [] when it does not exist. */
async function nsPids(ns: string): Promise<number[]> {
  try {
    return (await ip("netns", "pids", ns)).split(/\s+/).filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** SIGKILLs every process in the namespaces `want` passes; the pids. */
async function killAllInNamed(
  want: (name: string) => boolean,
): Promise<number[]> {
  const held = await holdNetns(want);
  try {
    return await killAllIn(held);
  } finally {
    held.close();
  }
}

async function listNetns(): Promise<string[]> {
  return (await ip("netns", "list")).split("\n").map((l) => l.split(" ")[0])
    .filter(Boolean);
}

async function listLinks(): Promise<{ name: string; alias?: string }[]> {
  const all = JSON.parse(await ip("-j", "link", "show")) as {
    ifname: string;
    ifalias?: string;
  }[];
  return all.map((l) => ({ name: l.ifname, alias: l.ifalias }));
}

/**
 * Deletes everything of network `id`, whatever state it is in: the hosts'
 * namespaces and those their workers made (`uc-<id>-<host>-ucd…`, mounted
 * in the worker's mount namespace only: tests/helpers/netns_procs.ts),
 * with every process in them.
 */
async function teardown(id: string): Promise<void> {
  const held = await holdNetns((n) => n.startsWith(`uc-${id}-`));
  try {
    await killAllIn(held);
    for (const l of await listLinks()) {
      if (l.name.startsWith(`ucx${id}v`)) await ipQuiet("link", "del", l.name);
    }
    for (const ns of held.names) await ipQuiet("netns", "del", ns);
    // Whoever got in before the names went.
    await killAllIn(held);
  } finally {
    held.close();
  }
  await ipQuiet("link", "del", `ucbr${id}`);
}

/** What of network `id` still exists (empty: nothing). */
async function leftovers(id: string): Promise<string[]> {
  return [
    ...(await listNetns()).filter((n) => n.startsWith(`uc-${id}-`))
      .map((n) => `netns ${n}`),
    ...(await listLinks()).map((l) => l.name)
      .filter((n) => n === `ucbr${id}` || n.startsWith(`ucx${id}v`))
      .map((n) => `link ${n}`),
  ];
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

/**
 * Removes networks whose creating test process is gone (it died before its
 * `destroy()`); networks of live processes are left alone.
 */
export async function sweepStaleHostNets(): Promise<string[]> {
  const swept: string[] = [];
  for (const l of await listLinks()) {
    const m = l.name.match(/^ucbr([0-9a-f]{4})$/);
    if (!m || !l.alias?.startsWith(ALIAS)) continue;
    const owner = Number(l.alias.slice(ALIAS.length));
    if (owner && alive(owner)) continue;
    await teardown(m[1]);
    swept.push(m[1]);
  }
  return swept;
}

/**
 * Creates the bridge `ucbr<rand>` (fd75:c10d:<rand>::1/64) and, for host i,
 * namespace `uc-<rand>-<name>` whose `eth0` (fd75:c10d:<rand>::<i+2>/64) is
 * a veth to `ucx<rand>v<i> (never a name of drivers/net: ucb, ucv, uct, ucd)` on the bridge. On failure everything made so far
 * is removed.
 */
export async function createHostNet(
  names: string[],
  opts: HostNetOptions = {},
): Promise<HostNet> {
  if (names.length === 0 || names.length > 200) {
    throw new Error("createHostNet needs 1 to 200 host names");
  }
  names.forEach(checkName);
  if (new Set(names).size !== names.length) {
    throw new Error(`Duplicate host names: ${names.join(" ")}`);
  }
  if (opts.sweepStale ?? true) await sweepStaleHostNets();

  // The bridge name is the lock on the random id: creating it fails when a
  // parallel suite holds the same id.
  let id = "";
  for (let attempt = 0;; attempt++) {
    id = randomId();
    try {
      await ip(
        "link",
        "add",
        `ucbr${id}`,
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
        "mcast_snooping",
        "0",
      );
      break;
    } catch (err) {
      if (attempt >= 20 || !/File exists/.test(String(err))) throw err;
    }
  }
  const bridge = `ucbr${id}`;
  // Canonical text (RFC 5952), as the kernel and tools print it.
  const addr = (n: number) =>
    formatIpv6(parseIpv6(`${ULA_PREFIX}:${id}::${n.toString(16)}`));
  const prefix = canonicalPrefix6(`${ULA_PREFIX}:${id}::/64`);
  const etcdAddress = addr(1);
  const hosts = new Map<string, NetHost>();
  names.forEach((name, i) =>
    hosts.set(name, {
      name,
      ns: `uc-${id}-${name}`,
      address: addr(i + 2),
      vethRoot: `ucx${id}v${i}`,
    })
  );

  const host = (name: string): NetHost => {
    const h = hosts.get(name);
    if (!h) throw new Error(`No host ${name} in network ${id}`);
    return h;
  };

  let destroyed = false;
  const net: HostNet = {
    id,
    bridge,
    prefix,
    etcdAddress,
    hosts,
    host,
    async partition(name) {
      await ip("link", "set", host(name).vethRoot, "down");
    },
    async heal(name) {
      await ip("link", "set", host(name).vethRoot, "up");
    },
    async isPartitioned(name) {
      const [l] = JSON.parse(
        await ip("-j", "link", "show", host(name).vethRoot),
      ) as { flags: string[] }[];
      return !l.flags.includes("UP");
    },
    pids: (name) => nsPids(host(name).ns),
    killHost: (name) => killAllInNamed((n) => n === host(name).ns),
    async destroy() {
      if (destroyed && (await leftovers(id)).length === 0) return;
      await teardown(id);
      let left = await leftovers(id);
      if (left.length) {
        // A namespace kept alive by a process that was just exiting.
        await new Promise((r) => setTimeout(r, 200));
        await teardown(id);
        left = await leftovers(id);
      }
      if (left.length) {
        throw new Error(`Cannot remove network ${id}: ${left.join(", ")}`);
      }
      destroyed = true;
    },
  };

  try {
    await ip("link", "set", bridge, "alias", `${ALIAS}${Deno.pid}`);
    await ip("addr", "add", `${etcdAddress}/64`, "dev", bridge, "nodad");
    await ip("link", "set", bridge, "up");
    for (const h of hosts.values()) {
      await ip("netns", "add", h.ns);
      await ip(
        "link",
        "add",
        h.vethRoot,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        h.ns,
      );
      await ip("link", "set", h.vethRoot, "master", bridge, "up");
      await ip("-n", h.ns, "link", "set", "lo", "up");
      await ip(
        "-n",
        h.ns,
        "addr",
        "add",
        `${h.address}/64`,
        "dev",
        "eth0",
        "nodad",
      );
      await ip("-n", h.ns, "link", "set", "eth0", "up");
    }
  } catch (err) {
    await net.destroy().catch(() => {});
    throw err;
  }
  return net;
}
