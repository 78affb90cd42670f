/**
 * The command line as flags and words: `node:util` `parseArgs` splits it
 * into tokens (long and short options, `--flag=value`, `--`), `readFlags()`
 * checks them against the flags the command tree knows, and `FlagReader`
 * validates values, each message naming the flag. The shared limits and
 * the `--wait` flags live here too.
 *
 * `parseArgs` rather than a command framework: commander, for one, takes
 * the next word as a value even when it is a flag (`--name --cpus 1`),
 * keeps the last of a repeated flag silently, and words its errors and
 * help its own way ("unknown option '--json=1'"), where the CLI's
 * messages and exit codes are fixed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Wait } from "./command.ts";
import { UsageError } from "./errors.ts";

export const DEFAULT_API = "http://127.0.0.1:8750";
export const DEFAULT_TIMEOUT_SECONDS = 120;
export const DRAIN_TIMEOUT_SECONDS = 600;
export const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const NAME_RULE =
  "1-63 lowercase letters, digits or '-', not starting or ending with '-'";
const HOST_RE = /^[a-z0-9][a-z0-9.-]{0,62}$/;
const HOST_RULE =
  "1-63 lowercase letters, digits, '.' or '-', starting with a letter or digit";
/** What the API takes as an id; every VM or network name is one too. */
const REF_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** Value flags that may be given more than once (where a command allows). */
const REPEATABLE_FLAGS = new Set(["network", "key"]);

/** The `--wait`, `--no-wait` and `--timeout` flags of a change. */
export const WAIT_FLAGS = {
  "--wait": "wait until the VM gets there (the default)",
  "--no-wait": "return as soon as the API accepted the request",
  "--timeout SECONDS":
    `stop waiting after this long (default ${DEFAULT_TIMEOUT_SECONDS})`,
};

/**
 * The name of a flag as its help names it.
 *
 * @example
 * ```ts
 * flagName("--timeout SECONDS"); // "timeout"
 * flagName("-h, --help"); // "help"
 * ```
 */
export function flagName(flag: string): string {
  return flag.split(" ").find((w) => w.startsWith("--"))!.replace(
    /^--|,$/g,
    "",
  );
}

/**
 * Whether the flag its help names takes a value ("--timeout SECONDS").
 *
 * @example
 * ```ts
 * takesValue("--json"); // false
 * ```
 */
export function takesValue(flag: string): boolean {
  return / [A-Z|]+$/.test(flag);
}

/** The flags of every command: which take a value, which do not. */
export interface FlagKinds {
  values: Set<string>;
  booleans: Set<string>;
}

/** What `readFlags()` found on a command line. */
export interface Flags {
  /** The words that are not flags, in order. */
  words: string[];
  /** Each flag given with its (last) value; `true` for a boolean. */
  flags: Map<string, string | true>;
  /** Every value of a repeatable flag, in order. */
  lists: Map<string, string[]>;
  /** The first thing wrong, reported once the command is known. */
  problem?: string;
}

/**
 * Splits a command line into words and flags. A flag that takes a value
 * followed by another flag lacks its value; unknown flags, values of
 * booleans and repeated flags are the `problem`.
 *
 * @example
 * ```ts
 * const kinds = { values: new Set(["name"]), booleans: new Set(["json"]) };
 * readFlags(["vm", "show", "--json"], kinds).words; // ["vm", "show"]
 * ```
 */
export function readFlags(argv: readonly string[], kinds: FlagKinds): Flags {
  const out: Flags = { words: [], flags: new Map(), lists: new Map() };
  const options = Object.fromEntries([
    ...[...kinds.values].map((n) => [n, { type: "string" as const }]),
    ...[...kinds.booleans].map((n) => [n, { type: "boolean" as const }]),
  ]);
  const report = (message: string) => out.problem ??= message;
  let from = 0;
  tokens: while (true) {
    const { tokens } = parseArgs({
      args: argv.slice(from),
      options,
      strict: false,
      allowPositionals: true,
      tokens: true,
    });
    for (const t of tokens) {
      if (t.kind === "positional") out.words.push(t.value);
      if (t.kind !== "option") continue;
      const raw = argv[from + t.index];
      if (!t.rawName.startsWith("--")) {
        // Short flags: only -h, alone.
        if (raw !== "-h") {
          if (t.rawName === raw.slice(0, 2)) report(`unknown flag ${raw}`);
          continue;
        }
      }
      const name = raw === "-h" ? "help" : t.name;
      let value: string | true = true;
      if (kinds.values.has(name)) {
        if (t.value === undefined) {
          report(`--${name} needs a value`);
          continue;
        }
        if (!t.inlineValue && t.value.startsWith("--")) {
          // The next word is a flag, not this one's value: read it again.
          report(`--${name} needs a value`);
          from += t.index + 1;
          continue tokens;
        }
        value = t.value;
      } else if (!kinds.booleans.has(name)) {
        report(`unknown flag --${name}`);
        continue;
      } else if (t.inlineValue) {
        report(`--${name} takes no value`);
        continue;
      }
      if (REPEATABLE_FLAGS.has(name) && typeof value === "string") {
        out.lists.set(name, [...out.lists.get(name) ?? [], value]);
      } else if (out.flags.has(name)) report(`--${name} is given twice`);
      out.flags.set(name, value);
    }
    return out;
  }
}

/**
 * `value` as an API base URL without trailing slashes; `source` names
 * where it came from in the error ("--api", "UCLOUD_API").
 *
 * @example
 * ```ts
 * apiUrl("http://[::1]:8750/", "--api"); // "http://[::1]:8750"
 * ```
 */
export function apiUrl(value: string, source: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw new UsageError(
      `${source} must be an http(s) URL such as ${DEFAULT_API}, got "${value}"`,
    );
  }
  return value.replace(/\/+$/, "");
}

/** Refuses any argument. */
export function noArgs(args: string[], topic: string[]): void {
  if (args.length > 0) {
    throw new UsageError(`unexpected argument '${args[0]}'`, topic);
  }
}

/** The one argument (`what`: "VM id or name"). */
export function oneArg(args: string[], what: string, topic: string[]): string {
  if (args.length === 0) throw new UsageError(`missing ${what}`, topic);
  noArgs(args.slice(1), topic);
  return args[0];
}

/** The one argument, a host name. */
export function hostArg(args: string[], topic: string[]): string {
  const name = oneArg(args, "host name", topic);
  if (!HOST_RE.test(name)) {
    throw new UsageError(
      `host name must be ${HOST_RULE}, got "${name}"`,
      topic,
    );
  }
  return name;
}

/**
 * Reads and validates flag values; every message names the flag.
 *
 * @example
 * ```ts
 * const cpus = read.integer("cpus", 1, 64, "an integer from 1 to 64");
 * ```
 */
export class FlagReader {
  constructor(
    private readonly flags: Map<string, string | true>,
    private readonly topic: string[],
    /** Every value of each repeatable flag. */
    private readonly lists = new Map<string, string[]>(),
  ) {}

  has(name: string): boolean {
    return this.flags.has(name);
  }

  required(...names: string[]): void {
    const missing = names.filter((n) => !this.flags.has(n));
    if (missing.length > 0) {
      const list = missing.map((n) => `--${n}`).join(", ");
      throw new UsageError(`missing required flag ${list}`, this.topic);
    }
  }

  text(name: string): string | undefined {
    const value = this.flags.get(name);
    if (value === undefined) return undefined;
    if ((this.lists.get(name)?.length ?? 0) > 1) {
      throw new UsageError(`--${name} is given twice`, this.topic);
    }
    if (typeof value !== "string" || value === "") {
      throw new UsageError(`--${name} must not be empty`, this.topic);
    }
    return value;
  }

  name(flag: string): string | undefined {
    const value = this.text(flag);
    if (value !== undefined && !NAME_RE.test(value)) {
      throw new UsageError(
        `--${flag} must be ${NAME_RULE}, got "${value}"`,
        this.topic,
      );
    }
    return value;
  }

  /** An id or name of something the API has (`what`: "a network id or name"). */
  ref(flag: string, what: string): string | undefined {
    const value = this.text(flag);
    if (value !== undefined) this.#checkRef(flag, value, what);
    return value;
  }

  /** Every value of a repeatable `ref()` flag; each at most once. */
  refs(flag: string, what: string): string[] | undefined {
    const values = this.lists.get(flag);
    values?.forEach((value, i) => {
      this.#checkRef(flag, value, what);
      if (values.indexOf(value) !== i) {
        throw new UsageError(`--${flag} ${value} is given twice`, this.topic);
      }
    });
    return values;
  }

  #checkRef(flag: string, value: string, what: string): void {
    if (value === "") {
      throw new UsageError(`--${flag} must not be empty`, this.topic);
    }
    if (!REF_RE.test(value)) {
      throw new UsageError(
        `--${flag} must be ${what} (lowercase letters, digits and '-'), ` +
          `got "${value}"`,
        this.topic,
      );
    }
  }

  integer(
    name: string,
    min: number,
    max: number,
    rule: string,
  ): number | undefined {
    const value = this.flags.get(name);
    if (value === undefined) return undefined;
    const n = typeof value === "string" && /^-?\d+$/.test(value)
      ? Number(value)
      : NaN;
    if (!(n >= min && n <= max)) {
      throw new UsageError(
        `--${name} must be ${rule}, got "${value}"`,
        this.topic,
      );
    }
    return n;
  }

  wait(defaultSeconds = DEFAULT_TIMEOUT_SECONDS): Wait {
    if (this.flags.has("wait") && this.flags.has("no-wait")) {
      throw new UsageError(
        "--wait and --no-wait exclude each other",
        this.topic,
      );
    }
    const timeout = this.flags.get("timeout");
    const seconds = timeout === undefined ? defaultSeconds : Number(timeout);
    if (!(seconds > 0 && seconds <= 86_400)) {
      throw new UsageError(
        `--timeout must be a number of seconds above 0 and at most 86400, got "${timeout}"`,
        this.topic,
      );
    }
    return this.flags.has("no-wait") ? null : { timeoutSeconds: seconds };
  }
}
