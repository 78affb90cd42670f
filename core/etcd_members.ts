/**
 * The members of the etcd cluster a store talks to: each one's database
 * size (file and in use), revision, version and alarms (what admins see in
 * `GET /v1/maintenance/etcd` and `ucloud host list`), and defragmenting
 * one member. A one-member cluster (the embedded etcd) is asked through the
 * store's own client; each member of a larger cluster through a client of
 * its own client URLs, one at a time.
 *
 * @example
 * ```ts
 * for (const m of await memberStatuses(store)) {
 *   if (m.dbSize - m.dbSizeInUse > 64 * 2 ** 20) await defragment(store, m);
 * }
 * ```
 */
import { Etcd3 } from "etcd3";
import { UnavailableError } from "./errors.ts";
import type { Store } from "./store.ts";

/** One etcd member as its status answers. */
export interface MemberStatus {
  /** The member's name (`--name`). */
  name: string;
  /** Its client URLs. */
  endpoints: string[];
  version: string;
  /** Size of its database file, bytes. */
  dbSize: number;
  /** Bytes of that file in use; the rest is freed by a defragmentation. */
  dbSizeInUse: number;
  /** The store's current revision as this member sees it. */
  revision: string;
  leader: boolean;
  /** Raised alarms, e.g. `NOSPACE` (the quota is reached: writes fail). */
  alarms: string[];
  /** Set when the member did not answer; the numbers are then 0. */
  error?: string;
}

type Client = Pick<Etcd3, "maintenance">;

/** The store's client for one member, else a client of `urls`. */
async function withMember<T>(
  store: Store,
  urls: string[],
  single: boolean,
  f: (c: Client) => Promise<T>,
): Promise<T> {
  if (single) return await f(store.client);
  const c = new Etcd3({ hosts: urls, dialTimeout: store.timeoutMs });
  try {
    return await f(c);
  } finally {
    c.close();
  }
}

/** Every member's status, in the cluster's member order. */
export async function memberStatuses(store: Store): Promise<MemberStatus[]> {
  const deadline = () => ({ deadline: Date.now() + store.timeoutMs });
  const { members } = await store.client.cluster.memberList({}, deadline())
    .catch((err) => {
      throw new UnavailableError(
        `Cannot list the etcd members: ${(err as Error).message}`,
        { cause: err },
      );
    });
  const single = members.length === 1;
  return await Promise.all(members.map(async (m) => {
    const base = { name: m.name, endpoints: m.clientURLs };
    try {
      const s = await withMember(
        store,
        m.clientURLs,
        single,
        (c) => c.maintenance.status(deadline()),
      );
      return {
        ...base,
        version: s.version,
        dbSize: Number(s.dbSize),
        dbSizeInUse: Number(s.dbSizeInUse),
        revision: String(s.header.revision),
        leader: s.leader === m.ID,
        alarms: (s.errors ?? []).flatMap((e) => {
          const a = /alarm:(\w+)/.exec(e);
          return a ? [a[1]] : [];
        }),
      };
    } catch (err) {
      return {
        ...base,
        version: "",
        dbSize: 0,
        dbSizeInUse: 0,
        revision: "0",
        leader: false,
        alarms: [],
        error: (err as Error).message,
      };
    }
  }));
}

/**
 * Defragments one member (it answers nothing else meanwhile, so members go
 * one at a time); `timeoutMs` bounds how long it may take.
 */
export async function defragment(
  store: Store,
  member: Pick<MemberStatus, "endpoints">,
  { single, timeoutMs = 60_000 }: { single: boolean; timeoutMs?: number },
): Promise<void> {
  await withMember(
    store,
    member.endpoints,
    single,
    (c) => c.maintenance.defragment({ deadline: Date.now() + timeoutMs }),
  );
}
