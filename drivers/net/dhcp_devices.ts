/**
 * How a DHCP server's devices are now, as iproute2 reports them: the
 * host's veths (`listVeths`) and `eth0` in a DHCP namespace (`readEth0`),
 * read by drivers/net/dhcp.ts before it changes anything.
 *
 * @example
 * ```ts
 * const veths = await listVeths(exec, signal);
 * veths.get("ucd5a")?.master; // "ucb5"
 * (await readEth0(netnsExec("ucd5a-dhcp")))?.addrs; // ["10.0.0.1/24"]
 * ```
 *
 * @module
 */
import {
  formatIpv4,
  formatIpv6,
  parseIpv4,
  parseIpv6,
} from "../../core/netaddr.ts";
import type { Exec } from "./types.ts";

/** A veth of the host as `ip -j link show type veth` describes it. */
export interface Veth {
  master?: string;
  up: boolean;
  mtu: number;
  alias?: string;
}

/** The host's veths by name. */
export async function listVeths(
  exec: Exec,
  signal?: AbortSignal,
): Promise<Map<string, Veth>> {
  const { stdout } = await exec("ip", [
    "-j",
    "link",
    "show",
    "type",
    "veth",
  ], { signal, timeoutMs: 10_000 });
  const out = new Map<string, Veth>();
  for (
    const l of JSON.parse(stdout || "[]") as {
      ifname: string;
      flags?: string[];
      mtu: number;
      master?: string;
      ifalias?: string;
    }[]
  ) {
    out.set(l.ifname, {
      master: l.master,
      up: l.flags?.includes("UP") ?? false,
      mtu: l.mtu,
      alias: l.ifalias,
    });
  }
  return out;
}

/**
 * `eth0` of the namespace `ns` runs in (state and global addresses, as
 * `canonicalAddr`); null without one.
 */
export async function readEth0(
  ns: Exec,
  signal?: AbortSignal,
): Promise<{ up: boolean; mtu: number; addrs: string[] } | null> {
  let stdout: string;
  try {
    ({ stdout } = await ns("ip", [
      "-j",
      "addr",
      "show",
      "dev",
      "eth0",
    ], { signal, timeoutMs: 10_000 }));
  } catch {
    return null;
  }
  const [l] = JSON.parse(stdout || "[]") as {
    flags?: string[];
    mtu: number;
    addr_info?: {
      family: string;
      local: string;
      prefixlen: number;
      scope: string;
    }[];
  }[];
  if (!l) return null;
  return {
    up: l.flags?.includes("UP") ?? false,
    mtu: l.mtu,
    addrs: (l.addr_info ?? []).filter((a) => a.scope === "global").map((a) =>
      canonicalAddr(`${a.local}/${a.prefixlen}`)
    ),
  };
}

/** `<address>/<len>` with the address in its canonical form. */
export function canonicalAddr(a: string): string {
  const [addr, len] = a.split("/");
  return `${
    addr.includes(":")
      ? formatIpv6(parseIpv6(addr))
      : formatIpv4(parseIpv4(addr))
  }/${len}`;
}
