/**
 * The CLI's output: where it writes (`Output`, the seam of tests), tables
 * and `key: value` fields for people, the JSON the API answered for
 * `--json`, and short ages ("4s", "3m").
 *
 * @module
 */

import type { Vm } from "./client.ts";

/** Where the CLI writes; `isTerminal` allows rewriting the progress line. */
export interface Output {
  write(text: string): void;
  isTerminal?(): boolean;
  columns?(): number;
}

/** Anything with a stdout and the `--json` choice (a command's context). */
export interface Printer {
  stdout: Output;
  json: boolean;
}

/**
 * Writes one line (or several) to stdout.
 *
 * @example
 * ```ts
 * print(ctx, "host h1 is drained (3.1s)");
 * ```
 */
export function print(ctx: Printer, text: string): void {
  ctx.stdout.write(`${text}\n`);
}

/**
 * Writes `data` as indented JSON (`--json`).
 *
 * @example
 * ```ts
 * if (ctx.json) return printJson(ctx, vm);
 * ```
 */
export function printJson(ctx: Printer, data: unknown): void {
  print(ctx, JSON.stringify(data, null, 2));
}

/** One column of `formatTable()`. */
export interface Column<T> {
  header: string;
  value: (row: T) => string | number;
  align?: "left" | "right";
}

/**
 * Formats rows as a table: a header line, then one line per row, columns
 * two spaces apart, padded to the widest cell, no trailing spaces.
 *
 * @example
 * ```ts
 * formatTable([{ id: "vm-1", cpus: 2 }], [
 *   { header: "ID", value: (r) => r.id },
 *   { header: "CPUS", value: (r) => r.cpus, align: "right" },
 * ]);
 * // "ID    CPUS\nvm-1     2"
 * ```
 */
export function formatTable<T>(
  rows: readonly T[],
  columns: readonly Column<T>[],
): string {
  const cells = [
    columns.map((c) => c.header),
    ...rows.map((row) => columns.map((c) => String(c.value(row)))),
  ];
  const widths = columns.map((_, i) =>
    Math.max(...cells.map((line) => line[i].length))
  );
  return cells.map((line) =>
    line.map((cell, i) =>
      columns[i].align === "right"
        ? cell.padStart(widths[i])
        : cell.padEnd(widths[i])
    ).join("  ").trimEnd()
  ).join("\n");
}

/**
 * Aligned `key: value` lines; pairs without a value are left out.
 *
 * @example
 * ```ts
 * formatFields([["id", "vm-1"], ["host", undefined]]); // "id: vm-1"
 * ```
 */
export function formatFields(
  fields: [string, string | number | undefined][],
): string {
  const shown = fields.filter((f): f is [string, string | number] =>
    f[1] !== undefined && f[1] !== ""
  );
  const width = Math.max(...shown.map(([key]) => key.length)) + 1;
  return shown.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value}`)
    .join("\n");
}

/**
 * "4s", "3m", "5h", "2d" since `iso`; "-" when it does not parse.
 *
 * @example
 * ```ts
 * age(new Date(Date.now() - 90_000).toISOString()); // "1m"
 * ```
 */
export function age(iso: string, now = Date.now()): string {
  const seconds = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (Number.isNaN(seconds)) return "-";
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/**
 * The time and how long ago it was.
 *
 * @example
 * ```ts
 * when("2026-01-01T00:00:00.000Z"); // "2026-01-01T00:00:00.000Z (3d ago)"
 * ```
 */
export function when(iso: string): string {
  return `${iso} (${age(iso)} ago)`;
}

/**
 * How messages name a VM.
 *
 * @example
 * ```ts
 * label(vm); // "vm web1 (vm-1)"
 * ```
 */
export function label(vm: Vm): string {
  return `vm ${vm.spec.name} (${vm.id})`;
}
