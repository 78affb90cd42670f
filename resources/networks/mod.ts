/**
 * The network resource: create (create.ts) and delete (delete.ts)
 * networks, read them as a caller may (view.ts), hand out VNIs and /64s
 * (ipam.ts), and the NIC ledger of MACs, IPv4 addresses and network
 * membership that VMs and task handlers write (nics.ts). Imports only
 * core/; the API (api/networks.ts), the VM resource and the task handlers
 * call it.
 *
 * @example
 * ```ts
 * import { createNetwork, listNetworks } from "../resources/networks/mod.ts";
 * const net = await createNetwork({ store, config }, who, { name: "lan", kind: "private" });
 * ```
 */
export { createNetwork } from "./create.ts";
export { deleteNetwork } from "./delete.ts";
export {
  canUse,
  checkHostBridges,
  type NicPlan,
  planNics,
  releaseNics,
} from "./nics.ts";
export {
  listNetworks,
  type NetworkView,
  readNetwork,
  showNetwork,
  VMS_SHOWN,
} from "./view.ts";
