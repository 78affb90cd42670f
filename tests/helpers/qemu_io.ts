/**
 * A long-lived `qemu-io` that keeps one image open and takes commands one at
 * a time: a client that holds an RBD image (its watch and exclusive lock)
 * the way a VM's qemu does, for fencing tests. One-shot checks use
 * {@linkcode qemuIo}.
 *
 * @example
 * ```ts
 * const io = await QemuIo.open("raw", "rbd:ucloud/vm-1:conf=/c/ceph.conf");
 * try {
 *   const out = await io.command("write -P 0x44 0 4k"); // "wrote 4096/4096 ..."
 * } finally {
 *   await io.close();
 * }
 * ```
 */
import { run, type RunResult } from "../../drivers/runner.ts";

const PROMPT = "qemu-io> ";

/** Runs `qemu-io -f <format>` with one `-c` per command; rejects on failure. */
export function qemuIo(
  format: "raw" | "qcow2",
  file: string,
  commands: string[],
): Promise<RunResult> {
  return run("qemu-io", [
    "-f",
    format,
    ...commands.flatMap((c) => ["-c", c]),
    file,
  ], { timeoutMs: 60_000 });
}

/** An interactive `qemu-io` on one image. */
export class QemuIo {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
  }

  /**
   * Starts qemu-io on the image (stderr merged into the replies); in the
   * network namespace `netns` when given (a client of that test host).
   */
  static async open(
    format: "raw" | "qcow2",
    file: string,
    { netns }: { netns?: string } = {},
  ): Promise<QemuIo> {
    const sh = ["sh", "-c", 'exec qemu-io "$@" 2>&1', "qemu-io"];
    const [cmd, ...pre] = netns ? ["ip", "netns", "exec", netns, ...sh] : sh;
    const child = new Deno.Command(cmd, {
      args: [...pre, "-f", format, file],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const io = new QemuIo(child);
    await io.#untilPrompt(60_000);
    return io;
  }

  /** Sends one command and returns what qemu-io printed for it. */
  async command(line: string, timeoutMs = 60_000): Promise<string> {
    await this.#writer.write(new TextEncoder().encode(`${line}\n`));
    return await this.#untilPrompt(timeoutMs);
  }

  async #untilPrompt(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#buffer.includes(PROMPT)) {
      const left = deadline - Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `qemu-io gave no prompt in ${timeoutMs} ms: ${this.#buffer}`,
              ),
            ),
          Math.max(left, 0),
        );
      });
      try {
        const { done, value } = await Promise.race([
          this.#reader.read(),
          timeout,
        ]);
        if (done) throw new Error(`qemu-io exited: ${this.#buffer}`);
        this.#buffer += value;
      } finally {
        clearTimeout(timer);
      }
    }
    const at = this.#buffer.indexOf(PROMPT);
    const reply = this.#buffer.slice(0, at);
    this.#buffer = this.#buffer.slice(at + PROMPT.length);
    return reply.trim();
  }

  /** Quits qemu-io (closing the image) and waits for it to exit. */
  async close(): Promise<void> {
    await this.#writer.write(new TextEncoder().encode("quit\n")).catch(
      () => {},
    );
    await this.#writer.close().catch(() => {});
    const exited = this.#child.status;
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, 30_000);
    await this.#reader.cancel().catch(() => {});
    await exited;
    clearTimeout(timer);
  }
}
