/**
 * The etcd keyspace, relative to the configured prefix (see DESIGN.md).
 * Store methods add the prefix; these functions never do.
 *
 * @example
 * ```ts
 * keys.vm("vm-1"); // "vm/vm-1"
 * ```
 */
export const keys = {
  vm: (id: string) => `vm/${id}`,
  vms: "vm/",
  /**
   * VM `vm` is owned by `owner` (the owner index: written and removed in the
   * transactions that create and delete the VM document).
   */
  vmOwner: (owner: string, vm: string) =>
    `vmowner/${encodeURIComponent(owner)}/${vm}`,
  vmsOwnedBy: (owner: string) => `vmowner/${encodeURIComponent(owner)}/`,
  vmOwners: "vmowner/",
  /** Every VM's owner index key was written (tasks/vm_owner_backfill.ts). */
  vmOwnersBackfilled: "vmowner-backfilled",
  /** A VM's user data (core/schemas.ts `UserData`). */
  userData: (vm: string) => `userdata/${vm}`,
  host: (name: string) => `host/${name}`,
  hosts: "host/",
  alive: (name: string) => `alive/${name}`,
  alives: "alive/",
  /**
   * An API replica's `/metrics` for discovery (core/schemas.ts
   * `ApiMetrics`), bound to the API process's lease.
   */
  apiMetrics: (replica: string) => `apimetrics/${replica}`,
  apiMetricsAll: "apimetrics/",
  /** A host's reservations in sum (core/schemas.ts `Alloc`). */
  alloc: (host: string) => `alloc/${host}`,
  allocs: "alloc/",
  /** What VM `vm` reserves on `host` (core/schemas.ts `AllocEntry`). */
  allocVm: (host: string, vm: string) => `allocvm/${host}/${vm}`,
  allocVmsOf: (host: string) => `allocvm/${host}/`,
  allocVms: "allocvm/",
  task: (id: string) => `task/${id}`,
  tasks: "task/",
  queue: (target: string, id: string) => `queue/${target}/${id}`,
  queueOf: (target: string) => `queue/${target}/`,
  queues: "queue/",
  claim: (taskId: string) => `claim/${taskId}`,
  claims: "claim/",
  idempotency: (owner: string, key: string) => `idem/${owner}/${key}`,
  failover: (host: string, incarnation: string) =>
    `failover/${host}/${incarnation}`,
  /** A cluster-wide lock of a maintenance job, bound to its holder's lease. */
  cronLock: (job: string) => `cron/${job}`,
  /** Marks that a scheduled round of a job ran (bound to a short lease). */
  cronRound: (job: string, round: string) => `cron-round/${job}/${round}`,
  /** Where task retention goes on (tasks/retention.ts). */
  retentionCursor: "retention/cursor",
  /** The old task a resource (its key) keeps (tasks/retention.ts). */
  retentionKept: (resource: string) => `retention/kept/${resource}`,
  /** A user's TOTP seed, encrypted (core/totp.ts). */
  otpSeed: (realm: string, name: string) => `otp-seed/${realm}/${name}`,
  otpSeeds: "otp-seed/",
  /** A used TOTP step (replay record, bound to a lease). */
  otpUsed: (realm: string, name: string, step: string) =>
    `otp-used/${realm}/${name}/${step}`,
  otpUseds: "otp-used/",
  /** Recent attempts of `name` in a cluster-wide limit (bound to a lease). */
  attempts: (scope: string, name: string) => `attempts/${scope}/${name}`,
  attemptsOf: (scope: string) => `attempts/${scope}/`,
  allAttempts: "attempts/",
  /** A bearer token revoked before its expiry (bound to a lease). */
  authRevoked: (jti: string) => `auth-revoked/${jti}`,
  authRevokeds: "auth-revoked/",
  /**
   * A console ticket (core/console_schemas.ts), by the SHA-256 of the
   * ticket (hex): etcd never holds the ticket itself. Bound to a lease.
   */
  consoleTicket: (hash: string) => `console/${hash}`,
  consoleTickets: "console/",
  /** A one-time grant to host `host`'s console relay (bound to a lease). */
  consoleGrant: (host: string, id: string) => `consolegrant/${host}/${id}`,
  consoleGrants: "consolegrant/",
  /** Where host `host`'s console relay listens (on the worker's lease). */
  consoleRelay: (host: string) => `consolerelay/${host}`,
  consoleRelays: "consolerelay/",
  network: (id: string) => `network/${id}`,
  networks: "network/",
  /** A VXLAN id in use. */
  ipamVni: (vni: number) => `ipam/vni/${vni}`,
  ipamVnis: "ipam/vni/",
  /** An IPv6 /64 in use (the prefix with '/' as '_'). */
  ipamPrefix: (prefix: string) => `ipam/prefix/${prefix.replace("/", "_")}`,
  ipamPrefixes: "ipam/prefix/",
  /** A NIC MAC in use. */
  ipamMac: (mac: string) => `ipam/mac/${mac}`,
  /** An IPv4 address in use in a network. */
  ipamV4: (network: string, addr: string) => `ipam/v4/${network}/${addr}`,
  ipamV4s: (network: string) => `ipam/v4/${network}/`,
  /** Host `host` has network `network`'s bridge (bound to its lease). */
  netMember: (network: string, host: string) => `netmember/${network}/${host}`,
  netMembersOf: (network: string) => `netmember/${network}/`,
  netMembers: "netmember/",
  /** VM `vm` has a NIC in network `network` (the network's member index). */
  netVm: (network: string, vm: string) => `netvm/${network}/${vm}`,
  netVmsOf: (network: string) => `netvm/${network}/`,
  /** A user's SSH public key (core/image_schemas.ts). */
  sshKey: (owner: string, name: string) => `key/${owner}/${name}`,
  sshKeysOf: (owner: string) => `key/${owner}/`,
  sshKeys: "key/",
  /** An image, by its ref `<owner>/<name>` (core/image_schemas.ts). */
  image: (ref: string) => `image/${ref}`,
  imagesOf: (owner: string) => `image/${owner}/`,
  images: "image/",
  /** The key that seals continue tokens of listings (core/page_token.ts). */
  pageKey: "page-key",
  /** A user's limits set by an admin (core/quota_schemas.ts). */
  quota: (user: string) => `quota/${user}`,
  /** What a user holds: VMs, cores, memory, disk, networks. */
  usage: (user: string) => `usage/${user}`,
  /** Every user's usage was written (tasks/usage_backfill.ts). */
  usageBackfilled: "usage-backfilled",
} as const;

/** Returns the last path segment of a key: the id of the document. */
export function idOf(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

/**
 * A random id with a readable prefix that sorts by creation time, e.g.
 * `t-mbq3k2x1-3f9a0c1d`: queue keys then list oldest first.
 */
export function newId(prefix: string): string {
  const b = crypto.getRandomValues(new Uint8Array(4));
  const rand = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${prefix}-${Date.now().toString(36).padStart(9, "0")}-${rand}`;
}
