/**
 * Typing into a test guest's serial console (the unix socket qemu serves at
 * the handle's `console`; the tiny guest runs a root shell there).
 *
 * @example
 * ```ts
 * const out = await guestRun(handle.console, "cat /sys/class/net/eth0/address");
 * ```
 */

/** Options of {@linkcode guestRun} and {@linkcode guestExec}. */
export interface GuestRunOptions {
  /** For the whole exchange, shell prompt included. Default 15000. */
  timeoutMs?: number;
}

/** What a command printed (CR removed) and its exit code. */
export interface GuestResult {
  output: string;
  code: number;
}

/** Enter is pressed this often while waiting for a prompt ... */
const POKE_EVERY_MS = 250;
/** ... and every this many times Ctrl-C instead, to end a hung command. */
const CTRL_C_EVERY = 4;
const decoder = new TextDecoder();
const encoder = new TextEncoder();
/** One exchange per socket at a time: qemu serves one client anyway. */
const queues = new Map<string, Promise<unknown>>();

/**
 * Runs one shell command line (no trailing `&`) in the guest and resolves
 * with what it printed. Throws when it exits non-zero, or on timeout, with
 * what the console showed.
 */
export async function guestRun(
  consoleSock: string,
  command: string,
  opts: GuestRunOptions = {},
): Promise<string> {
  const { output, code } = await guestExec(consoleSock, command, opts);
  if (code !== 0) {
    throw new Error(
      `Guest command failed with exit ${code}: ${command}\n${output}`,
    );
  }
  return output;
}

/**
 * Like {@linkcode guestRun} but resolves with the exit code instead of
 * throwing for a non-zero one. First presses Enter until the shell shows
 * its prompt, and now and then Ctrl-C (so a hung command does not get in
 * the way; not at first, as Ctrl-C kills a shell that is just starting),
 * then types `echo <begin>; <command> ; echo <end> $?` where the markers
 * are typed with empty quotes inside, so the echo of the typed line never
 * matches them.
 */
export async function guestExec(
  consoleSock: string,
  command: string,
  { timeoutMs = 15_000 }: GuestRunOptions = {},
): Promise<GuestResult> {
  if (/[\r\n]/.test(command)) {
    throw new TypeError("Cannot run guest command: it must be one line");
  }
  return await serialized(
    consoleSock,
    () =>
      withConsole(consoleSock, timeoutMs, async (con) => {
        await con.prompt();
        const tag = crypto.randomUUID().slice(0, 8);
        await con.write(
          `echo U''CB-${tag}; ${command} ; echo U''CE-${tag} $?\n`,
        );
        const match = await con.waitFor(
          new RegExp(`\\nUCB-${tag}\\n([^]*?)UCE-${tag} (\\d+)\\n`),
          `the end of \`${command}\``,
        );
        return {
          output: match[1],
          code: Number(match[2]),
        };
      }),
  );
}

/**
 * Connects to the console and resolves with the match once what the guest
 * prints from now on matches `regex` (CR removed); `send` is typed first.
 */
export function waitConsole(
  consoleSock: string,
  regex: RegExp,
  timeoutMs: number,
  { send }: { send?: string } = {},
): Promise<RegExpMatchArray> {
  return serialized(
    consoleSock,
    () =>
      withConsole(consoleSock, timeoutMs, async (con) => {
        if (send !== undefined) await con.write(send);
        return await con.waitFor(regex, `output matching ${regex}`);
      }),
  );
}

function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const before = queues.get(key) ?? Promise.resolve();
  const current = before.catch(() => {}).then(fn);
  const tail = current.catch(() => {});
  queues.set(key, tail);
  tail.then(() => {
    if (queues.get(key) === tail) queues.delete(key);
  });
  return current;
}

interface Console {
  write(text: string): Promise<void>;
  /** Waits until the text read since the last call matches `regex`. */
  waitFor(regex: RegExp, what: string): Promise<RegExpMatchArray>;
  /** Presses Enter (or Ctrl-C) every 250 ms until a fresh prompt shows. */
  prompt(): Promise<void>;
}

async function withConsole<T>(
  path: string,
  timeoutMs: number,
  fn: (con: Console) => Promise<T>,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  const conn = await Deno.connect({ transport: "unix", path });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  let seen = "";
  let closed = false;
  let wake = () => {};
  const reading = (async () => {
    const buf = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        seen += decoder.decode(buf.subarray(0, n), { stream: true })
          .replaceAll("\r", "");
        wake();
      }
    } catch {
      // closed by the timer or below
    }
    closed = true;
    wake();
  })();
  const write = async (text: string) => {
    let bytes = encoder.encode(text);
    while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
  };
  const waitFor = async (
    regex: RegExp,
    what: string,
    poke?: (n: number) => string,
  ): Promise<RegExpMatchArray> => {
    let lastPoke = Date.now();
    let pokes = 0;
    while (true) {
      const match = seen.match(regex);
      if (match) {
        seen = seen.slice((match.index ?? 0) + match[0].length);
        return match;
      }
      if (closed || Date.now() >= until) {
        throw new Error(
          `Cannot read the guest console ${path}: waited ${timeoutMs} ms for ${what}; it showed: ${
            JSON.stringify(seen.slice(-2000))
          }`,
        );
      }
      if (poke !== undefined && Date.now() - lastPoke >= POKE_EVERY_MS) {
        lastPoke = Date.now();
        await write(poke(++pokes));
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  };
  try {
    return await fn({
      write,
      waitFor: (regex, what) => waitFor(regex, what),
      prompt: async () => {
        await write("\n");
        await waitFor(
          /\n# /,
          "a shell prompt",
          (n) => n % CTRL_C_EVERY === 0 ? "\x03" : "\n",
        );
      },
    });
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer
    }
    await reading;
  }
}
