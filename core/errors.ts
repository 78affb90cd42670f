/**
 * Domain errors that callers catch. The API maps each to an HTTP status in
 * one place (`api/app.ts`); everything else is a 500.
 *
 * @example
 * ```ts
 * throw new NotFoundError("vm", "vm-123");
 * ```
 */
export class NotFoundError extends Error {
  override name = "NotFoundError";
  constructor(readonly kind: string, readonly id: string) {
    super(`Cannot find ${kind} ${id}`);
  }
}

/** A request that conflicts with the current state, e.g. deleting twice. */
export class ConflictError extends Error {
  override name = "ConflictError";
}

/** The principal may not do this, e.g. a non-admin draining a host. */
export class ForbiddenError extends Error {
  override name = "ForbiddenError";
}

/** What a request over quota would have taken, and what is allowed. */
export interface OverQuota {
  /** The resource over its limit, e.g. "cpus". */
  resource: string;
  /** What the user holds now. */
  used: number;
  /** What the request asked for in addition. */
  requested: number;
  /** The user's limit. */
  allowed: number;
}

/** A request that would take a user over a quota limit (403). */
export class QuotaError extends ForbiddenError {
  override name = "QuotaError";
  constructor(readonly quota: OverQuota, message: string) {
    super(message);
  }
}

/** Bad input that passed the schema but not a domain rule. */
export class InvalidError extends Error {
  override name = "InvalidError";
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

/** A dependency (etcd, LDAP) that does not answer. */
export class UnavailableError extends Error {
  override name = "UnavailableError";
}

/**
 * A stored document that cannot be read: not JSON, or failing the schema
 * (corrupt, or written by a newer ucloud with a change this one does not
 * understand). Listings skip such documents; a single read throws this.
 */
export class UnreadableError extends Error {
  override name = "UnreadableError";
  constructor(readonly key: string, readonly reason: string) {
    super(`Cannot read document ${key}: ${reason}`);
  }
}
