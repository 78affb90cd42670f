/**
 * A reader of server-sent event streams for tests: `EventLog` reads a
 * response body in the background, parses its frames and keeps them, and
 * `waitEvent()` waits for one that matches; `readUntilSynced()` reads a
 * `/v1/events` answer up to the end of its snapshot.
 */
import { waitFor } from "./cluster.ts";

/** One parsed event; `comment` for a `:` line. */
export interface SseEvent {
  event: string;
  id?: string;
  // deno-lint-ignore no-explicit-any
  data: any;
}

/** The events of one stream, read as they come. */
export class EventLog {
  readonly events: SseEvent[] = [];
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Resolves when the stream ended (by the server or `cancel()`). */
  readonly ended: Promise<void>;
  #done = false;

  constructor(readonly response: Response) {
    this.#reader = response.body!.getReader();
    this.ended = this.#read();
  }

  get done(): boolean {
    return this.#done;
  }

  async #read(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          this.#parse(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch { /* canceled or cut */ }
    this.#done = true;
  }

  #parse(block: string): void {
    const ev: SseEvent = { event: "message", data: undefined };
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) ev.event = "comment";
      else if (line.startsWith("event: ")) ev.event = line.slice(7);
      else if (line.startsWith("id: ")) ev.id = line.slice(4);
      else if (line.startsWith("data: ")) ev.data = JSON.parse(line.slice(6));
    }
    this.events.push(ev);
  }

  /** Events named `name`. */
  named(name: string): SseEvent[] {
    return this.events.filter((e) => e.event === name);
  }

  /** Waits for an event named `name` whose data satisfies `match`. */
  waitEvent(
    name: string,
    // deno-lint-ignore no-explicit-any
    match: (data: any) => boolean = () => true,
    timeoutMs = 60_000,
  ): Promise<SseEvent> {
    return waitFor(
      `event ${name}`,
      () => this.events.find((e) => e.event === name && match(e.data)),
      timeoutMs,
    );
  }

  /** Stops reading: the client goes away. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    await this.ended;
  }
}

/**
 * The events of a `/v1/events` stream up to its `synced` event, as a JSON
 * array; cancels the stream after it.
 */
export async function readUntilSynced(res: Response): Promise<string> {
  const log = new EventLog(res);
  await log.waitEvent("synced", () => true, 30_000);
  await log.cancel();
  return JSON.stringify(log.events);
}
