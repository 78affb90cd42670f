/**
 * The fixture of the network driver tests: host namespaces on an IPv6
 * underlay (`createHostNet`), a set of VM namespaces, a state dir and a
 * `NetDriver` per host, and captured driver logs. Afterwards every host is
 * torn down by a fresh driver, and no radvd or dnsmasq of those state dirs,
 * no VM namespace and nothing `extraLeft` reports may be left.
 *
 * @example
 * ```ts
 * await withNetHosts(["h1", "h2"], async ({ net, vms, driver }) => {
 *   await driver("h1").sync(state);
 * });
 * ```
 */
import assert from "node:assert/strict";
import { NetDriver } from "../../drivers/net/driver.ts";
import { NFT_TABLE } from "../../drivers/net/names.ts";
import { type NftTable, parseTable } from "../../drivers/net/nft.ts";
import { run } from "../../drivers/runner.ts";
import { createHostNet, type HostNet } from "./netns.ts";
import { captureLog } from "./otp.ts";
import { daemonsIn, leftoverVms, VmSet } from "./vmns.ts";

export interface NetEnv {
  net: HostNet;
  vms: VmSet;
  /** State dir per host name. */
  dirs: Map<string, string>;
  log: ReturnType<typeof captureLog>;
  /** A new driver for `host` (its underlay: eth0 and its address). */
  driver(host: string, withUnderlay?: boolean): NetDriver;
}

export interface NetHostsOptions {
  /** Prefix of the state dirs' names. */
  prefix?: string;
  /** More leftovers to check after teardown, by what they are. */
  extraLeft?: (net: HostNet) => Promise<Record<string, string[]>>;
}

export async function withNetHosts(
  names: string[],
  f: (env: NetEnv) => Promise<void>,
  { prefix = "ucnet", extraLeft }: NetHostsOptions = {},
): Promise<void> {
  const net = await createHostNet(names);
  const vms = new VmSet();
  const log = captureLog();
  const dirs = new Map<string, string>();
  for (const n of names) {
    dirs.set(n, await Deno.makeTempDir({ prefix: `${prefix}-${n}-` }));
  }
  const env: NetEnv = {
    net,
    vms,
    dirs,
    log,
    driver(host, withUnderlay = true) {
      const h = net.host(host);
      return new NetDriver({
        stateDir: dirs.get(host)!,
        underlay: withUnderlay ? { device: "eth0", address: h.address } : null,
        netns: h.ns,
        log: log.child({ host }),
      });
    },
  };
  let failed = false;
  try {
    await f(env);
  } catch (err) {
    failed = true;
    console.error(log.lines.slice(-40).join("\n"));
    throw err;
  } finally {
    const errors: unknown[] = [];
    for (const n of names) {
      await new NetDriver({
        stateDir: dirs.get(n)!,
        underlay: null,
        netns: net.host(n).ns,
        log,
      }).teardown().catch((e) => errors.push(e));
    }
    const daemons = await daemonsIn([...dirs.values()], /(dnsmasq|radvd)$/);
    const extra = extraLeft ? await extraLeft(net) : {};
    await vms.destroy().catch((e) => errors.push(e));
    for (const pid of daemons) Deno.kill(pid, "SIGKILL");
    await net.destroy().catch((e) => errors.push(e));
    for (const d of dirs.values()) await Deno.remove(d, { recursive: true });
    const vmLeft = await leftoverVms(vms);
    if (!failed) {
      assert.deepEqual(errors, [], "cleanup failed");
      assert.deepEqual(daemons, [], "radvd or dnsmasq left after teardown");
      for (const [what, left] of Object.entries(extra)) {
        assert.deepEqual(left, [], `${what} left after teardown`);
      }
      assert.deepEqual(vmLeft, [], "VM namespaces left");
    }
  }
}

/** The driver's nft table in namespace `ns`, parsed; null when it has none. */
export async function nftTable(ns: string): Promise<NftTable | null> {
  try {
    const { stdout } = await run("ip", [
      "netns",
      "exec",
      ns,
      "nft",
      "-j",
      "list",
      "table",
      "bridge",
      NFT_TABLE,
    ]);
    return parseTable(stdout);
  } catch (err) {
    if (/No such file/.test(String(err))) return null;
    throw err;
  }
}
