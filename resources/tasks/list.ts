/**
 * Listing tasks as a caller may see them, newest first, in pages: a user
 * sees the tasks they own, an admin every task; filters by state, kind,
 * target and VM are applied while reading. Task ids start with their
 * creation time (`t-<ms base 36>-`), so pages read windows of time
 * backwards (core/store_page.ts `descendingPage`), at most `PAGE_SCAN_MAX`
 * keys each: a page may end early with fewer items and a continue token
 * (sealed, core/page_token.ts).
 *
 * @example
 * ```ts
 * const page = await listTasks(store, who, { limit: 50, state: "failed" });
 * const more = await listTasks(store, who, { limit: 50, state: "failed", continue: page.continue! });
 * ```
 */
import { keys } from "../../core/keys.ts";
import { openPosition, sealPosition } from "../../core/page_token.ts";
import { Task, type TaskState } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { descendingPage, type TimeKeys } from "../../core/store_page.ts";
import { type Caller, canSee } from "../deps.ts";

/** Which tasks a listing asks for, and where its page starts. */
export interface TaskQuery {
  limit: number;
  continue?: string;
  state?: TaskState;
  kind?: string;
  target?: string;
  /** Tasks whose payload names this VM. */
  vm?: string;
}

const ID_TIME = /^t-([0-9a-z]{9})/;

/** Task keys and their creation times. */
export const taskTimes: TimeKeys = {
  keyAt: (ms) => keys.task(`t-${ms.toString(36).padStart(9, "0")}`),
  timeOf: (key) => {
    const m = ID_TIME.exec(key.slice(keys.tasks.length));
    return m ? parseInt(m[1], 36) : null;
  },
};

/** A page of the tasks `who` may see, newest first. */
export async function listTasks(
  store: Store,
  who: Caller,
  q: TaskQuery,
): Promise<{ items: Task[]; continue: string | null }> {
  const position = q.continue === undefined
    ? undefined
    : await openPosition(store, keys.tasks, q.continue);
  const page = await descendingPage(store, keys.tasks, Task, {
    ...taskTimes,
    limit: q.limit,
    position,
    match: (t) =>
      canSee(who, t.owner) &&
      (q.state === undefined || t.state === q.state) &&
      (q.kind === undefined || t.kind === q.kind) &&
      (q.target === undefined || t.target === q.target) &&
      (q.vm === undefined || t.payload.vm === q.vm),
  });
  return {
    items: page.items.map((kv) => kv.value),
    continue: page.next === null
      ? null
      : await sealPosition(store, keys.tasks, page.next),
  };
}
