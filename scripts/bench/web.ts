/**
 * Bench phase `web`: the web pages in headless Chromium as a user sees
 * them (tests/helpers/web_env.ts: real slapd, etcd, the app over HTTP; the
 * steps of tests/helpers/web_flow.ts).
 *
 * - create: the time from clicking "Create VM" on the form to the VM page
 *   it leads to showing the new VM running (live.js, no reload), and to a
 *   VM list open in another tab showing it running, one VM after another
 *   (each deleted before the next), after one warm-up VM. The
 *   host is a sim worker, so this is the control plane, the event stream
 *   and the page, not a qemu boot (the `vm` phase has that).
 * - console: on a qemu host in a namespace (tests/helpers/web_qemu.ts,
 *   TCG), one tiny guest booted until its screen shows, then the time from
 *   clicking the VM page's Console link to noVNC connected and to the
 *   console's first non-blank frame, after one warm-up open.
 *
 * Usage: through `scripts/bench/main.ts --only=web [--web-vms=5]
 * [--web-consoles=3]`. What it starts is ended after each part, or by the
 * bench's cleanup on a signal or the watchdog.
 */
import type { Page } from "playwright-core";
import { keys } from "../../core/keys.ts";
import { Vm } from "../../core/schemas.ts";
import { launchBrowser } from "../../tests/helpers/browser.ts";
import { waitFor } from "../../tests/helpers/cluster.ts";
import {
  startWebEnv,
  type WebEnvOptions,
  type WebTestEnv,
} from "../../tests/helpers/web_env.ts";
import {
  createFromForm,
  openConsole,
  phaseSeen,
  recordPhases,
} from "../../tests/helpers/web_flow.ts";
import { qemuHost } from "../../tests/helpers/web_qemu.ts";
import {
  type Cleanup,
  progress,
  type Row,
  summarize,
  type Summary,
} from "./util.ts";

/** How long one sim VM may take from the click to running on the page. */
const SIM_TIMEOUT_MS = 60_000;
/** How long the tiny guest may take to boot and show its screen (TCG). */
const BOOT_TIMEOUT_MS = 300_000;

/** Result of {@linkcode benchWeb}. */
export interface WebResult {
  vms: number;
  /** Click on "Create VM" to the VM page it leads to showing running. */
  clickToPageRunningMs: Summary;
  /** Click on "Create VM" to the VM list in another tab showing it running. */
  clickToListRunningMs: Summary;
  consoles: number;
  /** Click on "Console" to noVNC connected. */
  clickToConnectedMs: Summary;
  /** Click on "Console" to the first non-blank frame. */
  clickToFrameMs: Summary;
}

/**
 * Starts a web environment (`opts`), opens a browser, logs bob in and
 * runs `f` with two tabs: the one logged in and a VM list. Both are ended
 * after, or by `cleanup` on a signal.
 */
async function withTabs<T>(
  cleanup: Cleanup,
  opts: WebEnvOptions,
  f: (env: WebTestEnv, page: Page, list: Page) => Promise<T>,
): Promise<T> {
  const env = await startWebEnv(opts);
  cleanup.add("web environment", env.close);
  let browser;
  try {
    // On a signal the bench's cleanup closes it (and the rest), not playwright.
    browser = await launchBrowser({ signals: false });
    cleanup.add("browser", browser.close);
    const page = await browser.page();
    await env.login(page, "bob");
    const list = await browser.page();
    await list.goto(`${env.base}/web/vms`);
    await recordPhases(list);
    await recordPhases(page);
    return await f(env, page, list);
  } catch (err) {
    await env.printState();
    throw err;
  } finally {
    await browser?.close();
    await env.close();
  }
}

/** Times `vms` creates from the form (plus a warm-up) on a sim host. */
async function createTimes(vms: number, cleanup: Cleanup) {
  const onPage: number[] = [];
  const onList: number[] = [];
  await withTabs(cleanup, {}, async (env, page, list) => {
    for (let i = 0; i <= vms; i++) {
      const { id, clickedAt } = await createFromForm(page, env.base, {
        name: `web${i}`,
        memory: 128,
      });
      const pageAt = await phaseSeen(page, id, "running", SIM_TIMEOUT_MS);
      const listAt = await phaseSeen(list, id, "running", SIM_TIMEOUT_MS);
      // Deleted before the next: the sim host has room for 4.
      const del = await page.request.delete(`${env.base}/v1/vms/${id}`);
      if (del.status() !== 202) {
        throw new Error(`Cannot delete VM ${id}: ${await del.text()}`);
      }
      await list.locator(`tr[data-vm="${id}"]`).waitFor({
        state: "detached",
        timeout: SIM_TIMEOUT_MS,
      });
      if (i === 0) continue;
      onPage.push(pageAt - clickedAt);
      onList.push(listAt - clickedAt);
      progress(
        `web: VM ${i}/${vms} running on its page ${pageAt - clickedAt} ms ` +
          `after the click, on the list ${listAt - clickedAt} ms`,
      );
    }
  });
  return { onPage, onList };
}

/** Times `opens` console opens (plus a warm-up) of a tiny guest in qemu. */
async function consoleTimes(opens: number, cleanup: Cleanup) {
  const connected: number[] = [];
  const frame: number[] = [];
  await withTabs(
    cleanup,
    { cluster: { leaseTtlSeconds: 3 }, hosts: qemuHost },
    async (env, page) => {
      const { id } = await createFromForm(page, env.base, {
        name: "console",
        memory: 128,
      });
      const store = env.cluster.store;
      const vm = await waitFor(
        "the console VM running",
        async () => {
          const v = (await store.get(keys.vm(id), Vm))?.value;
          return v?.status.phase === "running" && v;
        },
        BOOT_TIMEOUT_MS,
        200,
      );
      const serial = String(vm.status.handle!.serial);
      await waitFor(
        "the guest's marker",
        async () => {
          const log = await Deno.readTextFile(serial).catch(() => "");
          return log.includes("UCLOUD-GUEST-READY");
        },
        BOOT_TIMEOUT_MS,
        200,
      );
      for (let i = 0; i <= opens; i++) {
        await page.goto(`${env.base}/web/vms/${id}`);
        // The warm-up also waits for the guest's display driver.
        const t = await openConsole(
          page,
          id,
          i === 0 ? BOOT_TIMEOUT_MS : 60_000,
        );
        if (i === 0) continue;
        connected.push(t.connectedAt - t.clickedAt);
        frame.push(t.frameAt - t.clickedAt);
        progress(
          `web: console ${i}/${opens} first frame ${
            t.frameAt - t.clickedAt
          } ms after the click`,
        );
      }
    },
  );
  return { connected, frame };
}

/** Runs the phase: `vms` creates on a sim host, `consoles` console opens. */
export async function benchWeb(
  { vms, consoles }: { vms: number; consoles: number },
  cleanup: Cleanup,
): Promise<WebResult> {
  progress(`web: ${vms} VMs created from the form (sim host), list in a tab`);
  const c = await createTimes(vms, cleanup);
  progress(`web: ${consoles} console opens of a qemu guest`);
  const k = await consoleTimes(consoles, cleanup);
  return {
    vms,
    clickToPageRunningMs: summarize(c.onPage),
    clickToListRunningMs: summarize(c.onList),
    consoles,
    clickToConnectedMs: summarize(k.connected),
    clickToFrameMs: summarize(k.frame),
  };
}

/** The table rows of {@linkcode benchWeb}'s result. */
export function webRows(r: WebResult): Row[] {
  return [
    {
      name: "web: click create to the page showing running, p50",
      value: r.clickToPageRunningMs.p50,
      unit: "ms",
      notes: `max ${r.clickToPageRunningMs.max} ms; on a VM list in ` +
        `another tab p50 ${r.clickToListRunningMs.p50} ms; ${r.vms} VMs ` +
        `one at a time, the VM page the form leads to (live.js); sim ` +
        `host: control plane, events and page, no qemu boot`,
    },
    {
      name: "web: console click to first frame, p50",
      value: r.clickToFrameMs.p50,
      unit: "ms",
      notes: `max ${r.clickToFrameMs.max} ms, noVNC connected p50 ` +
        `${r.clickToConnectedMs.p50} ms; ${r.consoles} opens of a booted ` +
        `qemu guest (TCG) from the VM page's Console link`,
    },
  ];
}
