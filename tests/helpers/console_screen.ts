/**
 * What the console page (api/console_page.js) shows, read inside the page
 * by playwright: whether noVNC is connected, whether its canvas shows more
 * than one colour (the first frame of the guest's screen: `notBlankAt`), and the spread
 * of its grey values (0 for a blank screen). Each is a function to pass to
 * `page.evaluate` or `page.waitForFunction`: playwright evaluates a string
 * with eval, which the page's CSP forbids.
 *
 * @example
 * ```ts
 * await page.waitForFunction(notBlankAt, null, { timeout: 60_000, polling: 50 });
 * const v = await page.evaluate(canvasVariance);
 * ```
 */

/** Whether the page's script says it is connected. */
export function connected(): boolean {
  // deno-lint-ignore no-explicit-any
  return (globalThis as any).document.body.dataset.state === "connected";
}

/**
 * `Date.now()` in the page once the screen shows more than one colour,
 * else 0 (falsy: `waitForFunction` waits on, then answers the time).
 */
export function notBlankAt(): number {
  // deno-lint-ignore no-explicit-any
  const doc = (globalThis as any).document;
  const c = doc.querySelector("#console-screen canvas");
  if (!c || !c.width) return 0;
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  for (let i = 4; i < d.length; i += 4) {
    if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) {
      return Date.now();
    }
  }
  return 0;
}

/** Spread of the canvas's grey values: 0 for a blank screen. */
export function canvasVariance(): number {
  // deno-lint-ignore no-explicit-any
  const doc = (globalThis as any).document;
  const c = doc.querySelector("#console-screen canvas");
  if (!c || !c.width) return 0;
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0, sum = 0, sq = 0;
  for (let i = 0; i < d.length; i += 16) {
    const g = (d[i] + d[i + 1] + d[i + 2]) / 3;
    n++;
    sum += g;
    sq += g * g;
  }
  return sq / n - (sum / n) ** 2;
}
