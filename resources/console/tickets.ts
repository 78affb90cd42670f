/**
 * Console tickets: `issueTicket` makes one for a running VM (a random
 * 256-bit secret; etcd keeps only its SHA-256, on a lease of
 * `console.ticketTtlSeconds`), bound to the user, the VM and the session or
 * token that asked; `redeemTicket` checks one against the websocket request
 * and consumes it: one transaction compares the ticket's mod revision,
 * deletes it and writes a one-time grant for the VM's host's console relay
 * (`consolegrant/<host>/<id>`, on a short lease). A refused ticket changes
 * nothing in etcd.
 *
 * @example
 * ```ts
 * const t = await issueTicket(deps, who, "vm-1", { via: "session", tokenId, tokenExpiresAt });
 * const r = await redeemTicket(deps, { ticket: t.ticket, vm: "vm-1", sessionId, isRevoked });
 * if (r.ok) connectRelay(r.relay, r.grantId);
 * ```
 */
import { ConflictError, UnavailableError } from "../../core/errors.ts";
import { ConsoleRelay, ConsoleTicket } from "../../core/console_schemas.ts";
import type { ConsoleConfig } from "../../core/config_console.ts";
import { keys } from "../../core/keys.ts";
import { leasePool } from "../../core/lease_pool.ts";
import { Vm } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import type { Caller } from "../deps.ts";
import { readVm } from "../vms/view.ts";

/** What the console functions read. */
export interface ConsoleDeps {
  store: Store;
  console: Pick<ConsoleConfig, "ticketTtlSeconds" | "grantTtlSeconds">;
}

/** The credential a ticket is made with (api/auth.ts `authMethod`). */
export interface TicketBinding {
  via: ConsoleTicket["via"];
  /** The session or bearer token's id; absent for TOTP. */
  tokenId?: string;
  /** When that token expires. */
  tokenExpiresAt?: Date;
}

/** A ticket as handed to its maker (the only copy of the secret). */
export interface IssuedTicket {
  ticket: string;
  vm: string;
  expiresAt: string;
}

/** A ticket: 43 base64url characters (256 bits). */
export const TICKET_RE = /^[A-Za-z0-9_-]{43}$/;

/** The hex SHA-256 of a ticket: its etcd key. */
export async function ticketHash(ticket: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(ticket),
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function randomToken(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-")
    .replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Makes a console ticket for VM `id`, which `who` must see (NotFoundError)
 * and which must be running on a host (ConflictError).
 */
export async function issueTicket(
  { store, console: cfg }: ConsoleDeps,
  who: Caller,
  id: string,
  binding: TicketBinding,
  now = new Date(),
): Promise<IssuedTicket> {
  const vm = (await readVm(store, who, id)).value;
  const host = vm.status.host;
  if (vm.status.phase !== "running" || !host) {
    throw new ConflictError(
      `Cannot open the console of VM ${id}: it is ${vm.status.phase}, not running`,
    );
  }
  const ticket = randomToken(32);
  const expiresAt = new Date(now.getTime() + cfg.ticketTtlSeconds * 1000)
    .toISOString();
  const doc: ConsoleTicket = {
    vm: id,
    user: who.name,
    admin: who.admin,
    ...(who.actor === undefined ? {} : { actor: who.actor }),
    via: binding.via,
    ...(binding.tokenId === undefined ? {} : { tokenId: binding.tokenId }),
    ...(binding.tokenExpiresAt === undefined
      ? {}
      : { tokenExpiresAt: binding.tokenExpiresAt.toISOString() }),
    host,
    createdAt: now.toISOString(),
    expiresAt,
  };
  // A shared lease (at least one second more than the ticket's life: the
  // key is there to be refused as expired, not gone early): the lease
  // count does not follow the request rate.
  const lease = await leasePool(store, cfg.ticketTtlSeconds + 1).take();
  const key = keys.consoleTicket(await ticketHash(ticket));
  const r = await store.txn().ifAbsent(key).put(key, doc, { lease }).commit();
  if (!r.ok) throw new UnavailableError("Cannot store the console ticket");
  return { ticket, vm: id, expiresAt };
}

/** What the websocket request brings to redeem a ticket. */
export interface RedeemRequest {
  ticket: string;
  /** The VM of the URL. */
  vm: string;
  /**
   * The web session the request carries (its token id and user), if it
   * carries a valid one; a ticket made with a session needs that session,
   * and any other ticket is refused with a session of another user.
   */
  session?: { tokenId: string; user: string };
  /** Whether a token id was revoked (api/revocations.ts). */
  isRevoked: (tokenId: string) => Promise<boolean>;
}

/** Why a ticket was refused (logged; the client hears only "refused"). */
export type RedeemRefusal =
  | "malformed"
  | "unknown"
  | "other vm"
  | "expired"
  | "other session"
  | "other user's session"
  | "revoked"
  | "vm not running"
  | "no relay"
  | "used";

/** A consumed ticket: the grant for the relay, and what binds the console. */
export type Redeemed = {
  ok: true;
  ticket: ConsoleTicket;
  /** The VM's host now, and where its relay listens. */
  host: string;
  relay: ConsoleRelay;
  grantId: string;
} | { ok: false; reason: RedeemRefusal };

/**
 * Checks `req` against its ticket and consumes it (see the module
 * comment). Refusals change nothing in etcd.
 */
export async function redeemTicket(
  { store, console: cfg }: ConsoleDeps,
  req: RedeemRequest,
  now = new Date(),
): Promise<Redeemed> {
  const no = (reason: RedeemRefusal) => ({ ok: false as const, reason });
  if (!TICKET_RE.test(req.ticket)) return no("malformed");
  const key = keys.consoleTicket(await ticketHash(req.ticket));
  const kv = await store.get(key, ConsoleTicket);
  if (!kv) return no("unknown");
  const t = kv.value;
  if (t.vm !== req.vm) return no("other vm");
  if (Date.parse(t.expiresAt) <= now.getTime()) return no("expired");
  // Who made the ticket: the admin when one acted for the user.
  const maker = t.actor ?? t.user;
  if (
    t.via === "session" &&
    (req.session?.tokenId !== t.tokenId || req.session?.user !== maker)
  ) {
    return no("other session");
  }
  // A ticket of a bearer token or TOTP opened in someone else's logged-in
  // browser would show the maker's VM on this origin there (phishing).
  if (
    req.session !== undefined && req.session.user !== maker &&
    req.session.user !== t.user
  ) {
    return no("other user's session");
  }
  if (t.tokenId !== undefined && await req.isRevoked(t.tokenId)) {
    return no("revoked");
  }
  const vm = await store.get(keys.vm(t.vm), Vm);
  const host = vm?.value.status.host;
  if (
    !vm || !host || vm.value.status.phase !== "running" ||
    !(t.admin || vm.value.owner === t.user)
  ) {
    return no("vm not running");
  }
  const relay = await store.get(keys.consoleRelay(host), ConsoleRelay);
  if (!relay) return no("no relay");
  const lease = await store.grantLease(cfg.grantTtlSeconds);
  const grantId = randomToken(24);
  const r = await store.txn()
    .ifModRevision(key, kv.modRevision)
    .delete(key)
    .put(keys.consoleGrant(host, grantId), {
      vm: t.vm,
      user: t.user,
      createdAt: now.toISOString(),
    }, { lease })
    .commit();
  if (!r.ok) {
    await store.revokeLease(lease);
    return no("used");
  }
  return { ok: true, ticket: t, host, relay: relay.value, grantId };
}
