/**
 * Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core
 * for the web page tests: launched with the flags every browser test uses
 * and a new empty profile (`--user-data-dir`), removed again by `close()`.
 * Screenshots go to the state directory (`.state/screenshots/<suite>/`,
 * not in git) so a person can look at them after the run; `axe()` runs
 * axe-core inside a page and returns its violations.
 *
 * @example
 * ```ts
 * const b = await launchBrowser();
 * try {
 *   const page = await b.page();
 *   await page.goto(url);
 * } finally {
 *   await b.close();
 * }
 * ```
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { ROOT } from "./cluster.ts";

/** The browser of the tests: Debian's package. */
export const CHROMIUM = Deno.env.get("UCLOUD_CHROMIUM") ?? "/usr/bin/chromium";

/** The flags of every browser test (besides `--user-data-dir`). */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A running browser with its own profile. */
export interface TestBrowser {
  context: BrowserContext;
  /** A new tab (width 1024 unless given). */
  page: (viewport?: { width: number; height: number }) => Promise<Page>;
  /** Closes the browser and removes its profile. */
  close: () => Promise<void>;
}

/**
 * Launches Chromium with a fresh profile. `signals: false` leaves SIGINT,
 * SIGTERM and SIGHUP to the caller (the bench's cleanup); by default
 * playwright closes the browser on them and exits the process.
 */
export async function launchBrowser(
  { signals = true }: { signals?: boolean } = {},
): Promise<TestBrowser> {
  const profile = await Deno.makeTempDir({ prefix: "ucloud-chromium-" });
  let context: BrowserContext;
  try {
    // A persistent context: the only way playwright passes our own
    // --user-data-dir (it refuses the flag in `args`).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1024, height: 768 },
      handleSIGINT: signals,
      handleSIGTERM: signals,
      handleSIGHUP: signals,
    });
  } catch (err) {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
    throw err;
  }
  return {
    context,
    page: async (viewport) => {
      const p = await context.newPage();
      if (viewport) await p.setViewportSize(viewport);
      return p;
    },
    close: async () => {
      await context.close().catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

/** Where the screenshots of `suite` go (created; kept after the run). */
export async function screenshotDir(suite: string): Promise<string> {
  const dir = `${ROOT}.state/screenshots/${suite}`;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

/** Takes a full-page screenshot `<n>-<name>.png` into `dir`; its path. */
export async function shot(
  page: Page,
  dir: string,
  name: string,
): Promise<string> {
  const path = `${dir}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** One axe-core finding. */
export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; html: string }[];
}

let axeSource: string | undefined;

/**
 * Runs axe-core in `page` (its source injected as a script, which the CSP
 * of the page does not stop: playwright adds it through the DevTools
 * protocol) and returns the violations of impact `serious` or `critical`.
 */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  axeSource ??= (await import("axe-core")).default.source;
  await page.evaluate(axeSource);
  const violations = await page.evaluate(
    `axe.run(document, { runOnly: { type: "tag", values: ` +
      `["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } })` +
      `.then((r) => r.violations)`,
  ) as AxeViolation[];
  return violations.filter((v) =>
    v.impact === "serious" || v.impact === "critical"
  ).map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => ({ target: n.target, html: n.html })),
  }));
}
