/**
 * Where this host's VXLAN packets leave and arrive: the underlay device
 * and its IPv6 address, found from the default route or named by the
 * admin.
 *
 * @example
 * ```ts
 * const underlay = await detectUnderlay(); // { device: "eth0", address: "2001:db8::5" }
 * ```
 *
 * @module
 */
import { checkDeviceName } from "./names.ts";
import { netnsExec } from "./exec.ts";
import type { Underlay } from "./types.ts";

/**
 * The host's underlay. With `device`: that device and its first global
 * (not link-local, not tentative) IPv6 address; without: the device of the
 * IPv6 default route, else the first device other than `lo` with a global
 * IPv6 address. Null when there is none.
 */
export async function detectUnderlay(
  device?: string,
  { netns, signal }: { netns?: string; signal?: AbortSignal } = {},
): Promise<Underlay | null> {
  const exec = netnsExec(netns);
  const addrs = async (dev?: string) => {
    const args = ["-j", "-6", "addr", "show", "scope", "global"];
    if (dev) args.push("dev", dev);
    const { stdout } = await exec("ip", args, { signal, timeoutMs: 10_000 });
    return JSON.parse(stdout || "[]") as {
      ifname: string;
      addr_info?: {
        local: string;
        scope: string;
        tentative?: boolean;
        dadfailed?: boolean;
      }[];
    }[];
  };
  const first = (
    list: Awaited<ReturnType<typeof addrs>>,
  ): Underlay | null => {
    for (const l of list) {
      if (l.ifname === "lo") continue;
      for (const a of l.addr_info ?? []) {
        if (
          a.scope === "global" && !a.tentative && !a.dadfailed &&
          !a.local.toLowerCase().startsWith("fe80:")
        ) return { device: l.ifname, address: a.local };
      }
    }
    return null;
  };
  if (device) {
    checkDeviceName(device);
    return first(await addrs(device));
  }
  const { stdout } = await exec(
    "ip",
    ["-j", "-6", "route", "show", "default"],
    {
      signal,
      timeoutMs: 10_000,
    },
  );
  const routes = JSON.parse(stdout || "[]") as { dev?: string }[];
  for (const r of routes) {
    if (!r.dev) continue;
    const found = first(await addrs(r.dev));
    if (found) return found;
  }
  return first(await addrs());
}
