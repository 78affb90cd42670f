#!/usr/bin/env -S deno run --allow-net --allow-env=UCLOUD_API,XDG_CONFIG_HOME,HOME --allow-read --allow-write
/**
 * `ucloud`: the command-line client of the ucloud API. `main()` parses the
 * command line (parse.ts), picks the API (`--api`, `UCLOUD_API`, the
 * stored login's, else the default), runs the command against the typed
 * client with the session's credentials, and turns errors into
 * `error: ...` and an exit code: 0 ok, 1 API or operation error, 2 usage
 * error. It reaches neither etcd nor subprocesses (tests/layers_test.ts);
 * `deno bundle` makes one file of it.
 *
 * @example
 * ```sh
 * deno run --allow-net --allow-env=UCLOUD_API,XDG_CONFIG_HOME,HOME --allow-read --allow-write cli/main.ts \
 *   vm create --name web1 --cpus 1 --memory 128
 * ```
 *
 * @module
 */
import { apiUrl, DEFAULT_API } from "./args.ts";
import { readLineFromTerminal } from "./auth.ts";
import { apiClient } from "./client.ts";
import type { Command, Context } from "./command.ts";
import { COMMANDS } from "./commands.ts";
import { CliError, UsageError } from "./errors.ts";
import { helpText } from "./help.ts";
import { connect } from "./http.ts";
import { type Output, print } from "./output.ts";
import { parseArgs } from "./parse.ts";
import { configDir, denoFiles, type Files, Session } from "./session.ts";

export type { Files };

/** Seams of `main()`; each defaults to the real thing. */
export interface MainOptions {
  fetch?: typeof globalThis.fetch;
  stdout?: Output;
  stderr?: Output;
  /** `UCLOUD_API`, `XDG_CONFIG_HOME`, `HOME`. */
  env?: Record<string, string | undefined>;
  /** How often to poll while waiting. */
  pollIntervalMs?: number;
  files?: Files;
  readStdin?: () => Promise<string>;
  readLine?: (question: string, hidden: boolean) => Promise<string>;
  now?: () => number;
}

/** An environment variable, or undefined when unset or not permitted. */
function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function denoOutput(file: typeof Deno.stdout): Output {
  const encoder = new TextEncoder();
  return {
    write(text) {
      const data = encoder.encode(text);
      let written = 0;
      while (written < data.length) {
        written += file.writeSync(data.subarray(written));
      }
    },
    isTerminal: () => file.isTerminal(),
    columns: () => Deno.consoleSize().columns,
  };
}

/**
 * Runs one command line and returns the exit code: 0 ok, 1 API or operation
 * error, 2 usage error. Never throws for those; prints `error: ...` instead.
 *
 * @example
 * ```ts
 * const code = await main(["vm", "list"], { env: { UCLOUD_API: "http://127.0.0.1:8750" } });
 * ```
 */
export async function main(
  argv: readonly string[],
  {
    fetch = globalThis.fetch,
    stdout = denoOutput(Deno.stdout),
    stderr = denoOutput(Deno.stderr),
    env = {
      UCLOUD_API: envVar("UCLOUD_API"),
      XDG_CONFIG_HOME: envVar("XDG_CONFIG_HOME"),
      HOME: envVar("HOME"),
    },
    pollIntervalMs = 250,
    files = denoFiles,
    readStdin = () => new Response(Deno.stdin.readable).text(),
    readLine = readLineFromTerminal,
    now = Date.now,
  }: MainOptions = {},
): Promise<number> {
  try {
    const args = parseArgs(argv);
    const dir = configDir(env);
    let base = args.api ??
      (env.UCLOUD_API ? apiUrl(env.UCLOUD_API, "UCLOUD_API") : undefined);
    if (base === undefined && args.command !== "help") {
      // Without --api or UCLOUD_API: the API of the stored login.
      const stored = await new Session("", fetch, files, dir, now).stored();
      base = stored?.api;
    }
    base ??= DEFAULT_API;
    const session = new Session(base, fetch, files, dir, now);
    const ctx: Context = {
      client: apiClient(connect(base, fetch, session)),
      stdout,
      stderr,
      json: args.json,
      pollIntervalMs,
      session,
      readStdin,
      readLine,
    };
    if (args.command === "help") print(ctx, helpText(args.topic).trimEnd());
    else {
      const run = COMMANDS[args.command] as unknown as Command<typeof args>;
      await run.run(args, ctx);
    }
    return 0;
  } catch (err) {
    if (err instanceof UsageError && err.showHelp) {
      stderr.write(`error: ${err.message}\n\n${helpText(err.topic)}`);
    } else if (err instanceof UsageError) {
      const command = ["ucloud", ...err.topic].join(" ");
      stderr.write(
        `error: ${err.message}\nRun '${command} --help' for usage.\n`,
      );
    } else {
      const message = err instanceof Error ? err.message : String(err);
      stderr.write(`error: ${message}\n`);
    }
    return err instanceof CliError ? err.exitCode : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
