/**
 * A tiny QMP (QEMU Machine Protocol) client over a unix socket.
 *
 * @module
 */
import { deadline } from "./_deadline.ts";

/** Limits of every QMP call. */
export interface QmpCallOptions {
  signal?: AbortSignal;
  /** Default 5000. */
  timeoutMs?: number;
}

/** An asynchronous event that qemu sent between replies. */
export interface QmpEvent {
  event: string;
  data?: unknown;
  timestamp?: { seconds: number; microseconds: number };
}

/**
 * qemu answered a command with an error, e.g. class "CommandNotFound".
 *
 * @example
 * ```ts
 * try {
 *   await qmp.execute("no-such-command");
 * } catch (err) {
 *   if (err instanceof QmpError) console.log(err.errorClass); // "CommandNotFound"
 * }
 * ```
 */
export class QmpError extends Error {
  readonly command: string;
  readonly errorClass: string;
  readonly desc: string;

  constructor(command: string, errorClass: string, desc: string) {
    super(`Cannot run QMP command ${command}: ${errorClass}: ${desc}`);
    this.name = "QmpError";
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

const DEFAULT_TIMEOUT_MS = 5_000;
const MAX_EVENTS = 100;

interface Settle {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * A QMP connection in command mode. Replies are matched to commands by id, so
 * events interleaved in the stream are kept in {@linkcode QmpClient.events}
 * (the last 100) and do not disturb replies.
 *
 * @example
 * ```ts
 * const qmp = await QmpClient.connect("/var/lib/ucloud/vms/vm-1/qmp.sock");
 * try {
 *   const { status } = await qmp.execute<{ status: string }>("query-status");
 * } finally {
 *   await qmp.close();
 * }
 * ```
 */
export class QmpClient {
  /** Events received so far, oldest first, at most 100. */
  readonly events: QmpEvent[] = [];
  #conn: Deno.UnixConn;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;
  #writing: Promise<void> = Promise.resolve();
  #greeting: Promise<unknown>;
  #onGreeting: Settle;
  #loop: Promise<void>;

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    let onGreeting!: Settle;
    this.#greeting = new Promise((resolve, reject) => {
      onGreeting = { resolve, reject };
    });
    this.#greeting.catch(() => {});
    this.#onGreeting = onGreeting;
    this.#loop = this.#readLoop();
  }

  /**
   * Connects to the QMP socket at `path`, reads the greeting and enters
   * command mode (`qmp_capabilities`). The limits cover the whole handshake.
   */
  static async connect(
    path: string,
    { signal, timeoutMs = DEFAULT_TIMEOUT_MS }: QmpCallOptions = {},
  ): Promise<QmpClient> {
    signal?.throwIfAborted();
    let conn: Deno.UnixConn;
    try {
      conn = await Deno.connect({ transport: "unix", path });
    } catch (err) {
      throw new Error(
        `Cannot connect to QMP at ${path}: ${
          err instanceof Error ? err.message : err
        }`,
        { cause: err },
      );
    }
    const client = new QmpClient(conn);
    try {
      await deadline(
        client.#greeting,
        { signal, timeoutMs },
        `connect to QMP at ${path}`,
      );
      await client.execute("qmp_capabilities", undefined, {
        signal,
        timeoutMs,
      });
      return client;
    } catch (err) {
      await client.close();
      throw err;
    }
  }

  /**
   * Runs `command` with `args` and resolves with its `return` value; rejects
   * with a {@linkcode QmpError} when qemu answers with an error.
   */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    { signal, timeoutMs = DEFAULT_TIMEOUT_MS }: QmpCallOptions = {},
  ): Promise<T> {
    if (this.#closed) {
      return Promise.reject(
        new Error(`Cannot run QMP command ${command}: connection closed`),
      );
    }
    const id = this.#nextId++;
    const reply = new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { command, resolve, reject });
    });
    const line = JSON.stringify(
      args === undefined
        ? { execute: command, id }
        : { execute: command, arguments: args, id },
    ) + "\n";
    this.#writing = this.#writing.then(() => this.#write(line)).catch(
      (err) => {
        const why = this.#closed
          ? "connection closed"
          : err instanceof Error
          ? err.message
          : String(err);
        this.#pending.get(id)?.reject(
          new Error(`Cannot run QMP command ${command}: ${why}`, {
            cause: err,
          }),
        );
        this.#pending.delete(id);
      },
    );
    return deadline(reply, { signal, timeoutMs }, `run QMP command ${command}`)
      .finally(() => this.#pending.delete(id)) as Promise<T>;
  }

  /** Closes the connection; pending commands reject. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // already closed by the peer
      }
    }
    await this.#loop;
  }

  async #write(line: string): Promise<void> {
    let bytes = new TextEncoder().encode(line);
    while (bytes.length > 0) {
      const n = await this.#conn.write(bytes);
      bytes = bytes.subarray(n);
    }
  }

  async #readLoop(): Promise<void> {
    const decoder = new TextDecoder();
    const buf = new Uint8Array(16 * 1024);
    let text = "";
    try {
      while (true) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        text += decoder.decode(buf.subarray(0, n), { stream: true });
        let newline;
        while ((newline = text.indexOf("\n")) >= 0) {
          const line = text.slice(0, newline).trim();
          text = text.slice(newline + 1);
          if (line) this.#dispatch(line);
        }
      }
    } catch {
      // closed by close() or a broken connection: handled below
    }
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // already closed
      }
    }
    this.#onGreeting.reject(new Error("QMP connection closed before greeting"));
    for (const { command, reject } of this.#pending.values()) {
      reject(new Error(`Cannot run QMP command ${command}: connection closed`));
    }
    this.#pending.clear();
  }

  #dispatch(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    if ("QMP" in message) {
      this.#onGreeting.resolve(message.QMP);
    } else if (typeof message.event === "string") {
      this.events.push(message as unknown as QmpEvent);
      if (this.events.length > MAX_EVENTS) this.events.shift();
    } else if (typeof message.id === "number") {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      if ("error" in message) {
        const error = message.error as { class?: string; desc?: string };
        pending.reject(
          new QmpError(
            pending.command,
            String(error?.class ?? "GenericError"),
            String(error?.desc ?? ""),
          ),
        );
      } else {
        pending.resolve(message.return);
      }
    }
  }
}

/**
 * Connects to the QMP socket at `qmpPath`, asks `query-status` and closes:
 * resolves with qemu's run state, e.g. "running", "paused", "shutdown".
 *
 * @example
 * ```ts
 * await queryStatus("/var/lib/ucloud/vms/vm-1/qmp.sock", { timeoutMs: 2000 });
 * ```
 */
export async function queryStatus(
  qmpPath: string,
  opts: QmpCallOptions = {},
): Promise<string> {
  const qmp = await QmpClient.connect(qmpPath, opts);
  try {
    const { status } = await qmp.execute<{ status: string }>(
      "query-status",
      undefined,
      opts,
    );
    return status;
  } finally {
    await qmp.close();
  }
}
