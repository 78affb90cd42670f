/**
 * What this host's network has now, as the kernel reports it: its links
 * (`ip -d -j link show`), which of them are ucloud's, and ucloud's nft
 * tables. Read by the network driver before it changes anything.
 *
 * @example
 * ```ts
 * const links = await listLinks(stepRunner(exec), signal);
 * const ours = [...links.values()].filter(isOurs);
 * const table = await readNftTable(exec, signal, "bridge");
 * ```
 *
 * @module
 */
import type { Step } from "./exec.ts";
import {
  DEVICE_ALIAS,
  isBridgeName,
  isTapName,
  isVxlanName,
  NFT_TABLE,
  TAP_PREFIX,
} from "./names.ts";
import { type NftTable, parseTable } from "./nft.ts";
import type { Exec } from "./types.ts";

/** A link as `ip -d -j link show` describes it. */
export interface Link {
  name: string;
  kind?: string;
  master?: string;
  up: boolean;
  mtu: number;
  /** Its MAC address (`address`), for Ethernet-like links. */
  mac?: string;
  alias?: string;
  data: Record<string, unknown>;
}

/** The host's links by name. */
export async function listLinks(
  step: Step,
  signal?: AbortSignal,
): Promise<Map<string, Link>> {
  const { stdout } = await step("list links", "ip", [
    "-d",
    "-j",
    "link",
    "show",
  ], signal);
  const out = new Map<string, Link>();
  for (
    const l of JSON.parse(stdout) as {
      ifname: string;
      flags?: string[];
      mtu: number;
      address?: string;
      master?: string;
      ifalias?: string;
      linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
    }[]
  ) {
    out.set(l.ifname, {
      name: l.ifname,
      kind: l.linkinfo?.info_kind,
      master: l.master,
      up: l.flags?.includes("UP") ?? false,
      mtu: l.mtu,
      mac: l.address,
      alias: l.ifalias,
      data: l.linkinfo?.info_data ?? {},
    });
  }
  return out;
}

/** A table of ours as the kernel has it; null when there is none. */
export async function readNftTable(
  exec: Exec,
  signal?: AbortSignal,
  family: "bridge" | "netdev" = "bridge",
): Promise<NftTable | null> {
  try {
    const { stdout } = await exec("nft", [
      "-j",
      "list",
      "table",
      family,
      NFT_TABLE,
    ], { signal, timeoutMs: 30_000 });
    return parseTable(stdout);
  } catch (err) {
    if (/No such file or directory/.test(String(err))) return null;
    throw new Error(`Cannot read table ${family} ${NFT_TABLE}`, {
      cause: err,
    });
  }
}

/** A bridge, VXLAN or tap ucloud made (by its name and label). */
export function isOurs(l: Link): boolean {
  return l.alias === DEVICE_ALIAS &&
    (isBridgeName(l.name) || isVxlanName(l.name) || isTapName(l.name));
}

/** A tap ucloud made (ports of other kinds are only detached). */
export function isOurTap(l: Link): boolean {
  return l.alias === DEVICE_ALIAS && l.kind === "tun" &&
    l.name.startsWith(TAP_PREFIX);
}
