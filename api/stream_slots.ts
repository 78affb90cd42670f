/**
 * Caps on long-lived requests (event streams): at most `perUser` open at
 * once for one user and `total` for the process. `take()` gives a place
 * and a function that frees it (once, however often called), or the
 * reason there is none.
 *
 * @example
 * ```ts
 * const slots = new StreamSlots({ perUser: 8, total: 2000 });
 * const got = slots.take("bob");
 * if ("refused" in got) return tooMany(got.refused);
 * try { ... } finally { got.release(); }
 * ```
 */

/** Which cap refused a place. */
export type SlotRefusal = "user" | "total";

export class StreamSlots {
  readonly #byUser = new Map<string, number>();
  #total = 0;

  constructor(readonly caps: { perUser: number; total: number }) {}

  /** Places held now, in all or by `user`. */
  held(user?: string): number {
    return user === undefined ? this.#total : this.#byUser.get(user) ?? 0;
  }

  /** A place for `user`, or which cap is reached. */
  take(user: string): { release: () => void } | { refused: SlotRefusal } {
    const mine = this.held(user);
    if (mine >= this.caps.perUser) return { refused: "user" };
    if (this.#total >= this.caps.total) return { refused: "total" };
    this.#byUser.set(user, mine + 1);
    this.#total++;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.#total--;
        const left = this.held(user) - 1;
        if (left > 0) this.#byUser.set(user, left);
        else this.#byUser.delete(user);
      },
    };
  }
}
