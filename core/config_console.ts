/**
 * The `console` section of the configuration (core/config.ts): the VM
 * console in the browser. The API hands out tickets (resources/console/),
 * proxies the websocket (api/console_ws.ts) to the console relay of the
 * VM's host (workers/console_relay.ts), which pipes the VM's VNC socket.
 *
 * @example
 * ```ts
 * const console = ConsoleConfig.parse({ relayPort: 0 });
 * ```
 */
import { z } from "zod";

export const ConsoleConfig = z.object({
  /** How long a ticket may wait to be used (its etcd lease). */
  ticketTtlSeconds: z.number().int().min(1).max(300).default(30),
  /** How long the API's grant to a host's relay may wait (its lease). */
  grantTtlSeconds: z.number().int().min(2).max(60).default(10),
  /**
   * How often an open console checks that the session or token it was
   * opened with is still valid (not revoked, not expired).
   */
  sessionCheckSeconds: z.number().min(0.1).max(300).default(5),
  /**
   * The longest a console stays open; also the life of one opened with a
   * ticket made with TOTP (which has no token to expire).
   */
  maxSeconds: z.number().int().min(10).default(3600),
  /**
   * The address the worker's console relay listens on and announces to the
   * API replicas; default the host's underlay address, else 127.0.0.1.
   */
  relayAddress: z.string().min(1).optional(),
  /** The relay's TCP port; 0: any free port (announced in etcd). */
  relayPort: z.number().int().min(0).max(65535).default(8753),
});
export type ConsoleConfig = z.infer<typeof ConsoleConfig>;
