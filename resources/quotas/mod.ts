/**
 * Per-user quotas: limits (config defaults, admin overrides), the usage
 * every create and delete changes in its own transaction, and the views.
 *
 * @example
 * ```ts
 * import { chargeFor, vmAmounts } from "./resources/quotas/mod.ts";
 * ```
 */
export * from "./limits.ts";
export * from "./manage.ts";
export * from "./usage.ts";
export * from "./users.ts";
