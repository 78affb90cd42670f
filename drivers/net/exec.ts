/**
 * How the network driver runs commands in a network namespace.
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
import { run } from "../runner.ts";
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
