/**
 * The documents of the VM console (core/keys.ts `consoleTicket`,
 * `consoleGrant`, `consoleRelay`): a ticket made by `POST
 * /v1/vms/{id}/console`, the one-time grant the API moves it to for the
 * VM's host, and where that host's console relay listens.
 *
 * @example
 * ```ts
 * const t = await store.get(keys.consoleTicket(hash), ConsoleTicket);
 * ```
 */
import { z } from "zod";

/**
 * What a ticket is bound to: the VM, the user (and the admin acting for
 * them), and the credential that made it: a web session or bearer token
 * (its id and expiry, so the console ends with it), or a TOTP code (no
 * token: the console lives `console.maxSeconds`).
 */
export const ConsoleTicket = z.object({
  vm: z.string(),
  user: z.string(),
  admin: z.boolean(),
  actor: z.string().optional(),
  /** `none`: an API without authentication (every caller the local admin). */
  via: z.enum(["session", "bearer", "totp", "none"]),
  /** The session or bearer token's id (`jti`); absent for TOTP. */
  tokenId: z.string().optional(),
  /** When that token expires (ISO time). */
  tokenExpiresAt: z.string().optional(),
  /** The host the VM ran on when the ticket was made. */
  host: z.string(),
  createdAt: z.string(),
  /** The ticket is refused after this (its lease ends about then too). */
  expiresAt: z.string(),
});
export type ConsoleTicket = z.infer<typeof ConsoleTicket>;

/** A consumed ticket as the relay of `host` takes it: VM and user. */
export const ConsoleGrant = z.object({
  vm: z.string(),
  user: z.string(),
  createdAt: z.string(),
});
export type ConsoleGrant = z.infer<typeof ConsoleGrant>;

/** Where a host's console relay listens (reached over the underlay). */
export const ConsoleRelay = z.object({
  address: z.string(),
  port: z.number().int().min(1).max(65535),
});
export type ConsoleRelay = z.infer<typeof ConsoleRelay>;
