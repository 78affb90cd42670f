/**
 * Steps of a user's way through the web pages in a playwright page, shared
 * by tests/web_flow_test.ts and the bench's `web` phase
 * (scripts/bench/web.ts): fill and send the create form (the click's time
 * taken in the page), follow when each VM of a live page (a VM list or VM
 * page, api/web/assets/live.js) first shows each phase and whether the
 * page was loaded again, and open the console
 * from the VM page until its first non-blank frame. Times are `Date.now()`
 * in the page (the same clock as the test's).
 *
 * @example
 * ```ts
 * await list.goto(`${base}/web/vms`);
 * await recordPhases(list);
 * await recordPhases(page);
 * const { id, clickedAt } = await createFromForm(page, base, { name: "a" });
 * const runningAt = await phaseSeen(page, id, "running", 60_000);
 * ```
 */
import type { Page } from "playwright-core";
import { notBlankAt } from "./console_screen.ts";

/** What the create form is filled with; absent fields keep its defaults. */
export interface CreateFields {
  name: string;
  memory?: number;
  image?: string;
  /** Only these keys ("Only the keys checked below"); absent: all. */
  keys?: string[];
  /** Labels of the network checkboxes to check (a string: exact). */
  networks?: (string | RegExp)[];
  userData?: string;
}

/**
 * In the page: notes when the element of `selector` is clicked (in the
 * tab's session storage, which the page the click leads to still has).
 */
function noteClick(selector: string): void {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  g.document.querySelector(selector).addEventListener("click", () => {
    g.sessionStorage.setItem("ucloudClickedAt", String(Date.now()));
  }, { capture: true });
}

/** In the page: the time `noteClick` noted. */
function clickedAt(): number {
  // deno-lint-ignore no-explicit-any
  return Number((globalThis as any).sessionStorage.getItem("ucloudClickedAt"));
}

/**
 * Opens the create form in `page`, fills it, clicks "Create VM" and waits
 * for the VM page it leads to; returns the new VM's id and the click's
 * time.
 */
export async function createFromForm(
  page: Page,
  base: string,
  f: CreateFields,
): Promise<{ id: string; clickedAt: number }> {
  await page.goto(`${base}/web/vms/new`);
  await page.getByLabel("Name", { exact: true }).fill(f.name);
  if (f.memory) await page.getByLabel("Memory (MiB)").fill(String(f.memory));
  if (f.image) await page.getByLabel("Image").selectOption(f.image);
  if (f.keys) {
    await page.getByLabel("Only the keys checked below").check();
    for (const k of f.keys) await page.getByLabel(k, { exact: true }).check();
  }
  for (const n of f.networks ?? []) {
    await page.getByLabel(n, { exact: typeof n === "string" }).check();
  }
  if (f.userData) await page.getByLabel("User data").fill(f.userData);
  await page.evaluate(
    noteClick,
    'form[action="/web/vms"] button[type="submit"]',
  );
  await Promise.all([
    page.waitForURL(/\/web\/vms\/[^/?]+\?done=created$/, { timeout: 60_000 }),
    page.getByRole("button", { name: "Create VM" }).click(),
  ]);
  const id = page.url().match(/\/web\/vms\/([^/?]+)\?done=created$/)![1];
  return { id, clickedAt: await page.evaluate(clickedAt) };
}

/**
 * In the page: from now on (from its start, as an init script), the first
 * time each VM element (`[data-vm]`: a list's row, the VM page's state)
 * shows each phase, in `globalThis.ucloudPhases[id][phase]`.
 */
function watchPhases(): void {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (g.ucloudPhases) return;
  const seen: Record<string, Record<string, number>> = {};
  g.ucloudPhases = seen;
  const scan = () => {
    const now = Date.now();
    for (const el of g.document.querySelectorAll("[data-vm]")) {
      const phase = el.querySelector('[data-field="phase"]')?.textContent
        ?.trim();
      if (!phase) continue;
      seen[el.dataset.vm] ??= {};
      seen[el.dataset.vm][phase] ??= now;
    }
  };
  new g.MutationObserver(scan).observe(g.document, {
    subtree: true,
    childList: true,
    characterData: true,
  });
  scan();
}

/** In the page: when VM `id` first showed `phase`, else 0. */
function seenAt([id, phase]: string[]): number {
  // deno-lint-ignore no-explicit-any
  return (globalThis as any).ucloudPhases?.[id]?.[phase] ?? 0;
}

/**
 * Notes the phases the VMs in `page` show (see `phaseSeen`), in the page
 * loaded now and in every page it loads later, from their start.
 */
export async function recordPhases(page: Page): Promise<void> {
  await page.addInitScript(watchPhases);
  await page.evaluate(watchPhases);
}

/** Marks the document `page` shows now (see `notReloaded`). */
export async function markPage(page: Page): Promise<void> {
  // deno-lint-ignore no-explicit-any
  await page.evaluate(() => (globalThis as any).ucloudMark = true);
}

/** Whether `page` still shows the document `markPage` marked. */
export async function notReloaded(page: Page): Promise<boolean> {
  return await page.evaluate(() =>
    // deno-lint-ignore no-explicit-any
    (globalThis as any).ucloudMark === true
  );
}

/**
 * Waits until VM `id` in `page` (after `recordPhases`) showed `phase`;
 * returns when it first did.
 */
export async function phaseSeen(
  page: Page,
  id: string,
  phase: string,
  timeoutMs: number,
): Promise<number> {
  const h = await page.waitForFunction(seenAt, [id, phase], {
    timeout: timeoutMs,
    polling: 100,
  });
  return await h.jsonValue() as number;
}

/** In the console page: when noVNC connected (page clock to wall clock). */
function connectedAt(): number {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  return g.performance.timeOrigin + Number(g.document.body.dataset.connectedAt);
}

/** When a console was asked for and shown (`Date.now()` in the page). */
export interface ConsoleTimes {
  clickedAt: number;
  /** noVNC's `connect` event: the websocket and the RFB handshake are done. */
  connectedAt: number;
  /** The canvas first showed more than one colour (polled every 20 ms). */
  frameAt: number;
}

/**
 * On VM `id`'s page (loaded in `page`), clicks its Console link and waits
 * for the console page's first non-blank frame.
 */
export async function openConsole(
  page: Page,
  id: string,
  timeoutMs: number,
): Promise<ConsoleTimes> {
  const link = page.getByRole("link", { name: /^Console/ });
  await link.waitFor();
  await page.evaluate(noteClick, `a[href="/web/console/${id}"]`);
  await Promise.all([
    page.waitForURL(new RegExp(`/web/console/${id}$`)),
    link.click(),
  ]);
  const h = await page.waitForFunction(notBlankAt, null, {
    timeout: timeoutMs,
    polling: 20,
  });
  const frameAt = await h.jsonValue() as number;
  return {
    clickedAt: await page.evaluate(clickedAt),
    connectedAt: Math.round(await page.evaluate(connectedAt)),
    frameAt,
  };
}
