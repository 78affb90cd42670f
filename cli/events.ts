/**
 * `ucloud events [--all]`: follows `GET /v1/events` (server-sent events)
 * and prints one line per event until interrupted: first the caller's VMs
 * as they are, then every change of their VMs and tasks. `--all`
 * (admins): everyone's. `--json`: each event as one line of JSON
 * (`{"event", "id", "data"}`). When the stream ends (the API restarted, the
 * client fell behind, the token ran out) it connects again, with a fresh
 * token and a back-off, and starts from a new snapshot.
 *
 * @module
 */
import { noArgs } from "./args.ts";
import type { Task, Vm } from "./client.ts";
import { command, type Context, type Input } from "./command.ts";
import { CliError } from "./errors.ts";
import { print } from "./output.ts";

/** One event of the stream; `data` as parsed JSON. */
export interface StreamEvent {
  event: string;
  id?: string;
  data: unknown;
}

/**
 * The complete events at the start of `text` (comments dropped) and what
 * is left of an event still coming.
 *
 * @example
 * ```ts
 * parseEvents('event: vm-deleted\ndata: {"id":"vm-1"}\n\nevent: t');
 * // { events: [{ event: "vm-deleted", data: { id: "vm-1" } }], rest: "event: t" }
 * ```
 */
export function parseEvents(
  text: string,
): { events: StreamEvent[]; rest: string } {
  const events: StreamEvent[] = [];
  const blocks = text.split("\n\n");
  const rest = blocks.pop()!;
  for (const block of blocks) {
    const ev: StreamEvent = { event: "message", data: undefined };
    let data = "";
    for (const line of block.split("\n")) {
      const i = line.indexOf(":");
      if (i === 0) continue;
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") ev.event = value;
      else if (field === "id") ev.id = value;
      else if (field === "data") data += data ? `\n${value}` : value;
    }
    if (!data) continue;
    try {
      ev.data = JSON.parse(data);
    } catch {
      ev.data = data;
    }
    events.push(ev);
  }
  return { events, rest };
}

const orDash = (s: string | undefined) => s === undefined || s === "" ? "-" : s;

/** The line `ucloud events` prints for `ev`; null for none. */
export function eventLine(ev: StreamEvent): string | null {
  if (ev.event === "vm") {
    const vm = ev.data as Vm;
    const addresses = (vm.nics ?? []).flatMap((n) =>
      [n.ipv6, n.ipv4].filter((a) => a !== undefined)
    );
    return [
      "vm",
      vm.id,
      vm.spec.name ?? "-",
      vm.status.phase,
      orDash(vm.status.host),
      orDash(addresses.join(",")),
    ].join(" ");
  }
  if (ev.event === "vm-deleted") {
    return `vm-deleted ${(ev.data as { id: string }).id}`;
  }
  if (ev.event === "task") {
    const t = ev.data as Task;
    const vm = typeof t.payload?.vm === "string" ? t.payload.vm : undefined;
    const line = ["task", t.id, t.kind, t.state, orDash(vm)].join(" ");
    return t.progress ? `${line} ${t.progress}` : line;
  }
  return null;
}

/** Why one connection ended. */
type Ending = { kind: "reset" | "end" | "closed"; reason: string };

/** Prints the events of one response until it ends. */
async function printStream(res: Response, ctx: Context): Promise<Ending> {
  const decoder = new TextDecoder();
  let rest = "";
  let ending: Ending = { kind: "closed", reason: "the API closed the stream" };
  try {
    for await (const chunk of res.body!) {
      const parsed = parseEvents(
        rest + decoder.decode(chunk, { stream: true }),
      );
      rest = parsed.rest;
      for (const ev of parsed.events) {
        if (ev.event === "reset" || ev.event === "end") {
          const reason = (ev.data as { reason?: string })?.reason ?? "";
          ending = { kind: ev.event, reason };
        }
        if (ctx.json) print(ctx, JSON.stringify(ev));
        else {
          const line = eventLine(ev);
          if (line !== null) print(ctx, line);
        }
      }
    }
  } catch (err) {
    ending = { kind: "closed", reason: (err as Error).message };
  }
  return ending;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Follows the stream, connecting again after each end. */
async function follow(all: boolean, ctx: Context): Promise<never> {
  const { session, stderr } = ctx;
  const url = `${session.base}/v1/events${all ? "?all=1" : ""}`;
  let delay = 1000;
  let fresh = false;
  for (;;) {
    const auth = await session.headers(fresh);
    let res: Response;
    try {
      res = await session.fetchFn(url, {
        headers: { accept: "text/event-stream", ...auth },
      });
    } catch (err) {
      stderr.write(
        `events: the API at ${session.base} is not reachable ` +
          `(${(err as Error).message}), trying again\n`,
      );
      await sleep(delay);
      delay = Math.min(delay * 2, 30_000);
      continue;
    }
    if (res.status === 401 && auth.authorization && !fresh) {
      // The cached token was revoked: buy a new one, once.
      await res.body?.cancel();
      fresh = true;
      continue;
    }
    if (!res.ok) {
      const text = await res.text();
      let message = text.trim().slice(0, 200);
      try {
        message = JSON.parse(text).error.message ?? message;
      } catch { /* not an API error body */ }
      throw new CliError(`the API refused the event stream: ${message}`);
    }
    const ending = await printStream(res, ctx);
    // A token that ran out or was revoked: the next connection buys one.
    fresh = ending.kind === "end";
    stderr.write(
      `events: ${ending.kind}${
        ending.reason ? ` (${ending.reason})` : ""
      }, connecting again\n`,
    );
    await sleep(ending.kind === "closed" ? delay : 0);
    delay = ending.kind === "closed" ? Math.min(delay * 2, 30_000) : 1000;
  }
}

const events = command({
  summary: "Follow changes of your VMs and tasks as they happen",
  usage: "ucloud events [--all] [--json]",
  flags: { "--all": "every user's VMs and tasks (admins)" },
  examples: ["ucloud events", "ucloud events --all --json"],
  parse({ read, args, topic }: Input) {
    noArgs(args, topic);
    return { all: read.has("all") };
  },
  run: (args, ctx) => follow(args.all, ctx),
});

/** The events command, by name. */
export const EVENT_COMMANDS = { events };
