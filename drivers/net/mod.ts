/**
 * The host network driver: bridges, VXLAN, VM ports, the nftables port
 * firewall and radvd, converged to a {@linkcode HostNetState} by
 * {@linkcode NetDriver.sync}.
 *
 * @example
 * ```ts
 * import { detectUnderlay, NetDriver } from "./drivers/net/mod.ts";
 * const net = new NetDriver({ stateDir, underlay: await detectUnderlay() });
 * await net.sync({ networks, ports, peers }, { signal });
 * ```
 *
 * @module
 */
export { NetDriver, type NetDriverOptions } from "./driver.ts";
export { detectUnderlay } from "./underlay.ts";
export {
  bridgeOf,
  legacyTapName,
  NFT_TABLE,
  nicChain,
  nicTapName,
  tapName,
  vxlanOf,
} from "./names.ts";
export type {
  HostNetState,
  NetworkSpec,
  PortSpec,
  SyncReport,
  Underlay,
} from "./types.ts";
