/**
 * The VM console's rules: tickets (tickets.ts) and the relay's grants
 * (grants.ts).
 *
 * @module
 */
export * from "./tickets.ts";
export * from "./grants.ts";
