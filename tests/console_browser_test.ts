/**
 * The console page in headless Chromium (Debian's /usr/bin/chromium,
 * driven by playwright-core): the page asks for a ticket with the web
 * session, noVNC connects over the same-origin websocket under the /web
 * content security policy, and the canvas shows the guest's screen with
 * its marker (a screenshot in the state dir, checked not blank). Also the
 * URL `ucloud vm console` prints (ticket in the fragment) works in a
 * browser without a session. Prints the time from the page's start to
 * the first frame.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { MARKER, serialHasMarker } from "../drivers/qemu/_test_guest.ts";
import { noSanitize } from "./helpers/api.ts";
import { GUEST_CACHE, waitFor } from "./helpers/cluster.ts";
import { withConsoleEnv } from "./helpers/console_env.ts";
import {
  canvasVariance,
  connected,
  notBlankAt,
} from "./helpers/console_screen.ts";
import { withConsoleVm } from "./helpers/console_vm.ts";

/** Where screenshots go: the state dir, never the checkout. */
const SHOTS = `${GUEST_CACHE}/screenshots`;

/** Headless Chromium with the flags of the browser tests (a new profile). */
async function launch() {
  const profile = await Deno.makeTempDir({ prefix: "ucloud-chromium-" });
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    browser,
    close: async () => {
      await browser.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

Deno.test({
  name:
    "the console page shows the guest's screen in Chromium, with the session or the CLI's URL",
  ...noSanitize,
  fn: () =>
    withConsoleEnv({}, async (env) => {
      const carol = await env.cookie("carol");
      const id = await env.createVm("browser", { cookie: carol.cookie });
      await withConsoleVm(env, id, async ({ handle }) => {
        await waitFor("the guest marker", serialHasMarker(handle), 120_000);
        await Deno.mkdir(SHOTS, { recursive: true });
        const { browser, close } = await launch();
        try {
          const errors: string[] = [];
          const page = await browser.newPage();
          page.on("console", (m) => {
            if (m.type() === "error") errors.push(m.text());
          });
          await browser.addCookies([{
            name: "ucloud_session",
            value: carol.cookie.split("=")[1],
            url: env.origin,
          }]);
          const t0 = performance.now();
          await page.goto(`${env.origin}/web/console/${id}`);
          await page.waitForFunction(connected, null, { timeout: 60_000 });
          // The guest's marker is drawn once its display driver is up.
          await page.waitForFunction(notBlankAt, null, {
            timeout: 120_000,
            polling: 200,
          });
          const ms = Math.round(performance.now() - t0);
          console.log(`console: page open to first non-blank frame ${ms} ms`);
          const shot = `${SHOTS}/console-session.png`;
          await page.screenshot({ path: shot });
          console.log(`screenshot ${shot}`);
          const variance = await page.evaluate(canvasVariance) as number;
          console.log(`canvas grey variance ${variance.toFixed(1)}`);
          assert.ok(variance > 1, `blank screen (variance ${variance})`);
          assert.deepEqual(
            errors.filter((e) => /Content Security Policy|Refused/.test(e)),
            [],
          );

          // The CLI's URL in a browser with no session.
          const cli = await env.ticket(id, {
            authorization: await env.authorization("carol"),
          });
          const fresh = await launch();
          try {
            const p2 = await fresh.browser.newPage();
            await p2.goto(cli.body.url as string);
            await p2.waitForFunction(notBlankAt, null, {
              timeout: 60_000,
              polling: 200,
            });
            assert.equal(new URL(p2.url()).hash, "", "the ticket left the URL");
            await p2.screenshot({ path: `${SHOTS}/console-cli-url.png` });
          } finally {
            await fresh.close();
          }
          assert.ok(MARKER);
        } finally {
          await close();
        }
      });
    }),
});
