/**
 * The one place that starts outside processes: every command gets a timeout,
 * an optional abort signal, and its stderr is kept for the error.
 *
 * @module
 */

/** Options of {@linkcode run}. */
export interface RunOptions {
  /** Aborting kills the child and rejects with a {@linkcode CommandError}. */
  signal?: AbortSignal;
  /** Kill the child and fail after this many milliseconds. Default 30000. */
  timeoutMs?: number;
  /** Text written to the child's standard input (closed when omitted). */
  stdin?: string;
  /** Variables added to the inherited environment. */
  env?: Record<string, string>;
}

/** What a successful {@linkcode run} returns. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A command that could not be started, exited non-zero, timed out or was
 * aborted. `code` is the exit code, or null when the command did not exit by
 * itself (not found, timed out, aborted).
 *
 * @example
 * ```ts
 * try {
 *   await run("false", []);
 * } catch (err) {
 *   if (err instanceof CommandError) console.log(err.code); // 1
 * }
 * ```
 */
export class CommandError extends Error {
  readonly cmd: string;
  readonly args: string[];
  readonly code: number | null;
  readonly stderr: string;

  constructor(
    cmd: string,
    args: string[],
    code: number | null,
    stderr: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    const tail = lastLines(stderr, 5);
    super(`Cannot run ${cmd}: ${reason}${tail ? `: ${tail}` : ""}`, options);
    this.name = "CommandError";
    this.cmd = cmd;
    this.args = args;
    this.code = code;
    this.stderr = stderr;
  }
}

/**
 * Runs `cmd` with `args` and resolves with its output when it exits 0.
 * Rejects with a {@linkcode CommandError} on a non-zero exit, when the
 * command cannot be started, on timeout and on abort (the child is killed).
 *
 * @example
 * ```ts
 * const { stdout } = await run("qemu-img", ["info", "--output=json", file], {
 *   timeoutMs: 10_000,
 * });
 * ```
 */
export async function run(
  cmd: string,
  args: string[],
  { signal, timeoutMs = 30_000, stdin, env }: RunOptions = {},
): Promise<RunResult> {
  if (signal?.aborted) {
    throw new CommandError(cmd, args, null, "", "aborted", {
      cause: signal.reason,
    });
  }
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      env,
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new CommandError(cmd, args, null, "", reason, { cause: err });
  }

  const stdout = new Collector(child.stdout);
  const stderr = new Collector(child.stderr);
  if (stdin !== undefined) void feed(child.stdin, stdin);
  const finished = Promise.all([child.status, stdout.done, stderr.done]);

  let stop: (reason: string, cause?: unknown) => void = () => {};
  const stopped = new Promise<{ reason: string; cause?: unknown }>(
    (resolve) => stop = (reason, cause) => resolve({ reason, cause }),
  );
  const timer = setTimeout(
    () => stop(`timed out after ${timeoutMs} ms`),
    timeoutMs,
  );
  const onAbort = () => stop("aborted", signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const outcome = await Promise.race([finished, stopped]);
    if (Array.isArray(outcome)) {
      const [status] = outcome;
      if (status.success) {
        return { code: 0, stdout: stdout.text(), stderr: stderr.text() };
      }
      const reason = status.signal
        ? `killed by ${status.signal}`
        : `exit ${status.code}`;
      throw new CommandError(cmd, args, status.code, stderr.text(), reason);
    }
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    // A grandchild may still hold the pipes open: stop reading them.
    await Promise.all([stdout.cancel(), stderr.cancel()]);
    await finished.catch(() => {});
    throw new CommandError(cmd, args, null, stderr.text(), outcome.reason, {
      cause: outcome.cause,
    });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Reads a byte stream to the end, keeping what it read. */
class Collector {
  readonly done: Promise<void>;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunks: Uint8Array[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
    this.done = this.#read();
  }

  async #read(): Promise<void> {
    try {
      while (true) {
        const { done, value } = await this.#reader.read();
        if (done) return;
        this.#chunks.push(value);
      }
    } catch {
      // cancelled or the pipe broke: keep what was read
    }
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    await this.done;
  }

  text(): string {
    const bytes = new Uint8Array(
      this.#chunks.reduce((n, c) => n + c.length, 0),
    );
    let offset = 0;
    for (const chunk of this.#chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    return new TextDecoder().decode(bytes);
  }
}

async function feed(
  stream: WritableStream<Uint8Array>,
  text: string,
): Promise<void> {
  const writer = stream.getWriter();
  try {
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
  } catch {
    // the child closed its stdin early; its exit status tells the rest
  }
}

function lastLines(text: string, count: number): string {
  return text.split("\n").map((line) => line.trim()).filter(Boolean)
    .slice(-count).join("; ");
}
