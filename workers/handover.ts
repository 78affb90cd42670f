/**
 * Hand-over of a host's lease from a worker that stops in order (SIGTERM:
 * `systemctl restart`, a package upgrade) to the host's fencer, which keeps
 * the lease alive for a bounded time (`worker.handoverSeconds`) until a new
 * worker process adopts it: the VMs keep running, nothing fails over.
 *
 * The stopping worker marks its `alive/` document (`handover`: until when;
 * placement leaves the host alone, `ucloud host list` shows it) and writes
 * `<runDir>/handover.json` with the lease. The fencer ({@linkcode holdLease})
 * keeps the lease alive and the deadline file moving on while that file is
 * there and its time has not run out. The next worker adopts the lease and
 * removes the file; when nobody comes, the fencer lets go: the deadline
 * passes, it fences the VMs, the lease expires and the host fails over as
 * after a crash. While the fencer cannot reach etcd the deadline does not
 * move, so fencing stays as safe as with a live worker.
 *
 * @example
 * ```ts
 * await writeHandover(runDir, { lease, until: monotonicMs() + 60_000, ... });
 * ```
 */
import { z } from "zod";
import { monotonicMs } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import { Session } from "../core/session.ts";
import { Store } from "../core/store.ts";
import { writeDeadline } from "./fence.ts";

export const Handover = z.object({
  lease: z.string(),
  /** Until when (monotonicMs) the fencer holds the lease. */
  until: z.number(),
  ttlSeconds: z.number().int().min(1),
  marginMs: z.number().int().min(0),
  etcd: z.object({
    endpoints: z.array(z.string()).min(1),
    prefix: z.string(),
    timeoutMs: z.number().int(),
  }),
});
export type Handover = z.infer<typeof Handover>;

export const handoverFile = (runDir: string) => `${runDir}/handover.json`;

/** Writes the hand-over for the fencer (atomically, mode 0600). */
export async function writeHandover(runDir: string, h: Handover) {
  const tmp = `${handoverFile(runDir)}.${Deno.pid}.tmp`;
  await Deno.mkdir(runDir, { recursive: true });
  await Deno.writeTextFile(tmp, JSON.stringify(h), { mode: 0o600 });
  await Deno.rename(tmp, handoverFile(runDir));
}

/** The hand-over waiting for a new worker, or null. */
export async function readHandover(runDir: string): Promise<Handover | null> {
  try {
    const raw = JSON.parse(await Deno.readTextFile(handoverFile(runDir)));
    return Handover.parse(raw);
  } catch {
    return null;
  }
}

/** Ends a hand-over (a new worker adopted the lease). */
export async function endHandover(runDir: string): Promise<void> {
  await Deno.remove(handoverFile(runDir)).catch(() => {});
}

/**
 * The fencer's part: every `everyMs`, looks for a hand-over and holds its
 * lease (keep-alives, deadline file) until the file is gone, its time ran
 * out, or the lease is lost. Returns when `signal` aborts.
 */
export async function holdLease(
  opts: { runDir: string; log: Logger; signal: AbortSignal; everyMs?: number },
): Promise<void> {
  const { runDir, log, signal } = opts;
  let held: { session: Session; store: Store; lease: string } | null = null;
  const release = async (why: string) => {
    if (!held) return;
    log.info("hand-over ends: the fencer no longer holds the lease", {
      lease: held.lease,
      why,
    });
    await held.session.close({ revoke: false });
    held.store.close();
    held = null;
  };
  try {
    while (!signal.aborted) {
      const h = await readHandover(runDir);
      if (!h || h.lease !== held?.lease) await release("hand-over file gone");
      if (h && monotonicMs() > h.until) {
        await release("hand-over time ran out: no new worker came");
        await endHandover(runDir);
      } else if (h && !held) held = await adopt(h, runDir, log);
      if (held?.session.signal.aborted) await release("lease lost");
      await new Promise((r) => setTimeout(r, opts.everyMs ?? 200));
    }
  } finally {
    await release("fencer stops");
  }
}

async function adopt(h: Handover, runDir: string, log: Logger) {
  const store = Store.connect(h.etcd);
  try {
    const session = await Session.adopt(store, h.lease, {
      ttlSeconds: h.ttlSeconds,
      marginMs: h.marginMs,
      log,
      onDeadline: (d) => {
        writeDeadline(runDir, d).catch((err) =>
          log.error("cannot write the fence deadline", { error: String(err) })
        );
      },
    });
    if (session) {
      log.info("hand-over: the fencer holds the lease for a new worker", {
        lease: h.lease,
        forMs: Math.round(h.until - monotonicMs()),
      });
      return { session, store, lease: h.lease };
    }
    log.warn("hand-over: the lease had expired already", { lease: h.lease });
    await endHandover(runDir);
  } catch (err) {
    log.warn("hand-over: cannot reach etcd", { error: String(err) });
  }
  store.close();
  return null;
}
