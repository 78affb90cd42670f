/**
 * How documents are read and written across ucloud versions (DESIGN.md,
 * "Documents across versions"): every JSON object written carries
 * `schemaVersion` (the version of the code that wrote it last); a reader
 * takes documents of any version, parses the fields it knows and keeps the
 * others, at every level, so that writing the document back returns them
 * unchanged. A document that is not JSON or fails the schema is
 * unreadable: the caller skips it (listings, watches) or names it in an
 * error (single reads); it is never fatal for a whole listing.
 *
 * @example
 * ```ts
 * const d = decodeDocument("vm/vm-1", text, Vm);
 * if (d.ok) put("vm/vm-1", stamp({ ...d.value, desired: "stopped" }));
 * else reportUnreadable("vm/vm-1", d.reason);
 * ```
 */
import type { z } from "zod";

/**
 * The document format this code writes. Version 0: documents written
 * before versions were recorded (no `schemaVersion` field). Raise it when a
 * release adds fields whose absence older readers must be able to tell.
 */
export const SCHEMA_VERSION = 1;

/** The top-level field that holds a document's schema version. */
export const VERSION_FIELD = "schemaVersion";

/** A decoded document: the value and the version of its last writer. */
export type Decoded<T> =
  | { ok: true; value: T; schemaVersion: number }
  | { ok: false; reason: string };

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * `parsed` (a schema's output for `raw`) with every field of `raw` that the
 * schema did not know put back, at every level: objects field by field,
 * arrays element by element when both have the same length.
 */
export function keepUnknown(raw: unknown, parsed: unknown): unknown {
  if (Array.isArray(raw) && Array.isArray(parsed)) {
    return raw.length === parsed.length
      ? parsed.map((p, i) => keepUnknown(raw[i], p))
      : parsed;
  }
  if (!isPlain(raw) || !isPlain(parsed)) return parsed;
  // Object.fromEntries defines own properties, so even a "__proto__" key
  // stays plain data.
  return Object.fromEntries([
    ...Object.entries(raw).filter(([k]) => !Object.hasOwn(parsed, k)),
    ...Object.entries(parsed).map(([k, v]) =>
      [k, Object.hasOwn(raw, k) ? keepUnknown(raw[k], v) : v] as const
    ),
  ]);
}

/**
 * Parses a stored document with `schema`, keeping unknown fields and
 * taking the schema version out of the value.
 */
export function decodeDocument<T>(
  text: string,
  schema: z.ZodType<T>,
): Decoded<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: "not JSON" };
  }
  let schemaVersion = 0;
  if (isPlain(raw) && Object.hasOwn(raw, VERSION_FIELD)) {
    const { [VERSION_FIELD]: v, ...rest } = raw;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      return { ok: false, reason: `${VERSION_FIELD} is not a version` };
    }
    schemaVersion = v;
    raw = rest;
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 3).map((i) =>
      `${i.path.join(".") || "(document)"}: ${i.message}`
    );
    return { ok: false, reason: `schema: ${issues.join("; ")}` };
  }
  return {
    ok: true,
    value: keepUnknown(raw, r.data) as T,
    schemaVersion,
  };
}

/** `value` as written: a JSON object gets `schemaVersion` (first). */
export function stamp(value: unknown): unknown {
  if (!isPlain(value)) return value;
  const { [VERSION_FIELD]: _, ...rest } = value;
  return { [VERSION_FIELD]: SCHEMA_VERSION, ...rest };
}

/**
 * The fields of `value` that `schema` does not name, for writers that
 * rebuild a document from scratch (e.g. host registration) but must keep
 * what a newer version added.
 */
export function unknownFields(
  schema: z.ZodObject,
  value: object | null | undefined,
): Record<string, unknown> {
  if (!value) return {};
  return Object.fromEntries(
    Object.entries(value).filter(([k]) => !Object.hasOwn(schema.shape, k)),
  );
}
