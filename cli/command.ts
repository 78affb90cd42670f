/**
 * What a command of the CLI is: its help (summary, usage, flags,
 * examples), `parse()` from validated flags to its input, and `run()`
 * against the API with a `Context`. The command groups (vm.ts,
 * network.ts, host.ts, task.ts, auth.ts) define them; commands.ts joins
 * them into the command tree.
 *
 * @module
 */
import type { FlagReader } from "./args.ts";
import type { Client } from "./client.ts";
import type { Output, Printer } from "./output.ts";
import type { Session } from "./session.ts";

/** How long to wait for a change, or null for `--no-wait`. */
export type Wait = { timeoutSeconds: number } | null;

/** What waiting needs: the client, where progress goes, how often to poll. */
export interface WaitContext {
  client: Client;
  stderr: Output;
  pollIntervalMs: number;
}

/** What a command runs with. */
export interface Context extends WaitContext, Printer {
  session: Session;
  /** All of stdin (`--password-stdin`). */
  readStdin: () => Promise<string>;
  /** Asks on the terminal; `hidden` does not echo. */
  readLine: (question: string, hidden: boolean) => Promise<string>;
}

/** The flags and arguments of one command line, for `parse()`. */
export interface Input {
  read: FlagReader;
  /** The words after the command's name. */
  args: string[];
  /** The command's name as words, for the help hint of errors. */
  topic: string[];
}

/**
 * One command: `A` is what `parse()` makes of the command line (the tests
 * compare it), which `run()` gets with the command's name.
 */
export interface Command<A extends object> {
  summary: string;
  usage: string;
  /** Flags besides the global ones, with their help lines. */
  flags: Record<string, string>;
  examples: string[];
  parse(input: Input): A;
  run(args: A & { command: string }, ctx: Context): Promise<void>;
}

/**
 * Declares a command; only there for type inference of `A`.
 *
 * @example
 * ```ts
 * const list = command({
 *   summary: "List VMs", usage: "ucloud vm list [--json]", flags: {},
 *   examples: ["ucloud vm list"],
 *   parse: ({ args, topic }) => (noArgs(args, topic), {}),
 *   run: async (_, ctx) => print(ctx, "..."),
 * });
 * ```
 */
export function command<A extends object>(spec: Command<A>): Command<A> {
  return spec;
}
