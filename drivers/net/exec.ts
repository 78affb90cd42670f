/**
 * How the network driver runs commands in a network namespace, and one
 * step of a sync whose failure names what it was doing.
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
