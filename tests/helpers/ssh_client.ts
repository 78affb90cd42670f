/**
 * An ssh client on a ucloud network's bridge, as a user's machine on the
 * host side of the network: a namespace `ucssh-<rand>` whose `eth0` is a
 * veth to a port of the bridge in the host's namespace (not a tap, so no
 * per-VM firewall chain applies to it) with a static address in the
 * network's /64, known at once (no wait for an RA). The host's own
 * namespace cannot be the client:
 * drivers/net/host_input.ts accepts from VMs only TCP to the metadata port
 * (stateless), so the VM's ssh replies to the host would be dropped.
 *
 * @example
 * ```ts
 * const client = await SshClient.create(h1.ns, "ucb3a1", "fd42::/64");
 * try {
 *   const out = await client.ssh(keyFile, "debian@fd42::5054:ff:fe00:1", "hostname");
 * } finally {
 *   await client.close();
 * }
 * ```
 */
import { run, type RunOptions } from "../../drivers/runner.ts";
import { formatIpv6, parsePrefix6 } from "../../core/netaddr.ts";

/** ssh options for a fresh VM: no agent, no known hosts, no prompts. */
const SSH_OPTS = [
  "BatchMode=yes",
  "IdentitiesOnly=yes",
  "StrictHostKeyChecking=no",
  "UserKnownHostsFile=/dev/null",
  "LogLevel=ERROR",
  "ConnectTimeout=10",
].flatMap((o) => ["-o", o]);

/**
 * The client's interface id: no VM has it (theirs are EUI-64, with ff:fe
 * in the middle).
 */
const CLIENT_IID = 0xc1e2en;

/** A client namespace plugged into a bridge; see the module doc. */
export class SshClient {
  private constructor(
    /** The client's namespace. */
    readonly ns: string,
    /** Its address on the network. */
    readonly address: string,
  ) {}

  /**
   * Makes the namespace and its veth, puts the host end on `bridge` in
   * namespace `hostNs` and gives the client {@linkcode CLIENT_IID} in
   * `prefix` (a /64), without DAD.
   */
  static async create(
    hostNs: string,
    bridge: string,
    prefix: string,
  ): Promise<SshClient> {
    const id = crypto.randomUUID().slice(0, 6);
    const ns = `ucssh-${id}`;
    const port = `ucsh${id}`;
    const address = formatIpv6(parsePrefix6(prefix).network | CLIENT_IID);
    await run("ip", ["netns", "add", ns]);
    try {
      await run("ip", [
        ...["-n", hostNs, "link", "add", port, "type", "veth"],
        ...["peer", "name", "eth0", "netns", ns],
      ]);
      await run("ip", ["-n", hostNs, "link", "set", port, "master", bridge]);
      await run("ip", ["-n", hostNs, "link", "set", port, "up"]);
      await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
      await run("ip", [
        ...["-n", ns, "addr", "add", `${address}/64`],
        ...["dev", "eth0", "nodad"],
      ]);
      await run("ip", ["-n", ns, "link", "set", "eth0", "up"]);
      return new SshClient(ns, address);
    } catch (err) {
      await run("ip", ["netns", "del", ns]).catch(() => {});
      throw err;
    }
  }

  /** Runs `command` as `target` (`user@addr`) with private key `key`. */
  ssh(key: string, target: string, command: string, opts: RunOptions = {}) {
    return run("ip", [
      ...["netns", "exec", this.ns, "ssh", "-i", key, ...SSH_OPTS],
      target,
      command,
    ], { timeoutMs: 60_000, ...opts });
  }

  /** Deletes the namespace (and with it both ends of the veth). */
  async close(): Promise<void> {
    await run("ip", ["netns", "del", this.ns]);
  }
}
