/**
 * Storage fencing of RBD disks: the clients that have an image open
 * (`rbd status` watchers) or hold its exclusive lock (`rbd lock ls`), and
 * block-listing them (`ceph osd blocklist add`), after which the OSDs refuse
 * their requests (ESHUTDOWN), drop their watches, and a new client can break
 * the lock and write. The exclusive lock alone does not stop a second live
 * writer (librbd hands it over on request); the blocklist does.
 *
 * @example
 * ```ts
 * const pool = { pool: "ucloud", conf: "/etc/ceph/ceph.conf", user: "admin" };
 * const fenced = await fenceImage(pool, "vm-7"); // before the new qemu opens it
 * ```
 *
 * @module
 */
import { cli, type RbdPool, spec } from "./_rbd_cli.ts";

/** A client with the image open (`rbd status`). */
export interface RbdWatcher {
  address: string;
  client: number;
}

/** A holder of the image's lock (`rbd lock ls`), the exclusive lock included. */
export interface RbdLocker {
  locker: string;
  id: string;
  address: string;
}

const ADDRESS = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}\/\d+$/;

/**
 * The clients that have the image open (its watchers, `rbd status`).
 *
 * @example
 * ```ts
 * const [w] = await watchers(pool, "vm-7"); // { address: "10.0.0.5:0/1234", client: 4123 }
 * ```
 */
export async function watchers(
  p: RbdPool,
  image: string,
): Promise<RbdWatcher[]> {
  const out = await cli("rbd", p, [
    "status",
    "--format",
    "json",
    spec(p, image),
  ]);
  const status = JSON.parse(out) as { watchers?: RbdWatcher[] };
  return (status.watchers ?? []).map((w) => ({
    address: w.address,
    client: w.client,
  }));
}

/**
 * The holders of the image's locks (`rbd lock ls`): the exclusive lock's
 * owner shows as id `auto <cookie>`.
 *
 * @example
 * ```ts
 * const [owner] = await lockers(pool, "vm-7");
 * ```
 */
export async function lockers(
  p: RbdPool,
  image: string,
): Promise<RbdLocker[]> {
  const out = await cli("rbd", p, [
    "lock",
    "ls",
    "--format",
    "json",
    spec(p, image),
  ]);
  return (JSON.parse(out) as RbdLocker[]).map((l) => ({
    locker: l.locker,
    id: l.id,
    address: l.address,
  }));
}

/**
 * Block-lists one client instance (`ceph osd blocklist add`): once the OSDs
 * have the new map they refuse its requests, its watches are dropped and its
 * lock can be broken. The entry expires after `expireSeconds` (Ceph's default
 * is one hour).
 *
 * @example
 * ```ts
 * await blocklist(pool, "10.0.0.5:0/1234");
 * ```
 */
export async function blocklist(
  p: RbdPool,
  address: string,
  { expireSeconds }: { expireSeconds?: number } = {},
): Promise<void> {
  if (!ADDRESS.test(address)) {
    throw new TypeError(
      `Cannot blocklist ${JSON.stringify(address)}: not a Ceph client address`,
    );
  }
  const expire = expireSeconds === undefined ? [] : [String(expireSeconds)];
  await cli("ceph", p, ["osd", "blocklist", "add", address, ...expire]);
}

/**
 * The storage fence: block-lists every client that has the image open or
 * holds its lock, except those `spare` says to keep, and returns the
 * addresses it block-listed. Call it before a new qemu opens the disk of a
 * VM whose old host failed.
 *
 * @example
 * ```ts
 * const fenced = await fenceImage(pool, "vm-7"); // ["10.0.0.5:0/1234"]
 * ```
 */
export async function fenceImage(
  p: RbdPool,
  image: string,
  { spare = () => false }: { spare?: (address: string) => boolean } = {},
): Promise<string[]> {
  const [w, l] = await Promise.all([watchers(p, image), lockers(p, image)]);
  const addresses = [...new Set([...w, ...l].map((c) => c.address))]
    .filter((a) => !spare(a));
  for (const address of addresses) await blocklist(p, address);
  return addresses;
}

/**
 * The IP of a Ceph client address (`10.0.0.5:0/1234` → `10.0.0.5`,
 * `[fd00::2]:0/1234` → `fd00::2`).
 */
export function addressIp(address: string): string {
  const m = /^\[([^\]]+)\]:|^([^:]+):/.exec(address);
  return m?.[1] ?? m?.[2] ?? address;
}
