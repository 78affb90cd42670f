/**
 * A seeded pseudo-random number generator (mulberry32): the same seed gives
 * the same sequence, so a nemesis run's faults and workload choices can be
 * replayed from the seed it prints.
 *
 * @example
 * ```ts
 * const rng = new Rng(42);
 * rng.int(1, 6); // the same number for every run with seed 42
 * const faults = rng.fork("faults"); // an independent stream
 * ```
 */
export class Rng {
  #state: number;

  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** The next number in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A number in [min, max). */
  between(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** One of `items` (which must not be empty). */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("Cannot pick from nothing");
    return items[Math.floor(this.next() * items.length)];
  }

  /** One of the choices, with probability proportional to its weight. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    const live = choices.filter(([, w]) => w > 0);
    const total = live.reduce((n, [, w]) => n + w, 0);
    if (total <= 0) throw new RangeError("Cannot pick: every weight is 0");
    let r = this.next() * total;
    for (const [v, w] of live) {
      r -= w;
      if (r < 0) return v;
    }
    return live[live.length - 1][0];
  }

  /** An independent stream named `label`, derived from this seed only. */
  fork(label: string): Rng {
    let h = this.seed >>> 0;
    for (const ch of label) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
    return new Rng(h >>> 0);
  }
}

/** A random seed for a run that was given none. */
export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
