/**
 * The images page in headless Chromium against the real app, etcd, slapd
 * and a sim worker that imports: a qcow2 file of a few MiB uploaded from
 * the browser in chunks (upload.js, `PUT /v1/images/{name}/upload`) with
 * one chunk failing after the server took it, resumed from the server's
 * offset; an upload cut off by leaving the page, resumed after choosing
 * the file again; the progress bar at 100 % and the image turning ready
 * without a reload, its SHA-256 the file's; an image created from a URL
 * the test serves; a delete; another user's private image neither shown
 * nor deletable, a public one shown without a delete button and its delete
 * refused. At 375 px the page does not scroll sideways; axe-core finds no
 * serious violation. Screenshots: .state/screenshots/web_images/.
 */
import assert from "node:assert/strict";
import type { Page, Route } from "playwright-core";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { createImage, publishImage } from "../resources/images/mod.ts";
import { noSanitize } from "./helpers/api.ts";
import { waitFor } from "./helpers/cluster.ts";
import {
  launchBrowser,
  screenshotDir,
  seriousViolations,
  shot,
  type TestBrowser,
} from "./helpers/browser.ts";
import { makeQcow2 } from "./helpers/image_env.ts";
import { withWebEnv } from "./helpers/web_env.ts";

/** A qcow2 file of random data (`mib` MiB of it); its path and SHA-256. */
async function randomQcow2(dir: string, name: string, mib: number) {
  const raw = `${dir}/${name}.raw`;
  const data = new Uint8Array(mib * 1024 * 1024);
  for (let i = 0; i < data.length; i += 65536) {
    crypto.getRandomValues(data.subarray(i, i + 65536));
  }
  await Deno.writeFile(raw, data);
  const path = `${dir}/${name}.qcow2`;
  const out = await new Deno.Command("qemu-img", {
    args: ["convert", "-q", "-f", "raw", "-O", "qcow2", raw, path],
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  await Deno.remove(raw);
  return { path, sha256: await sha256(await Deno.readFile(path)) };
}

async function sha256(b: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", b));
  return [...d].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** The start byte of a PUT's Content-Range. */
const startOf = (route: Route) =>
  Number(/^bytes (\d+)-/.exec(route.request().headers()["content-range"])![1]);

/** The row of image `name` and the text of its state cell. */
async function stateText(page: Page, name: string): Promise<string> {
  const cell = page.locator(`tr[data-image="${name}"] td[data-field="state"]`);
  return (await cell.count()) ? (await cell.innerText()).trim() : "";
}

/** Waits (no reload) until image `name` shows ready in the list. */
async function readyInList(page: Page, name: string) {
  await waitFor(
    `${name} ready in the list`,
    async () => /^ready/.test(await stateText(page, name)),
    90_000,
    250,
  );
}

/** Chooses `file` for upload `name` and presses Upload. */
async function startUpload(page: Page, name: string, file: string) {
  const form = page.locator("#upload-form");
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("File (qcow2)").setInputFiles(file);
  await form.getByRole("button", { name: "Upload" }).click();
}

/** Waits for the bar at 100 % with its label saying so. */
async function uploaded(page: Page) {
  await page.getByText("100 % uploaded").waitFor({ timeout: 90_000 });
  assert.equal(
    await page.locator("#up-progress").evaluate((e) =>
      (e as unknown as { value: number }).value
    ),
    100,
  );
  assert.equal(
    await page.getByLabel("Upload progress").evaluate((e) => e.id),
    "up-progress",
  );
}

Deno.test({
  name:
    "web images: upload from the browser with a failed chunk and a reload resumed from the server's offset, create from a URL, delete; others' images not shown or deletable",
  ...noSanitize,
  fn: () =>
    withWebEnv(async (env) => {
      const dir = await screenshotDir("web_images");
      const tmp = await Deno.makeTempDir({ prefix: "ucloud-web-img-" });
      const small = await makeQcow2(`${tmp}/small.qcow2`, "64M", 0x5a);
      const served = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        async (req) =>
          new URL(req.url).pathname === "/small.qcow2"
            ? new Response(await Deno.readFile(small))
            : new Response("no", { status: 404 }),
      );
      const deps = { store: env.cluster.store, config: env.config };
      const doc = async (ref: string) =>
        (await env.cluster.store.get(keys.image(ref), Image))?.value;
      let browser: TestBrowser | undefined;
      try {
        // Carol's private image and alice's public one, before bob looks.
        await createImage(deps, { name: "carol", admin: false }, {
          name: "carol-secret",
        });
        const alice = { name: "alice", admin: true };
        await createImage(deps, alice, { name: "pub1" });
        await publishImage(env.cluster.store, alice, "pub1", true);
        const one = await randomQcow2(tmp, "one", 4);
        const two = await randomQcow2(tmp, "two", 3);

        browser = await launchBrowser();
        const page = await browser.page();
        page.on("dialog", (d) => d.accept());
        const csp: string[] = [];
        page.on("console", (m) => {
          if (/Content Security Policy/i.test(m.text())) csp.push(m.text());
        });
        await env.login(page, "bob");
        await page.getByRole("link", { name: "Images" }).click();
        await page.getByRole("heading", { name: "Images" }).waitFor();
        await shot(page, dir, "01-images");
        assert.equal(
          await page.locator('tr[data-image="pub1"] th').innerText(),
          "pub1 (alice)",
        );
        assert.equal(
          await page.locator('tr[data-image="pub1"] button').count(),
          0,
          "no delete button on alice's public image",
        );
        assert.doesNotMatch(await page.content(), /carol/);
        const v = await seriousViolations(page);
        assert.deepEqual(v, [], JSON.stringify(v, null, 2));

        // Upload one; its fourth chunk reaches the server, but the browser
        // sees the connection fail: upload.js asks the offset and goes on
        // from there (not from the chunk it thought lost).
        const starts: number[] = [];
        let puts = 0;
        let gets = 0;
        await page.route("**/v1/images/one/upload", async (route) => {
          if (route.request().method() !== "PUT") {
            gets++;
            return await route.continue();
          }
          starts.push(startOf(route));
          if (++puts === 4) {
            const r = await route.fetch();
            assert.equal(r.status(), 200, await r.text());
            return await route.abort("connectionreset");
          }
          await route.continue();
        });
        await startUpload(page, "one", one.path);
        await uploaded(page);
        await shot(page, dir, "02-upload-100");
        await page.unrouteAll({ behavior: "ignoreErrors" });
        const chunk = starts[1];
        assert.ok(chunk >= 256 * 1024, `chunk ${chunk}`);
        assert.equal(starts[3], 3 * chunk);
        assert.equal(starts[4], 4 * chunk, `resumed at ${starts}`);
        assert.ok(gets >= 2, "asked the offset before and after the failure");
        assert.deepEqual(
          starts,
          starts.map((_, i) => i * chunk),
          "each chunk sent once, in order",
        );
        await readyInList(page, "one");
        await shot(page, dir, "03-upload-ready");
        const api = await (await page.request.get(`${env.base}/v1/images/one`))
          .json();
        assert.equal(api.state, "ready");
        assert.equal(
          api.sha256,
          one.sha256,
          "the image's bytes are the file's",
        );

        // The same name again: the API's refusal, said under the form.
        await startUpload(page, "one", two.path);
        await page.getByText("image one exists and is ready").waitFor();
        await shot(page, dir, "03b-upload-refused");
        assert.equal(await page.locator("#up-progress").isVisible(), false);
        assert.equal((await doc("bob/one"))?.sha256, one.sha256);

        // Upload two, cut off by leaving the page after two chunks (the
        // third never reaches the server).
        const cut: number[] = [];
        await page.route("**/v1/images/two/upload", async (route) => {
          if (route.request().method() !== "PUT") return await route.continue();
          cut.push(startOf(route));
          // The third stays unanswered until the page goes away.
          if (cut.length === 3) return;
          await route.continue();
        });
        await startUpload(page, "two", two.path);
        await waitFor("the third chunk sent", () => cut.length === 3, 60_000);
        await page.goto(`${env.base}/web/vms`);
        await page.unrouteAll({ behavior: "ignoreErrors" });
        await page.goto(`${env.base}/web/images`);
        assert.match(await stateText(page, "two"), /^uploading/);
        const received = (await doc("bob/two"))?.state;
        assert.equal(received, "uploading");
        await page.getByRole("link", { name: "Resume upload of two" }).click();
        assert.equal(
          await page.locator("#upload-form").getByLabel("Name").inputValue(),
          "two",
        );
        await page.getByText("Choose the same file again").waitFor();
        await shot(page, dir, "04-resume-after-reload");
        const again: number[] = [];
        page.on("request", (r) => {
          if (
            r.method() === "PUT" && r.url().endsWith("/v1/images/two/upload")
          ) {
            again.push(
              Number(/^bytes (\d+)-/.exec(r.headers()["content-range"])![1]),
            );
          }
        });
        await startUpload(page, "two", two.path);
        await uploaded(page);
        assert.equal(again[0], 2 * cut[1], `resumed at the server's offset`);
        await readyInList(page, "two");
        assert.equal((await doc("bob/two"))?.sha256, two.sha256);

        // From a URL the test serves.
        const url = `http://127.0.0.1:${served.addr.port}/small.qcow2`;
        const byUrl = page.locator("form", { hasText: "Create from URL" });
        await byUrl.getByLabel("Name").fill("fromurl");
        await byUrl.getByLabel("URL").fill(url);
        await byUrl.getByRole("button", { name: "Create from URL" }).click();
        await page.getByText("Image created: a host fetches").waitFor();
        await shot(page, dir, "05-from-url");
        await readyInList(page, "fromurl");
        assert.equal(
          (await doc("bob/fromurl"))?.sha256,
          await sha256(await Deno.readFile(small)),
        );
        await shot(page, dir, "06-from-url-ready");

        // Delete it.
        await page.getByRole("button", { name: "Delete fromurl" }).click();
        await page.getByText("Image deleted.").waitFor();
        assert.equal(await doc("bob/fromurl"), undefined);
        assert.equal(await stateText(page, "fromurl"), "");

        // Others' images: carol's is not found, alice's is not bob's.
        const csrf = await page.locator('input[name="_csrf"]').first()
          .inputValue();
        const post = (path: string, owner: string) =>
          page.request.post(`${env.base}${path}`, {
            form: { _csrf: csrf, owner },
            maxRedirects: 0,
          });
        const r1 = await post("/web/images/carol-secret/delete", "carol");
        assert.equal(r1.status(), 404);
        // The same answer as for an image that does not exist: it only
        // repeats the name bob sent.
        const main = (html: string) => /<main[^]*<\/main>/.exec(html)![0];
        const r0 = await post("/web/images/nothere/delete", "carol");
        assert.equal(r0.status(), 404);
        assert.equal(
          main(await r1.text()),
          main(await r0.text()).replace("nothere", "carol-secret"),
        );
        const r2 = await post("/web/images/pub1/delete", "alice");
        assert.equal(r2.status(), 403);
        assert.equal((await doc("carol/carol-secret"))?.state, "uploading");
        assert.equal((await doc("alice/pub1"))?.public, true);

        // A phone's width.
        await page.setViewportSize({ width: 375, height: 800 });
        await page.goto(`${env.base}/web/images`);
        await shot(page, dir, "07-images-375px");
        const w = await page.evaluate(
          "document.documentElement.scrollWidth",
        ) as number;
        assert.ok(w <= 375, `scrollWidth ${w}`);
        assert.deepEqual(csp, [], "no CSP violation");
      } finally {
        await browser?.close();
        await served.shutdown();
        await Deno.remove(tmp, { recursive: true });
      }
    }),
});
