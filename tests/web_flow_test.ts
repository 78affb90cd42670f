/**
 * A user's whole way through the web pages, in headless Chromium against
 * the real app, etcd and slapd (LDAP password and TOTP login) and a real
 * qemu worker (TCG) with host networking in a namespace
 * (tests/helpers/web_qemu.ts): log in, add an SSH key and a network,
 * upload the disk-booting test image from the page, create a VM with the
 * key and the network from the form, see the VM page the form leads to
 * and a VM list opened before (its row appears) turn running, with its
 * Console link, without loading either again (live.js), open the console
 * from the VM page and see the guest's screen, delete the VM and see its
 * row go and the list's "no VMs" line come back. Screenshots of every step go to
 * .state/screenshots/web_flow/.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Page } from "playwright-core";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import { noSanitize } from "./helpers/api.ts";
import {
  launchBrowser,
  screenshotDir,
  shot,
  type TestBrowser,
} from "./helpers/browser.ts";
import { waitFor } from "./helpers/cluster.ts";
import { canvasVariance } from "./helpers/console_screen.ts";
import { ensureDiskGuest } from "./helpers/disk_guest.ts";
import {
  createFromForm,
  markPage,
  notReloaded,
  openConsole,
  phaseSeen,
  recordPhases,
} from "./helpers/web_flow.ts";
import { withWebEnv } from "./helpers/web_env.ts";
import { qemuHost } from "./helpers/web_qemu.ts";

const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl web-flow";
/** Bytes per PUT of the upload. */
const CHUNK = 4 << 20;

/**
 * Uploads the file at `path` as image `name` from inside the logged-in
 * `page`, as a browser upload does: `POST /v1/images`, then `PUT
 * /v1/images/{name}/upload` in `Content-Range` chunks, each a `fetch` of
 * the page authenticated by its session cookie. (An images page with its
 * own upload script can take this function's place.)
 */
async function uploadFromPage(page: Page, name: string, path: string) {
  const made = await page.evaluate(async (name) => {
    const r = await fetch("/v1/images", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name }),
    });
    return { status: r.status, text: await r.text() };
  }, name);
  assert.equal(made.status, 201, made.text);
  const data = await Deno.readFile(path);
  for (let start = 0; start < data.length; start += CHUNK) {
    const part = data.subarray(start, start + CHUNK);
    const put = await page.evaluate(async ({ name, b64, start, total }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const r = await fetch(`/v1/images/${name}/upload`, {
        method: "PUT",
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `bytes ${start}-${
            start + bytes.length - 1
          }/${total}`,
        },
        body: bytes,
      });
      return {
        status: r.status,
        offset: r.headers.get("upload-offset"),
        text: await r.text(),
      };
    }, {
      name,
      b64: Buffer.from(part).toString("base64"),
      start,
      total: data.length,
    });
    assert.equal(put.status, 200, put.text);
    assert.equal(Number(put.offset), start + part.length);
  }
}

Deno.test({
  name:
    "web: log in, upload the disk image, create a VM with a key and a network from the form, see it turn running without a reload, see its guest's screen in the console, delete it and see its row go",
  ...noSanitize,
  fn: () =>
    withWebEnv(async (env) => {
      const disk = await ensureDiskGuest();
      const dir = await screenshotDir("web_flow");
      const { store } = env.cluster;
      let browser: TestBrowser | undefined;
      try {
        browser = await launchBrowser();
        // Generous: qemu under TCG on a loaded machine.
        browser.context.setDefaultTimeout(120_000);
        const page = await browser.page();
        page.on("dialog", (d) => d.accept());
        const csp: string[] = [];
        const onConsole = (m: { text: () => string }) => {
          if (/Content Security Policy/i.test(m.text())) csp.push(m.text());
        };
        page.on("console", onConsole);

        await env.login(page, "bob");
        assert.match(page.url(), /\/web\/vms$/);
        await shot(page, dir, "01-vm-list-empty");

        await page.getByRole("link", { name: "SSH keys" }).click();
        await page.getByLabel("Name").fill("k1");
        await page.getByLabel("Public key").fill(KEY);
        await page.getByRole("button", { name: "Add key" }).click();
        await page.getByText("SSH key added.").waitFor();
        await shot(page, dir, "02-key-added");

        await page.getByRole("link", { name: "Networks" }).click();
        await page.getByLabel("Name").fill("n1");
        await page.getByRole("button", { name: "Create network" }).click();
        await page.getByText("Network created.").waitFor();
        await shot(page, dir, "03-network-created");

        await uploadFromPage(page, "tinydisk", disk);
        const img = await waitFor(
          "tinydisk imported",
          async () => {
            const d = (await store.get(keys.image("bob/tinydisk"), Image))
              ?.value;
            return d && d.state !== "uploading" && d.state !== "importing" && d;
          },
          180_000,
          250,
        );
        assert.equal(img.state, "ready", img.reason ?? "");

        // A VM list opened before the VM exists: what it shows from now
        // on comes from live.js, without loading the page again.
        const list = await browser.page();
        list.on("console", onConsole);
        await list.goto(`${env.base}/web/vms`);
        await recordPhases(list);
        await markPage(list);
        await recordPhases(page);

        const { id } = await createFromForm(page, env.base, {
          name: "flow1",
          memory: 128,
          image: "tinydisk",
          keys: ["k1"],
          networks: [/^n1 \(/],
        });
        await markPage(page);
        await shot(page, dir, "04-vm-created");
        const vm = (await store.get(keys.vm(id), Vm))!.value;
        assert.equal(vm.owner, "bob");
        assert.equal(vm.imageRef, "bob/tinydisk");
        assert.deepEqual(vm.spec.keys, ["k1"]);
        assert.equal(vm.nics.length, 1);

        const row = list.locator(`tr[data-vm="${id}"]`);
        await row.waitFor({ timeout: 60_000 });
        const empty = list.getByText("You have no VMs yet.");
        await empty.waitFor({ state: "hidden" });
        await shot(list, dir, "05-list-row-appeared");
        // The VM page the form led to and the list, neither loaded again.
        await phaseSeen(page, id, "running", 300_000);
        await page.getByRole("link", { name: /^Console/ }).waitFor();
        // Its tasks finished on the page, each still with its badge.
        const tasks = page.locator('tbody[data-live-list="tasks"] tr');
        await page.locator('tr[data-task] [data-field="state"]', {
          hasText: /^\s*(queued|running)\s*$/,
        }).first().waitFor({ state: "detached", timeout: 60_000 });
        assert.equal(
          await tasks.locator(".badge.task-succeeded").count(),
          await tasks.count(),
        );
        assert.ok(await notReloaded(page), "the VM page was not reloaded");
        await shot(page, dir, "06-vm-page-running");
        await phaseSeen(list, id, "running", 60_000);
        await row.getByRole("link", { name: /^Console/ }).waitFor();
        assert.equal(await row.locator(".badge.phase-running").count(), 1);
        assert.equal(
          (await row.locator('[data-field="host"]').textContent())?.trim(),
          "h1",
        );
        assert.match(
          (await row.locator('[data-field="addresses"]').textContent()) ?? "",
          new RegExp(vm.nics[0].ipv6.replaceAll(".", "\\.")),
        );
        assert.ok(await notReloaded(list), "the list was not reloaded");
        await shot(list, dir, "07-list-running");

        // The guest's marker on its serial line: its screen shows it too.
        const running = (await store.get(keys.vm(id), Vm))!.value;
        const serial = String(running.status.handle!.serial);
        await waitFor(
          "the guest booted from its disk",
          async () => {
            const log = await Deno.readTextFile(serial).catch(() => "");
            return log.includes("UCLOUD-GUEST-READY");
          },
          300_000,
          500,
        );

        const { clickedAt, frameAt } = await openConsole(page, id, 120_000);
        console.log(`console: click to first frame ${frameAt - clickedAt} ms`);
        // The first frame may be drawn before the whole screen is.
        await page.waitForTimeout(2000);
        const screen = await shot(page, dir, "08-console");
        const variance = await page.evaluate(canvasVariance);
        console.log(`console ${screen}: grey variance ${variance.toFixed(1)}`);
        assert.ok(variance > 1, `blank screen (variance ${variance})`);

        await page.goto(`${env.base}/web/vms/${id}`);
        await page.getByRole("button", { name: "Delete" }).click();
        await page.getByText("Deleting the VM.").waitFor();
        await row.waitFor({ state: "detached", timeout: 180_000 });
        await empty.waitFor();
        assert.ok(await notReloaded(list), "the list was not reloaded");
        await shot(list, dir, "09-list-row-gone");
        assert.equal(await store.get(keys.vm(id), Vm), null);
        assert.deepEqual(csp, [], "no CSP violation on any page");
      } finally {
        await browser?.close();
      }
    }, { cluster: { leaseTtlSeconds: 3 }, hosts: qemuHost }),
});
