/**
 * `parseArgs()`: a command line as one command of the tree with its
 * validated input, or the help it asks for. Flags come from args.ts
 * (`node:util` `parseArgs` underneath); each command's `parse()` checks
 * its own.
 *
 * @module
 */
import {
  apiUrl,
  type FlagKinds,
  flagName,
  FlagReader,
  readFlags,
  takesValue,
} from "./args.ts";
import {
  type CommandName,
  COMMANDS,
  GLOBAL_FLAGS,
  GROUPS,
  isCommand,
  type ParsedArgs,
  SINGLES,
} from "./commands.ts";
import { UsageError } from "./errors.ts";

/** The flag names of every command: which take a value, which do not. */
function flagKinds(): FlagKinds {
  const kinds: FlagKinds = { values: new Set(), booleans: new Set() };
  const all = [GLOBAL_FLAGS, ...Object.values(COMMANDS).map((c) => c.flags)];
  for (const flag of all.flatMap((flags) => Object.keys(flags))) {
    (takesValue(flag) ? kinds.values : kinds.booleans).add(flagName(flag));
  }
  return kinds;
}

const KINDS = flagKinds();

/**
 * Parses the command line into one command with validated flags. Throws
 * `UsageError` for anything wrong, naming the flag.
 *
 * @example
 * ```ts
 * const args = parseArgs(["vm", "create", "--name", "web1", "--cpus", "1", "--memory", "128"]);
 * args.command; // "vm create"
 * ```
 */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const { words, flags, lists, problem } = readFlags(argv, KINDS);
  const api = flags.get("api");
  const globals = {
    api: typeof api === "string" ? apiUrl(api, "--api") : undefined,
    json: flags.has("json"),
  };
  const help = (topic: string[]): ParsedArgs => ({
    ...globals,
    command: "help",
    topic,
  });
  if (words[0] === "help") {
    if (problem) throw new UsageError(problem);
    return help(helpTopic(words.slice(1)));
  }
  if (words.length === 0) {
    if (problem) throw new UsageError(problem);
    if (flags.has("help")) return help([]);
    throw new UsageError("missing command", [], true);
  }
  let topic: string[];
  if (SINGLES.includes(words[0])) topic = [words[0]];
  else {
    const [group, sub] = words;
    if (!GROUPS.includes(group)) {
      throw new UsageError(`unknown command '${group}'`);
    }
    if (sub === undefined || sub === "help") {
      if (problem) throw new UsageError(problem, [group]);
      if (sub === "help") return help(helpTopic([group, ...words.slice(2)]));
      if (flags.has("help")) return help([group]);
      throw new UsageError(`missing ${group} command`, [group], true);
    }
    if (!isCommand(`${group} ${sub}`)) {
      throw new UsageError(`unknown command '${group} ${sub}'`, [group]);
    }
    topic = [group, sub];
  }
  const name = topic.join(" ") as CommandName;
  if (problem) throw new UsageError(problem, topic);
  if (flags.has("help")) return help(topic);
  const spec = COMMANDS[name];
  const allowed = new Set(
    [...Object.keys(spec.flags), ...Object.keys(GLOBAL_FLAGS)].map(flagName),
  );
  for (const flag of flags.keys()) {
    if (!allowed.has(flag)) {
      throw new UsageError(
        `--${flag} is not a flag of 'ucloud ${name}'`,
        topic,
      );
    }
  }
  const read = new FlagReader(flags, topic, lists);
  const args = words.slice(topic.length);
  return {
    ...globals,
    command: name,
    ...spec.parse({ read, args, topic }),
  } as ParsedArgs;
}

/** The topic of `ucloud help WORDS...`; unknown commands are an error. */
function helpTopic(words: string[]): string[] {
  if (words.length === 0) return [];
  if (SINGLES.includes(words[0])) {
    if (words.length > 1) {
      throw new UsageError(`no help for unknown command '${words.join(" ")}'`);
    }
    return words;
  }
  if (!GROUPS.includes(words[0])) {
    throw new UsageError(`no help for unknown command '${words.join(" ")}'`);
  }
  if (words.length === 1) return words;
  if (words.length > 2 || !isCommand(`${words[0]} ${words[1]}`)) {
    throw new UsageError(
      `no help for unknown command '${words.join(" ")}'`,
      [words[0]],
    );
  }
  return words;
}
