/**
 * `ucloud quota show [USER] | set USER --cpus N ... | list`: a user's
 * limits and usage (your own, or anyone's for an admin) and, for admins,
 * setting a user's own limits and listing every user with usage or own
 * limits. `set` changes only the limits it is given: it reads
 * what is set and sends it back with the changes (`unlimited`: no limit,
 * `default`: the config default again).
 *
 * @module
 */
import { noArgs, oneArg } from "./args.ts";
import type { Quota, QuotaLimits } from "./client.ts";
import { command, type Input } from "./command.ts";
import { UsageError } from "./errors.ts";
import { type Column, formatTable, print, printJson } from "./output.ts";

/** The resources in the order shown, with their flag and unit. */
const RESOURCES = [
  ["vms", "vms", "VMs"],
  ["cpus", "cpus", "cores"],
  ["memoryMiB", "memory", "MiB of memory"],
  ["diskMiB", "disk", "MiB of local disk"],
  ["networks", "networks", "networks"],
] as const;

type Row = { resource: string; used: number; limit: string; set: string };

const COLUMNS: Column<Row>[] = [
  { header: "RESOURCE", value: (r) => r.resource },
  { header: "USED", value: (r) => String(r.used) },
  { header: "LIMIT", value: (r) => r.limit },
  { header: "FROM", value: (r) => r.set },
];

/** The table of `quota show` and `quota set`. */
export function quotaTable(q: Quota): string {
  const rows = RESOURCES.map(([key]): Row => {
    const limit = q.limits[key];
    return {
      resource: key,
      used: q.usage[key],
      limit: limit === null ? "unlimited" : String(limit),
      set: q.own[key] === undefined ? "default" : "user",
    };
  });
  return `quota of ${q.user}\n${formatTable(rows, COLUMNS)}`;
}

const show = command({
  summary: "Show a user's quota and usage (default: yours)",
  usage: "ucloud quota show [USER] [--json]",
  flags: {},
  examples: ["ucloud quota show", "ucloud quota show bob"],
  parse({ args, topic }: Input) {
    if (args.length > 1) {
      throw new UsageError(`at most one user, got ${args.length}`, topic);
    }
    return { user: args[0] as string | undefined };
  },
  async run(args, ctx) {
    const user = args.user ?? (await ctx.client.auth.whoami()).name;
    const q = await ctx.client.quotas.get(user);
    return ctx.json ? printJson(ctx, q) : print(ctx, quotaTable(q));
  },
});

type UserRow = Quota;

const cell = (q: Quota, key: keyof Quota["usage"]) => {
  const l = q.limits[key];
  return `${q.usage[key]}/${l === null ? "unlimited" : l}${
    q.own[key] === undefined ? "" : "*"
  }`;
};

const USER_COLUMNS: Column<UserRow>[] = [
  { header: "USER", value: (q) => q.user },
  ...RESOURCES.map(([key]): Column<UserRow> => ({
    header: key.toUpperCase(),
    value: (q) => cell(q, key),
  })),
];

const list = command({
  summary: "List users with usage or own limits: used/limit (admins)",
  usage: "ucloud quota list [--json]",
  flags: {},
  examples: ["ucloud quota list"],
  parse({ args, topic }: Input) {
    noArgs(args, topic);
    return {};
  },
  async run(_args, ctx) {
    const users = await ctx.client.quotas.list();
    if (ctx.json) return printJson(ctx, users);
    return print(
      ctx,
      `${formatTable(users, USER_COLUMNS)}
* set for the user; others: the default`,
    );
  },
});

/** One limit flag's value: a number, null (unlimited) or "default". */
type Change = number | null | "default";

function readChange(
  read: Input["read"],
  flag: string,
  topic: string[],
): Change | undefined {
  const v = read.text(flag);
  if (v === undefined) return undefined;
  if (v === "unlimited") return null;
  if (v === "default") return "default";
  if (!/^\d+$/.test(v) || Number(v) > 1_000_000_000) {
    throw new UsageError(
      `--${flag} must be a whole number from 0 to 1000000000, unlimited or default, got "${v}"`,
      topic,
    );
  }
  return Number(v);
}

const set = command({
  summary: "Set a user's limits (admins); other limits stay as they are",
  usage: "ucloud quota set USER [--vms N] [--cpus N] [--memory MIB] " +
    "[--disk MIB] [--networks N] [--json]",
  flags: Object.fromEntries(
    RESOURCES.map(([, flag, unit]) => [
      `--${flag} ${flag === "memory" || flag === "disk" ? "MIB" : "N"}`,
      `at most this many ${unit} (0: none), unlimited, or default`,
    ]),
  ),
  examples: [
    "ucloud quota set bob --cpus 16 --memory 32768",
    "ucloud quota set bob --vms unlimited --networks default",
  ],
  parse({ read, args, topic }: Input) {
    const user = oneArg(args.slice(0, 1), "user", topic);
    noArgs(args.slice(1), topic);
    const changes: [keyof QuotaLimits, Change][] = [];
    for (const [key, flag] of RESOURCES) {
      const c = readChange(read, flag, topic);
      if (c !== undefined) changes.push([key, c]);
    }
    if (!changes.length) {
      throw new UsageError(
        "give at least one of --vms, --cpus, --memory, --disk, --networks",
        topic,
      );
    }
    return { user, changes };
  },
  async run(args, ctx) {
    const own: QuotaLimits = {
      ...(await ctx.client.quotas.get(args.user)).own,
    };
    for (const [key, c] of args.changes) {
      if (c === "default") delete own[key];
      else own[key] = c;
    }
    const q = await ctx.client.quotas.set(args.user, own);
    return ctx.json ? printJson(ctx, q) : print(ctx, quotaTable(q));
  },
});

/** The `quota` command group. */
export const QUOTA_COMMANDS = {
  "quota show": show,
  "quota set": set,
  "quota list": list,
};
