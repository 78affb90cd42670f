/**
 * Wakes VMs waiting for capacity when a host gains room: on every change
 * the placement cache sees (a host registered or enabled, a reservation
 * released) and whenever a VM begins to wait, at most once per
 * `intervalMs`, the claim loop makes the
 * waiting `vm.create` tasks whose need fits on a live host due now instead
 * of at the end of their back-off. A VM that still does not fit (another
 * took the room) waits again with the next, longer back-off.
 *
 * @example
 * ```ts
 * const waker = wakeOnCapacity(PlacementCache.for(store)!, loop, { log });
 * waker.stop(); // when the loop ends
 * ```
 */
import type { Logger } from "../core/log.ts";
import { feasible, type PlacementCache } from "../scheduler/mod.ts";
import type { ClaimLoop } from "./claim_loop.ts";

/** A running waker: `poke()` asks for a check (a new VM waits), `stop()`. */
export interface Waker {
  poke(): void;
  stop(): void;
}

/**
 * Subscribes `loop.wake()` to `cache`'s changes (and to `poke()`: a VM
 * began to wait, perhaps just after the room it needs appeared).
 */
export function wakeOnCapacity(
  cache: PlacementCache,
  loop: Pick<ClaimLoop, "wake">,
  { log, intervalMs = 200 }: { log?: Logger; intervalMs?: number } = {},
): Waker {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = () => {
    timer = undefined;
    const candidates = cache.candidates();
    const woken = loop.wake((need) => feasible(candidates, need).length > 0);
    if (woken) log?.debug("woke VMs waiting for capacity", { woken });
  };
  const poke = () => {
    timer ??= setTimeout(check, intervalMs);
  };
  const off = cache.onChange(poke);
  return {
    poke,
    stop: () => {
      off();
      clearTimeout(timer);
    },
  };
}
