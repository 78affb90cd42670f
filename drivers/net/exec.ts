/**
 * How the network driver runs commands in a network namespace, one step
 * of a sync whose failure names what it was doing, and the name of the
 * namespace this process runs in.
 *
 * @example
 * ```ts
 * const exec = netnsExec("ucd5a");
 * await exec("ip", ["addr", "show"]); // ip -n ucd5a addr show
 * await exec("sysctl", ["-n", "net.ipv6.conf.all.forwarding"]);
 * ```
 *
 * @module
 */
import { CommandError, run } from "../runner.ts";
import type { Exec } from "./types.ts";

/**
 * An {@linkcode Exec} running commands through `drivers/runner.ts`,
 * inside network namespace `netns` when given (`ip -n`/`bridge -n` for
 * iproute2, `ip netns exec` for the rest).
 */
export function netnsExec(netns?: string): Exec {
  if (!netns) return run;
  return (cmd, args, opts) => {
    if (cmd === "ip" || cmd === "bridge") {
      return run(cmd, ["-n", netns, ...args], opts);
    }
    return run("ip", ["netns", "exec", netns, cmd, ...args], opts);
  };
}

/**
 * The name (`/run/netns/<name>`) of the network namespace this process
 * runs in, or undefined when it has none (the root namespace, normally).
 * A worker started with `ip netns exec <ns>` (tests acting as several
 * hosts) gives it to its `NetDriver` as `netns`, so the DHCP namespaces it
 * makes are named after its own (`<ns>-ucd…`, see `dhcpNetnsOf`) and not
 * those of another host on the same machine.
 */
export async function currentNetns(): Promise<string | undefined> {
  const self = await Deno.stat("/proc/self/ns/net");
  let names: string[] = [];
  try {
    for await (const e of Deno.readDir("/run/netns")) names.push(e.name);
  } catch {
    return undefined;
  }
  names = names.sort();
  for (const name of names) {
    const s = await Deno.stat(`/run/netns/${name}`).catch(() => null);
    if (s && s.ino === self.ino && s.dev === self.dev) return name;
  }
  return undefined;
}

/**
 * Runs one step of a sync: a command through an {@linkcode Exec} with a
 * 30 s timeout whose failure names `what` and carries the command's
 * error ("Cannot create tap uct1a2b: ...").
 */
export type Step = (
  what: string,
  cmd: string,
  args: string[],
  signal?: AbortSignal,
  stdin?: string,
) => Promise<{ stdout: string; stderr: string }>;

/**
 * The {@linkcode Step} runner of `exec`.
 *
 * @example
 * ```ts
 * const step = stepRunner(netnsExec("h1"));
 * await step("list links", "ip", ["-j", "link", "show"]);
 * ```
 */
export function stepRunner(exec: Exec): Step {
  return async (what, cmd, args, signal, stdin) => {
    try {
      return await exec(cmd, args, { signal, timeoutMs: 30_000, stdin });
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(`Cannot ${what}: ${msg}`, { cause: err });
    }
  };
}

/**
 * Deletes link `name` (`ip link del`); returns false when it was already
 * gone. A veth whose peer's namespace was just deleted goes away with it,
 * but later (the kernel cleans namespaces up asynchronously): between
 * listing it and deleting it, it may vanish.
 */
export async function deleteLink(
  exec: Exec,
  name: string,
  opts: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<boolean> {
  try {
    await exec("ip", ["link", "del", name], opts);
    return true;
  } catch (err) {
    if (
      err instanceof CommandError && /Cannot find device/.test(err.stderr)
    ) return false;
    throw err;
  }
}
