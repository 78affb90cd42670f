/**
 * `GET /v1/events`: a server-sent event stream of the caller's VMs and
 * tasks, fed by the process's shared etcd watches (api/event_hub.ts).
 * First the caller's VMs as they are at one revision S (`vm` events, read
 * in pages), then `synced` (`{"revision": S}`), then every change after S:
 * `vm` (the VM as `GET /v1/vms/{id}` shows it to the caller),
 * `vm-deleted` (`{"id"}`) and `task` (the task as `GET /v1/tasks` shows
 * it). Each event's `id` is the etcd mod revision of the change. A user
 * sees their own VMs and tasks; an admin too, and everyone's with
 * `?all=1`. A comment heartbeat goes out every 15 s; at each, the bearer
 * token or session is checked again, and a revoked or expired one ends the
 * stream with `event: end` (`{"reason"}`); a stream authenticated by TOTP
 * ends after the lifetime of a bearer token. A client that does not keep
 * up, or a broken watch, gets `event: reset` and the end: it connects
 * again and starts from a new snapshot (api/sse_stream.ts). A user holds
 * at most `maxStreamsPerUser` streams open at once and the process
 * `maxStreams`: beyond, 429 with `Retry-After` (api/stream_slots.ts). A
 * user's snapshot reads their VMs through the owner index, `?all=1` and a
 * cluster not backfilled yet read `vm/` (resources/vms/view.ts).
 *
 * @example
 * ```ts
 * app.route("/v1/events", events({ store, hub: new EventHub(store) }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { keys } from "../core/keys.ts";
import { type Logger, logger } from "../core/log.ts";
import { Task, Vm } from "../core/schemas.ts";
import type { Kv, Store } from "../core/store.ts";
import { indexedPage } from "../core/store_page.ts";
import { decodeRaw, LIST_PAGE, listPages } from "../core/watch.ts";
import type { Caller } from "../resources/deps.ts";
import { taskView, vmView } from "../resources/host_internals.ts";
import { ownerIndexReady } from "../resources/vms/owner_index.ts";
import { authMethod, currentToken } from "./auth.ts";
import { requireAdmin, router } from "./env.ts";
import { errorJson, errorResponses } from "./errors.ts";
import type { EventHub, HubEvent } from "./event_hub.ts";
import { frame, SSE_HEADERS, SseStream } from "./sse_stream.ts";
import { type SlotRefusal, StreamSlots } from "./stream_slots.ts";
import type { BearerTokens } from "./tokens.ts";

/** The feeds of the stream: VM and task documents. */
export const VM_FEED = { prefix: keys.vms, schema: Vm };
export const TASK_FEED = { prefix: keys.tasks, schema: Task };

/** The wait a refused stream is told to keep before it tries again. */
const RETRY_AFTER_SECONDS = 10;
/** Events that arrive while the snapshot is read, at most. */
const MAX_EARLY_EVENTS = 10_000;

export interface EventsOptions {
  store: Store;
  hub: EventHub;
  /** The issuers whose tokens are checked again at every heartbeat. */
  tokens?: { bearer: BearerTokens; sessions?: BearerTokens };
  /** Between heartbeats (and token checks); 15 s by default. */
  heartbeatMs?: number;
  /** Bytes queued per client at most (api/sse_stream.ts). */
  maxBufferBytes?: number;
  /** Streams one user may hold open at once; 8 by default. */
  maxStreamsPerUser?: number;
  /** Streams this process holds open at most; 2000 by default. */
  maxStreams?: number;
  log?: Logger;
}

const route = createRoute({
  method: "get",
  path: "/",
  summary: "Follow the caller's VMs and tasks (server-sent events)",
  description: "A `text/event-stream`: the caller's VMs now (`vm` events), " +
    "`synced` with the revision they were read at, then every change " +
    "after it: `vm` (as `GET /v1/vms/{id}` shows it), `vm-deleted` " +
    '(`{"id"}`) and `task` (as `GET /v1/tasks` shows it), each with the ' +
    "etcd mod revision as its `id`. `all=1` (admins): everyone's. A " +
    "comment every 15 s; `end` when the session or token is revoked or " +
    "expires; `reset` when the client fell behind (connect again). " +
    "429 (with `Retry-After`) when the caller or the server holds too " +
    "many open streams.",
  request: {
    query: z.object({
      all: z.enum(["0", "1"]).optional().openapi({
        description: "`1`: every user's VMs and tasks (admins only)",
      }),
    }),
  },
  responses: {
    200: {
      description: "The event stream",
      content: { "text/event-stream": { schema: z.string() } },
    },
    ...errorResponses(400, 403, 429, 503),
  },
});

/** Builds the `/v1/events` sub-app. */
export function events(opts: EventsOptions) {
  const slots = new StreamSlots({
    perUser: opts.maxStreamsPerUser ?? 8,
    total: opts.maxStreams ?? 2000,
  });
  return router().openapi(route, async (c) => {
    const who = c.get("principal");
    const all = c.req.valid("query").all === "1";
    if (all) requireAdmin(who, "follow every user's events");
    const check = tokenCheck(opts, authMethod(c), currentToken(c));
    const slot = slots.take(who.name);
    if ("refused" in slot) {
      c.header("Retry-After", String(RETRY_AFTER_SECONDS));
      return errorJson(c, 429, refusal(slot.refused, slots));
    }
    const stream = await follow(opts, who, all, c.req.raw.signal, check, slot);
    return c.body(stream, 200, SSE_HEADERS);
  });
}

/** The message of a 429: which cap, and what to do. */
function refusal(cap: SlotRefusal, slots: StreamSlots): string {
  const then = `close one or retry in ${RETRY_AFTER_SECONDS} s`;
  return cap === "user"
    ? `You have at most ${slots.caps.perUser} open event streams: ${then}`
    : `This server holds at most ${slots.caps.total} event streams: ${then}`;
}

/** What ends a stream besides the client: the token's lapse, checked. */
function tokenCheck(
  { tokens }: EventsOptions,
  method: ReturnType<typeof authMethod>,
  claims: ReturnType<typeof currentToken>,
): (() => Promise<string | null>) | undefined {
  if (!tokens) return undefined;
  if (method === "totp") return lifetimeCheck(tokens.bearer.ttlSeconds * 1000);
  const issuer = method === "session" ? tokens.sessions : tokens.bearer;
  if (!issuer || !claims) return undefined;
  return () => issuer.lapsed(claims);
}

/**
 * The check of a stream that may stay open `ms` from now (one opened with
 * TOTP credentials): `expired` after that, measured on a monotonic clock.
 */
export function lifetimeCheck(ms: number): () => Promise<string | null> {
  const end = performance.now() + ms;
  return () => Promise.resolve(performance.now() >= end ? "expired" : null);
}

/**
 * Subscribes `who` to both feeds, then reads the snapshot; events of the
 * feeds wait until it is out and are sent only when newer than it.
 */
async function follow(
  opts: EventsOptions,
  who: Caller,
  all: boolean,
  signal: AbortSignal,
  check: (() => Promise<string | null>) | undefined,
  slot: { release: () => void },
): Promise<ReadableStream<Uint8Array>> {
  const visible = (owner: string | undefined) =>
    all || (owner !== undefined && owner === who.name);
  /** VM ids the client was shown: a delete has no owner to check. */
  const known = new Set<string>();
  let synced: bigint | null = null;
  let early: (() => void)[] = [];
  const leaves: (() => void)[] = [];
  const sse = new SseStream({
    signal,
    check,
    heartbeatMs: opts.heartbeatMs,
    maxBufferBytes: opts.maxBufferBytes,
    onClose: () => {
      for (const leave of leaves.splice(0)) leave();
      early = [];
      slot.release();
    },
  });
  const later = (send: () => void) => {
    if (synced !== null) return send();
    if (early.length >= MAX_EARLY_EVENTS) return sse.drop("too many changes");
    early.push(send);
  };
  const onVm = (ev: HubEvent<Vm>) =>
    later(() => {
      if (BigInt(ev.modRevision) <= synced!) return;
      if (ev.type === "delete") {
        if (known.delete(ev.id)) {
          sse.send(frame("vm-deleted", { id: ev.id }, ev.modRevision));
        }
      } else if (visible(ev.value!.owner)) {
        known.add(ev.id);
        sse.send(frame("vm", vmView(who, ev.value!), ev.modRevision));
      }
    });
  const onTask = (ev: HubEvent<Task>) =>
    later(() => {
      if (BigInt(ev.modRevision) <= synced!) return;
      if (ev.type === "put" && visible(ev.value!.owner)) {
        sse.send(frame("task", taskView(who, ev.value!), ev.modRevision));
      }
    });
  const reset = (why: string) => sse.drop(why);
  try {
    for (const [feed, onEvent] of [[VM_FEED, onVm], [TASK_FEED, onTask]]) {
      const leave = await opts.hub.subscribe(
        feed as typeof VM_FEED,
        { onEvent: onEvent as typeof onVm, onReset: reset },
      );
      if (sse.open) leaves.push(leave);
      else leave();
    }
  } catch (err) {
    sse.discard("unavailable");
    throw err;
  }
  const log = opts.log ?? logger({ component: "events" });
  snapshot(opts.store, sse, who, all, known, log).then((revision) => {
    if (revision === null) return;
    synced = BigInt(revision);
    sse.send(frame("synced", { revision }, revision));
    for (const send of early.splice(0)) send();
  });
  return sse.body;
}

/**
 * The caller's VMs at one revision, in pages, paced by the client's
 * reading; the revision, or null when the stream ended meanwhile.
 */
async function snapshot(
  store: Store,
  sse: SseStream,
  who: Caller,
  all: boolean,
  known: Set<string>,
  log: Logger,
): Promise<string | null> {
  const send = async (kv: { value: Vm; modRevision: string }) => {
    if (!sse.open) throw new Error("stream ended");
    known.add(kv.value.id);
    await sse.sendPaced(frame("vm", vmView(who, kv.value), kv.modRevision));
  };
  try {
    const revision = !all && await ownerIndexReady(store)
      ? await ownedSnapshot(store, who.name, send)
      : await listPages(store, keys.vms, async (page) => {
        for (const kv of page) {
          const vm = decodeRaw(kv, Vm);
          if (vm && (all || vm.owner === who.name)) {
            await send({ value: vm, modRevision: kv.modRevision });
          }
        }
      });
    return sse.open ? revision : null;
  } catch (err) {
    if (!sse.open) return null;
    log.warn("event stream snapshot failed", {
      user: who.name,
      error: String(err),
    });
    sse.drop("snapshot failed");
    return null;
  }
}

/**
 * `owner`'s VMs through the owner index (resources/vms/owner_index.ts),
 * its keys and the documents at one revision, in pages; that revision.
 */
async function ownedSnapshot(
  store: Store,
  owner: string,
  send: (kv: Kv<Vm>) => Promise<void>,
): Promise<string> {
  let position: string | undefined;
  let revision: string | undefined;
  do {
    const page = await indexedPage(
      store,
      keys.vmsOwnedBy(owner),
      keys.vm,
      Vm,
      { limit: LIST_PAGE, position, revision, match: (v) => v.owner === owner },
    );
    revision = page.revision!;
    for (const kv of page.items) await send(kv);
    position = page.next ?? undefined;
  } while (position !== undefined);
  return revision;
}
