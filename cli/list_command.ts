/**
 * The `list` command every resource group has: no arguments, the rows
 * from the API as a table, or the API's answer as it is with `--json`.
 *
 * @example
 * ```ts
 * const list = listCommand({
 *   summary: "List your SSH keys", topic: "key",
 *   fetch: (client) => client.keys.list(), columns: KEY_COLUMNS,
 * });
 * ```
 *
 * @module
 */
import { noArgs } from "./args.ts";
import type { Client } from "./client.ts";
import { command, type Input } from "./command.ts";
import { type Column, formatTable, print, printJson } from "./output.ts";

/** What a list command shows. */
export interface ListSpec<T> {
  summary: string;
  /** The command group, e.g. `key` for `ucloud key list`. */
  topic: string;
  fetch: (client: Client) => Promise<{ items: T[] }>;
  columns: readonly Column<T>[];
}

/** `ucloud <topic> list [--json]`. */
export function listCommand<T>(spec: ListSpec<T>) {
  return command({
    summary: spec.summary,
    usage: `ucloud ${spec.topic} list [--json]`,
    flags: {},
    examples: [`ucloud ${spec.topic} list`],
    parse: ({ args, topic }: Input) => (noArgs(args, topic), {}),
    async run(_, ctx) {
      const list = await spec.fetch(ctx.client);
      if (ctx.json) return printJson(ctx, list);
      print(ctx, formatTable(list.items, spec.columns));
    },
  });
}
