/**
 * zod schemas of every document kept in etcd. The API validates input with
 * the `*Input` schemas (strict: an unknown field is a 400). Readers parse
 * stored documents with the document schemas, which never reject unknown
 * fields: a newer ucloud may have written them, and the store keeps them
 * for the write back (core/documents.ts). A document that fails its schema
 * is skipped by listings and named in the error of a single read.
 *
 * @example
 * ```ts
 * const input = VmCreateInput.parse({ name: "web1", cpus: 1, memory: 128 });
 * ```
 */
import { z } from "zod";

export const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const ID_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** A host name (`worker.host`): lowercase letters, digits, '.' and '-'. */
export const HOST_RE = /^[a-z0-9][a-z0-9.-]{0,62}$/;

/** NIC slots per VM (PCIe root ports `hp0`..`hp7`). */
export const MAX_NICS = 8;

/** SSH keys a VM may name (`keys` of the create input). */
export const MAX_VM_KEYS = 32;

/** The most user data a VM may have, in bytes of UTF-8. */
export const MAX_USER_DATA_BYTES = 64 * 1024;

export const VmPhase = z.enum([
  "pending", // waiting for placement
  "scheduled", // placed on a host, not started yet
  "starting",
  "running",
  "stopping",
  "stopped",
  "crashed", // qemu exited without ucloud asking
  "deleting",
  "failed", // a task gave up; reason says why
  "error", // crashed too often; restarted no more (reason says why)
]);
export type VmPhase = z.infer<typeof VmPhase>;

/**
 * What a user may ask for when creating a VM. Sizes in whole CPUs, MiB of
 * memory and GiB of local disk (`disk` absent: the image's own size, no
 * local disk reserved).
 */
export const VmCreateInput = z.object({
  name: z.string().regex(
    NAME_RE,
    "name must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'",
  ),
  cpus: z.number().int().min(1).max(64),
  memory: z.number().int().min(96).max(1_048_576).describe("MiB"),
  image: z.string().regex(NAME_RE).default("tiny"),
  disk: z.number().int().min(1).max(65_536).optional().describe(
    "GiB of local disk; absent: the image's own size, no disk reserved",
  ),
  networks: z.array(z.string().regex(ID_RE, "network ids"))
    .max(MAX_NICS, `at most ${MAX_NICS} networks`)
    .refine((a) => new Set(a).size === a.length, "networks must be unique")
    .optional()
    .describe("Network ids: one NIC in each, in this order (eth0, eth1, ...)"),
  movable: z.boolean().optional().describe(
    "true: the rebalancer may stop the running VM and start it on another host",
  ),
  keys: z.array(z.string().regex(NAME_RE, "SSH key names"))
    .max(MAX_VM_KEYS, `at most ${MAX_VM_KEYS} keys`)
    .refine((a) => new Set(a).size === a.length, "keys must be unique")
    .optional()
    .describe(
      "Names of the owner's SSH keys the VM's metadata gives the guest; " +
        "each must exist at create. Absent: all of the owner's keys, read " +
        "when the metadata is served, so keys added later count. A key " +
        "deleted since is left out.",
    ),
  userData: z.string()
    .max(
      MAX_USER_DATA_BYTES,
      `userData must be at most ${MAX_USER_DATA_BYTES} bytes`,
    )
    .refine(
      (s) => new TextEncoder().encode(s).length <= MAX_USER_DATA_BYTES,
      `userData must be at most ${MAX_USER_DATA_BYTES} bytes`,
    )
    .refine(
      (s) => !s.includes("\0"),
      "userData must be text, without NUL characters",
    )
    .optional()
    .describe(
      "User data for the guest (e.g. a cloud-config), UTF-8 text of at most " +
        "64 KiB. Kept apart from the VM document (the VM shows its size and " +
        "SHA-256); read it with GET /v1/vms/{id}/user-data.",
    ),
}).strict();
export type VmCreateInput = z.infer<typeof VmCreateInput>;

/**
 * A stored VM's spec: the create input without its user data (stored
 * apart, see `UserData`), without refusing unknown fields.
 */
export const VmSpec = VmCreateInput.omit({ userData: true }).strip();
export type VmSpec = z.infer<typeof VmSpec>;

/** The driver handle: plain JSON the worker re-attaches from. */
export const Handle = z.record(z.string(), z.unknown());

/** One crash of a VM's process: when, and what the driver saw. */
export const Crash = z.object({ at: z.string(), reason: z.string() });
export type Crash = z.infer<typeof Crash>;

/** A NIC's dropped packets (see `VmStatus.spoofDrops`). */
export const SpoofDrops = z.object({
  packets: z.number().int().min(0),
  at: z.string(),
});
export type SpoofDrops = z.infer<typeof SpoofDrops>;

export const VmStatus = z.object({
  phase: VmPhase,
  host: z.string().optional(),
  /** The lease (incarnation) of the worker that started the process. */
  incarnation: z.string().optional(),
  handle: Handle.optional(),
  reason: z.string().optional(),
  /** Crashes within the restart window, oldest first (bounded). */
  crashes: z.array(Crash).optional(),
  /**
   * Packets each NIC's port filter dropped (spoofed addresses, reserved
   * frames, rogue servers), by slot, and when the count last rose, as the
   * host's worker saw it (at most once a minute): the VM sent what it may not.
   */
  spoofDrops: z.record(z.string(), SpoofDrops).optional(),
  updatedAt: z.string(),
});
export type VmStatus = z.infer<typeof VmStatus>;

/**
 * A NIC of a VM: its network, slot, MAC and the addresses known in advance
 * (IPv6: EUI-64 of the MAC in the network's /64). `detaching`: the API
 * asked for its removal; the host unplugs it, then it is dropped.
 */
export const Nic = z.object({
  slot: z.number().int().min(0).max(MAX_NICS - 1),
  network: z.string(),
  mac: z.string(),
  ipv6: z.string(),
  ipv4: z.string().optional(),
  /** Public networks: the host bridge (placement needs a host with it). */
  bridge: z.string().optional(),
  state: z.enum(["attached", "detaching"]),
});
export type Nic = z.infer<typeof Nic>;

export const Vm = z.object({
  id: z.string().regex(ID_RE),
  owner: z.string(),
  spec: VmSpec,
  nics: z.array(Nic).default([]),
  desired: z.enum(["running", "stopped", "deleted"]),
  status: VmStatus,
  /**
   * The image document (`<owner>/<name>`, core/image_schemas.ts) that
   * `spec.image` named at create; absent for an image installed on the
   * hosts by hand (workers/images.ts).
   */
  imageRef: z.string().optional(),
  /** The size and SHA-256 (hex) of the VM's user data, if it has any. */
  userData: z.object({ bytes: z.number().int(), sha256: z.string() })
    .optional(),
  createdAt: z.string(),
});
export type Vm = z.infer<typeof Vm>;

/**
 * `userdata/<vm id>`: a VM's user data, apart from the VM document so
 * that listing VMs does not read it. Written with the VM, deleted with it.
 */
export const UserData = z.object({ vm: z.string(), data: z.string() });
export type UserData = z.infer<typeof UserData>;

export const Host = z.object({
  name: z.string(),
  capacity: z.object({
    cpus: z.number().int(),
    memoryMiB: z.number().int(),
    /** Local disk for VMs; absent when VM disks live elsewhere (shared). */
    diskMiB: z.number().int().optional(),
  }),
  /**
   * What the host offers to placement beyond `capacity` (its worker's
   * `scheduler.*AllocationRatio` and `reservedMemoryMiB`): placement counts
   * `cpus × cpuRatio` cores and `(memoryMiB − reservedMemoryMiB) ×
   * memoryRatio` MiB. Absent (a worker of an older version): 1, 1 and 0.
   */
  allocation: z.object({
    cpuRatio: z.number().positive(),
    memoryRatio: z.number().positive(),
    reservedMemoryMiB: z.number().int().min(0),
  }).optional(),
  addresses: z.array(z.string()),
  os: z.string(),
  drivers: z.array(z.string()),
  state: z.enum(["active", "draining"]),
  registeredAt: z.string(),
  /** The lease of the worker incarnation that registered last. */
  incarnation: z.string().optional(),
  /** The machine that registered last (workers/machine_id.ts). */
  machineId: z.string().optional(),
  /** Public bridges on this host that public networks can use. */
  publicBridges: z.array(z.string()).optional(),
  /** The VXLAN underlay address (absent: networks stay on this host). */
  underlay: z.string().optional(),
  /**
   * The worker's Prometheus endpoint (workers/metrics_server.ts), e.g.
   * `http://[2001:db8::1]:9469/metrics`; absent: it serves none.
   */
  metrics: z.object({ url: z.string() }).optional(),
  /**
   * An ordered shutdown (`ucloud host shutdown`): the worker incarnation
   * named exits once the host is drained, and records when (`done`).
   */
  shutdown: z.object({
    incarnation: z.string(),
    at: z.string(),
    by: z.string(),
    done: z.string().optional(),
  }).optional(),
});
export type Host = z.infer<typeof Host>;

/**
 * `apimetrics/<replica>`: where an API replica serves its `/metrics`, bound
 * to the API process's lease (gone when the replica stops).
 */
export const ApiMetrics = z.object({ url: z.string() });
export type ApiMetrics = z.infer<typeof ApiMetrics>;

/** Bound to the host's lease: its deletion is the death signal. */
export const Alive = z.object({
  incarnation: z.string(),
  started: z.string(),
  pid: z.number().int(),
  lease: z.string(),
  /**
   * The worker stopped in order; until this time (ISO) the host's fencer
   * holds the lease for the next worker process: no tasks run, no VMs are
   * placed here (workers/handover.ts).
   */
  handover: z.string().optional(),
});
export type Alive = z.infer<typeof Alive>;

/** True when the host's incarnation takes work (alive, not handing over). */
export function serving(alive: Alive | null | undefined): boolean {
  return !!alive && alive.handover === undefined;
}

/** What one VM reserves on its host: `allocvm/<host>/<vm>`. */
export const AllocEntry = z.object({
  cpus: z.number().int(),
  memoryMiB: z.number().int(),
  diskMiB: z.number().int().optional(),
});
export type AllocEntry = z.infer<typeof AllocEntry>;

/**
 * A host's reservations in sum (`alloc/<host>`), of constant size:
 * placement compares its mod revision and rewrites it, each VM's own entry
 * is an `AllocEntry` key (scheduler/ledger.ts). `vms`: entries a version
 * before the sums wrote here; they count on top of the sums, and only
 * shrink (a VM leaving is taken out). Its one entry `~sums:<count>`
 * repeats the sums for that version, which keeps it when it rewrites the
 * document without them (scheduler/resources.ts `sumsOf()`).
 */
export const Alloc = z.object({
  cpus: z.number().int().default(0),
  memoryMiB: z.number().int().default(0),
  diskMiB: z.number().int().default(0),
  /** How many VMs the sums hold. */
  count: z.number().int().default(0),
  vms: z.record(z.string(), AllocEntry).default({}),
});
export type Alloc = z.infer<typeof Alloc>;

export const TaskState = z.enum([
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
]);
export type TaskState = z.infer<typeof TaskState>;

/**
 * Who asked for a task through the API: the user it acts for, and the admin
 * who sent the request for them (`X-Act-As`), if one did.
 */
export const Requester = z.object({
  user: z.string(),
  actor: z.string().optional(),
});
export type Requester = z.infer<typeof Requester>;

export const TaskEvent = z.object({
  at: z.string(),
  state: TaskState,
  worker: z.string().optional(),
  message: z.string().optional(),
  /** On the `queued` event of a task made by an API request. */
  by: Requester.optional(),
});

export const Task = z.object({
  id: z.string().regex(ID_RE),
  kind: z.string(),
  target: z.string(),
  payload: z.record(z.string(), z.unknown()),
  owner: z.string().optional(),
  state: TaskState,
  attempts: z.number().int().min(0),
  maxAttempts: z.number().int().min(1),
  notBefore: z.number().int().min(0),
  createdAt: z.string(),
  updatedAt: z.string(),
  worker: z.string().optional(),
  progress: z.string().optional(),
  result: z.unknown().optional(),
  error: z.string().optional(),
  idempotencyKey: z.string().optional(),
  history: z.array(TaskEvent),
});
export type Task = z.infer<typeof Task>;

/** Held by the claiming worker, bound to its lease. */
export const Claim = z.object({
  worker: z.string(),
  lease: z.string(),
  at: z.string(),
});
export type Claim = z.infer<typeof Claim>;

/** Remembers what a create call with an idempotency key made. */
export const Idempotency = z.object({
  vm: z.string(),
  task: z.string(),
  request: z.string(),
});
export type Idempotency = z.infer<typeof Idempotency>;

/** One per failed host incarnation: makes failover run exactly once. */
export const Failover = z.object({ task: z.string(), at: z.string() });
export type Failover = z.infer<typeof Failover>;

/** Held by the one process running a maintenance job's round (`cron/`). */
export const CronLock = z.object({ by: z.string(), at: z.string() });
export type CronLock = z.infer<typeof CronLock>;

export const NetworkKind = z.enum(["private", "public"]);
export const VxlanMode = z.enum(["multicast", "unicast"]);

/** What a user may ask for when creating a network. */
export const NetworkCreateInput = z.object({
  name: z.string().regex(
    NAME_RE,
    "name must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'",
  ),
  kind: NetworkKind.default("private").describe(
    "private: a VXLAN segment of its own; public: the hosts' bridged public network (admin only)",
  ),
  prefix: z.string().optional().describe(
    "IPv6 /64 (admin only); absent: the next free /64 of the pool",
  ),
  ipv4: z.string().optional().describe(
    "Legacy IPv4 subnet (a.b.c.d/8../30); VMs get an address each",
  ),
  mode: VxlanMode.optional().describe(
    "private: multicast (default from config) or unicast VXLAN",
  ),
  bridge: z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/).optional().describe(
    "public: the host bridge name (config network.publicBridges)",
  ),
  dhcp: z.object({
    v6: z.boolean().default(false),
    v4: z.boolean().default(false),
  }).strict().optional(),
}).strict();
export type NetworkCreateInput = z.infer<typeof NetworkCreateInput>;

export const Network = z.object({
  id: z.string().regex(ID_RE),
  name: z.string(),
  owner: z.string(),
  kind: NetworkKind,
  prefix: z.string(),
  ipv4: z.string().optional(),
  vni: z.number().int().optional(),
  mode: VxlanMode.optional(),
  group: z.string().optional(),
  bridge: z.string().optional(),
  /** Hosts send router advertisements for `prefix` (private networks). */
  ra: z.boolean(),
  dhcp: z.object({ v6: z.boolean(), v4: z.boolean() }),
  /**
   * VMs given a NIC here by a version before the member keys
   * (`netvm/<network>/<vm>`, resources/networks/nics.ts); written empty
   * now and only shrinks. The API shows members read from both.
   */
  vms: z.array(z.string()),
  createdAt: z.string(),
});
export type Network = z.infer<typeof Network>;

/** An address or identifier taken from a pool (`ipam/...`). */
export const IpamEntry = z.object({
  network: z.string(),
  vm: z.string().optional(),
  slot: z.number().int().optional(),
});
export type IpamEntry = z.infer<typeof IpamEntry>;

/** A host that has a network's bridge now (bound to the host's lease). */
export const NetMember = z.object({ address: z.string().optional() });
export type NetMember = z.infer<typeof NetMember>;

/**
 * `vmowner-backfilled`: every VM has its owner index entry
 * (tasks/vm_owner_backfill.ts), so listings by owner read only the index.
 */
export const VmOwnersBackfilled = z.object({
  by: z.string(),
  at: z.string(),
  /** VM documents the backfill read. */
  vms: z.number().int().min(0),
});
export type VmOwnersBackfilled = z.infer<typeof VmOwnersBackfilled>;

/** An owner index entry `vmowner/<owner>/<vm>`: its key says it all. */
export const VmOwnerEntry = z.object({});
export type VmOwnerEntry = z.infer<typeof VmOwnerEntry>;
