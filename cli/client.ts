/**
 * The typed client of the ucloud API that the CLI's commands call: one
 * method per route, typed with the API's own schemas (`api_types.ts`,
 * generated from its OpenAPI document), and the lookups commands share
 * (a VM or network by id or name, a task followed when forwarded).
 *
 * @example
 * ```ts
 * const client = apiClient(connect("http://127.0.0.1:8750", fetch));
 * const { items } = await client.vms.list();
 * ```
 *
 * @module
 */
import type { components } from "./api_types.ts";
import { ApiError, CliError } from "./errors.ts";
import type { Transport } from "./http.ts";

type Schemas = components["schemas"];

/** A VM as the API returns it. */
export type Vm = Schemas["Vm"];
/** A NIC of a VM: slot `N` is the guest's `ethN`. */
export type Nic = Vm["nics"][number];
/** A network as the API returns it. */
export type Network = Schemas["Network"];
/** An SSH public key as the API returns it. */
export type SshKey = Schemas["SshKey"];
/** A user's limits and usage (`GET /v1/users/{name}/quota`). */
export type Quota = Schemas["Quota"];
/** A page of `GET /v1/users`: users with their quotas, by name. */
export type UserPage = Schemas["UserPage"];
/** What `PUT /v1/users/{name}/quota` takes: the user's own limits. */
export type QuotaLimits = Quota["own"];
/** What `POST /v1/keys` takes. */
export type SshKeyInput = Pick<SshKey, "name" | "publicKey">;
/** A task as the API returns it. */
export type Task = Schemas["Task"];
/** A host as `GET /v1/hosts` lists it. */
export type HostView = Schemas["HostView"];
/** What `GET /v1/maintenance/rebalance` answers: a plan, nothing done. */
export type RebalancePlan = Schemas["RebalancePlan"];
/** What `POST /v1/maintenance/rebalance` answers. */
export type RebalanceResult = Schemas["RebalanceResult"];
/** What `GET /v1/maintenance/etcd` answers: every etcd member's status. */
export type EtcdStatus = Schemas["EtcdStatus"];
/** What a drain did to one VM (`GET /v1/tasks/{id}/drain`). */
export type DrainedVm = Schemas["DrainedVm"];
/** What a drain did to each VM; `done` once every move has ended. */
export type DrainReport = Schemas["DrainReport"];
/** What create, start, stop, delete, attach and detach answer. */
export type Operation = Schemas["VmAndMaybeTask"];
/** What drain, enable and shutdown of a host answer. */
export type HostChange = Schemas["HostChange"];
/** An image as the API returns it. */
export type Image = Schemas["Image"];
/** What `POST /v1/images` answers: the image and its task, if any. */
export type ImageAndTask = Schemas["ImageAndTask"];
/** Where an HTTP upload stands (`GET`/`PUT /v1/images/{name}/upload`). */
export type UploadState = Schemas["UploadState"];
/** What `POST /v1/images` takes: the name and at most one source. */
export interface ImageInput {
  name: string;
  file?: string;
  url?: string;
}
/** A listing. */
export interface List<T> {
  items: T[];
}
/** A page of a paged listing: `continue` names the next, null at the end. */
export interface Page<T> extends List<T> {
  continue?: string | null;
}
/** The largest page the API serves (api/pages.ts). */
const MAX_PAGE = 1000;

/**
 * What `POST /v1/vms` takes; the API's default image when none is given,
 * and the user data (not part of the stored spec).
 */
export type VmInput = Omit<Vm["spec"], "image"> & {
  image?: string;
  userData?: string;
};
/** What `POST /v1/networks` takes: the name, the rest defaults. */
export type NetworkInput =
  & Pick<Network, "name">
  & Partial<Pick<Network, "kind" | "prefix" | "ipv4" | "mode" | "bridge">>
  & { dhcp?: Network["dhcp"] };
/** Filters of `GET /v1/tasks`. */
export interface TaskQuery {
  state?: string;
  kind?: string;
  vm?: string;
  limit?: number;
}

/** What `GET /v1/auth/whoami` answers. */
export type Whoami = Schemas["Whoami"];
/** What `POST /v1/auth/seed` takes: the LDAP name and password. */
export type SeedInput = Schemas["SeedRequest"];
/** What `POST /v1/auth/seed` answers: the new TOTP seed, shown once. */
export type Seed = Schemas["SeedAnswer"];
/** What `POST /v1/auth/token` answers. */
export type Token = Schemas["BearerToken"];

/**
 * Reads a paged listing page by page, following `continue`, until its end
 * or `max` items: one list of them all.
 */
async function follow<T>(
  send: Transport,
  path: string,
  query = new URLSearchParams(),
  max = Infinity,
): Promise<List<T>> {
  const items: T[] = [];
  let token: string | null | undefined;
  do {
    const q = new URLSearchParams(query);
    q.set("limit", String(Math.min(MAX_PAGE, max - items.length)));
    if (token) q.set("continue", token);
    const page = await send<Page<T>>("GET", `${path}?${q}`);
    items.push(...page.items.slice(0, max - items.length));
    token = page.continue;
  } while (token && items.length < max);
  return { items };
}

const vmPath = (id: string) => `/v1/vms/${encodeURIComponent(id)}`;
const networkPath = (id: string) => `/v1/networks/${encodeURIComponent(id)}`;
const keyPath = (name: string) => `/v1/keys/${encodeURIComponent(name)}`;
const hostPath = (name: string) => `/v1/hosts/${encodeURIComponent(name)}`;
const taskPath = (id: string) => `/v1/tasks/${encodeURIComponent(id)}`;
const quotaPath = (user: string) =>
  `/v1/users/${encodeURIComponent(user)}/quota`;
const imagePath = (name: string, owner?: string) =>
  `/v1/images/${encodeURIComponent(name)}` +
  (owner ? `?owner=${encodeURIComponent(owner)}` : "");
const uploadPath = (name: string) =>
  `/v1/images/${encodeURIComponent(name)}/upload`;

/**
 * The API's routes as typed calls over a transport (`connect()`).
 *
 * @example
 * ```ts
 * const vm = await apiClient(send).vms.get("vm-1");
 * ```
 */
export function apiClient(send: Transport) {
  return {
    vms: {
      list: () => follow<Vm>(send, "/v1/vms"),
      get: (id: string) => send<Vm>("GET", vmPath(id)),
      create: (body: VmInput, idempotencyKey?: string) =>
        send<Operation>("POST", "/v1/vms", {
          body,
          headers: idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {},
        }),
      start: (id: string) => send<Operation>("POST", `${vmPath(id)}/start`),
      stop: (id: string, body: Schemas["PowerInput"]) =>
        send<Operation>("POST", `${vmPath(id)}/stop`, { body }),
      reboot: (id: string, body: Schemas["PowerInput"]) =>
        send<Operation>("POST", `${vmPath(id)}/reboot`, { body }),
      delete: (id: string) => send<Operation>("DELETE", vmPath(id)),
      console: (id: string) =>
        send<Schemas["ConsoleTicket"]>("POST", `${vmPath(id)}/console`),
      attach: (id: string, network: string) =>
        send<Operation>("POST", `${vmPath(id)}/nics`, { body: { network } }),
      detach: (id: string, slot: number) =>
        send<Operation>("DELETE", `${vmPath(id)}/nics/${slot}`),
    },
    networks: {
      list: () => send<List<Network>>("GET", "/v1/networks"),
      get: (id: string) => send<Network>("GET", networkPath(id)),
      create: (body: NetworkInput) =>
        send<Network>("POST", "/v1/networks", { body }),
      delete: (id: string) =>
        send<{ deleted: string }>("DELETE", networkPath(id)),
    },
    keys: {
      list: () => send<List<SshKey>>("GET", "/v1/keys"),
      get: (name: string) => send<SshKey>("GET", keyPath(name)),
      create: (body: SshKeyInput) => send<SshKey>("POST", "/v1/keys", { body }),
      delete: (name: string) =>
        send<{ deleted: string }>("DELETE", keyPath(name)),
    },
    images: {
      list: () => send<List<Image>>("GET", "/v1/images"),
      get: (name: string, owner?: string) =>
        send<Image>("GET", imagePath(name, owner)),
      create: (body: ImageInput) =>
        send<ImageAndTask>("POST", "/v1/images", { body }),
      delete: (name: string, owner?: string) =>
        send<{ deleted: string }>("DELETE", imagePath(name, owner)),
      publish: (name: string, value: boolean, owner?: string) => {
        const [path, query] = imagePath(name, owner).split("?");
        const action = value ? "publish" : "unpublish";
        return send<Image>(
          "POST",
          `${path}/${action}${query ? `?${query}` : ""}`,
        );
      },
      offset: (name: string) => send<UploadState>("GET", uploadPath(name)),
      /** Sends `bytes` as the range starting at `start` of `total`. */
      upload: (
        name: string,
        bytes: Uint8Array<ArrayBuffer>,
        start: number,
        total: number,
      ) =>
        send<UploadState>("PUT", uploadPath(name), {
          raw: bytes,
          headers: {
            "content-range": `bytes ${start}-${
              start + bytes.length - 1
            }/${total}`,
          },
        }),
    },
    hosts: {
      list: () => send<List<HostView>>("GET", "/v1/hosts"),
      drain: (name: string) =>
        send<HostChange>("POST", `${hostPath(name)}/drain`),
      enable: (name: string) =>
        send<HostChange>("POST", `${hostPath(name)}/enable`),
      shutdown: (name: string) =>
        send<HostChange>("POST", `${hostPath(name)}/shutdown`),
    },
    tasks: {
      /** The newest `limit` (default 100) matching tasks, over pages. */
      list: ({ state, kind, vm, limit = 100 }: TaskQuery) => {
        const query = new URLSearchParams();
        if (state) query.set("state", state);
        if (kind) query.set("kind", kind);
        if (vm) query.set("vm", vm);
        return follow<Task>(send, "/v1/tasks", query, limit);
      },
      get: (id: string) => send<Task>("GET", taskPath(id)),
      drain: (id: string) => send<DrainReport>("GET", `${taskPath(id)}/drain`),
    },
    rebalance: {
      plan: () => send<RebalancePlan>("GET", "/v1/maintenance/rebalance"),
      run: () => send<RebalanceResult>("POST", "/v1/maintenance/rebalance"),
    },
    maintenance: {
      etcd: () => send<EtcdStatus>("GET", "/v1/maintenance/etcd"),
    },
    quotas: {
      /** Every user with usage or own limits (admins), over pages. */
      list: async () => {
        const items: Quota[] = [];
        let after: string | null = null;
        do {
          const q = new URLSearchParams({ limit: "200" });
          if (after !== null) q.set("after", after);
          const page: UserPage = await send<UserPage>("GET", `/v1/users?${q}`);
          items.push(...page.items);
          after = page.next;
        } while (after !== null);
        return items;
      },
      get: (user: string) => send<Quota>("GET", quotaPath(user)),
      set: (user: string, body: QuotaLimits) =>
        send<Quota>("PUT", quotaPath(user), { body }),
    },
    auth: {
      whoami: () => send<Whoami>("GET", "/v1/auth/whoami"),
      seed: (body: SeedInput) => send<Seed>("POST", "/v1/auth/seed", { body }),
      token: (headers: Record<string, string>) =>
        send<Token>("POST", "/v1/auth/token", { headers }),
    },
  };
}

/** The typed client (`apiClient()`). */
export type Client = ReturnType<typeof apiClient>;

/** What `answer` resolves to, or null when the API answers 404. */
export async function orNull<T>(answer: Promise<T>): Promise<T | null> {
  try {
    return await answer;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/** A kind of resource that commands name by id or name. */
export interface Kind<T> {
  /** In messages: "vm", "VM", "VMs". */
  word: string;
  noun: string;
  nouns: string;
  get: (client: Client, id: string) => Promise<T>;
  list: (client: Client) => Promise<List<T>>;
  name: (item: T) => string;
}

/** VMs, named by `spec.name`. */
export const VMS: Kind<Vm> = {
  word: "vm",
  noun: "VM",
  nouns: "VMs",
  get: (c, id) => c.vms.get(id),
  list: (c) => c.vms.list(),
  name: (vm) => vm.spec.name,
};

/** Networks, named by `name`. */
export const NETWORKS: Kind<Network> = {
  word: "network",
  noun: "network",
  nouns: "networks",
  get: (c, id) => c.networks.get(id),
  list: (c) => c.networks.list(),
  name: (net) => net.name,
};

/**
 * The item whose id or, failing that, whose name is `ref`; null when none.
 * Several with that name are an error: the user must pick an id.
 *
 * @example
 * ```ts
 * const vm = await find(client, VMS, "web1");
 * ```
 */
export async function find<T extends { id: string }>(
  client: Client,
  kind: Kind<T>,
  ref: string,
): Promise<T | null> {
  try {
    const item = await orNull(kind.get(client, ref));
    if (item) return item;
  } catch (err) {
    // A name that is not a valid id may be refused as a bad request.
    if (!(err instanceof ApiError && err.status === 400)) throw err;
  }
  const { items } = await kind.list(client);
  const named = items.filter((item) => kind.name(item) === ref);
  if (named.length > 1) {
    const ids = named.map((item) => item.id).join(", ");
    throw new CliError(
      `Cannot pick ${kind.word} ${ref}: ${named.length} ${kind.nouns} have ` +
        `this name (${ids}); use an id`,
    );
  }
  return named[0] ?? null;
}

/**
 * Like {@linkcode find}, but a `CliError` when nothing has that id or name.
 *
 * @example
 * ```ts
 * const net = await resolve(client, NETWORKS, "lan");
 * ```
 */
export async function resolve<T extends { id: string }>(
  client: Client,
  kind: Kind<T>,
  ref: string,
): Promise<T> {
  const item = await find(client, kind, ref);
  if (!item) {
    throw new CliError(
      `Cannot find ${kind.word} ${ref}: no ${kind.noun} has this id or name`,
    );
  }
  return item;
}

/** Network names by id, for showing NICs; networks not visible are left out. */
export async function networkNames(
  client: Client,
): Promise<Map<string, string>> {
  const { items } = await client.networks.list();
  return new Map(items.map((net) => [net.id, net.name]));
}

/** The task, or once it succeeded by forwarding, the task it forwarded to. */
export async function followTask(client: Client, id: string): Promise<Task> {
  let task = await client.tasks.get(id);
  while (task.state === "succeeded") {
    const next = (task.result as { forwarded?: unknown } | undefined)
      ?.forwarded;
    if (typeof next !== "string") break;
    task = await client.tasks.get(next);
  }
  return task;
}
