/**
 * Removing everything ucloud made on a host's network: ports leave their
 * bridges (our taps are deleted), then radvd, the DHCP servers, both nft
 * tables, the VXLAN devices and the private bridges go, and the host
 * input policy is removed. Public bridges stay, without the metadata
 * addresses.
 *
 * @example
 * ```ts
 * await teardownHost({ exec, step, radvd, dhcp, stateDir, log, removeHostInput }, signal);
 * ```
 *
 * @module
 */
import type { Logger } from "../../core/log.ts";
import { deleteBridges } from "./bridges.ts";
import { dropBridgeAddrs, dropReplyRoutes } from "./bridge_addrs.ts";
import type { DhcpServers } from "./dhcp.ts";
import type { Step } from "./exec.ts";
import { listLinks, readNftTable } from "./host_state.ts";
import { NFT_TABLE } from "./names.ts";
import { deleteTableScript } from "./nft.ts";
import { deleteIngressScript } from "./nft_ingress.ts";
import { dropPorts, ourPorts } from "./ports.ts";
import type { Radvd } from "./radvd.ts";
import type { Exec } from "./types.ts";

/** What {@linkcode teardownHost} works with: the driver's parts. */
export interface TeardownContext {
  exec: Exec;
  step: Step;
  radvd: Radvd;
  dhcp: DhcpServers;
  /** The worker's state directory (`<stateDir>/net` is removed). */
  stateDir: string;
  log: Logger;
  /** Removes the host input policy (drivers/net/host_input.ts). */
  removeHostInput: () => Promise<void>;
}

/** Removes everything ucloud made on this host's network. */
export async function teardownHost(
  ctx: TeardownContext,
  signal?: AbortSignal,
): Promise<void> {
  const links = await listLinks(ctx.step, signal);
  const table = await readNftTable(ctx.exec, signal);
  const ports = ourPorts(table, links);
  await dropPorts(ports, links, ctx.step, signal);
  await ctx.radvd.stop();
  await ctx.dhcp.stopAll({ signal });
  if (await readNftTable(ctx.exec, signal, "netdev")) {
    await ctx.step(
      `delete table netdev ${NFT_TABLE}`,
      "nft",
      ["-f", "-"],
      signal,
      deleteIngressScript(),
    );
  }
  if (table) {
    await ctx.step(
      `delete table bridge ${NFT_TABLE}`,
      "nft",
      ["-f", "-"],
      signal,
      deleteTableScript(),
    );
  }
  await deleteBridges(links, new Set(), ctx.step, signal);
  await dropBridgeAddrs(links, new Set(), ctx.step, signal);
  await dropReplyRoutes(ctx.step, signal);
  await ctx.removeHostInput();
  await Deno.remove(`${ctx.stateDir}/net`).catch(() => {});
  ctx.log.info("network torn down", { ports: ports.size });
}
