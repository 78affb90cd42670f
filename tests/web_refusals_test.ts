/**
 * What the web pages refuse, in headless Chromium against the real app,
 * etcd, slapd and a sim worker, each time checking that etcd holds
 * exactly what it held before: a wrong password, a wrong TOTP token, an
 * expired session (redirected to the login with a message), another
 * user's VM id in a URL (404, nothing of it shown, its actions refused
 * too), a POST with a wrong, another session's or no CSRF token (403),
 * a login POST without its token, and a create form with a bad field (the
 * API's 400 message on the field). Also: the security headers and the
 * session cookie's attributes, and the fragment contract of a VM row.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import { createVm } from "../resources/vms/mod.ts";
import { CSP } from "../api/web/headers.ts";
import { noSanitize } from "./helpers/api.ts";
import { waitFor } from "./helpers/cluster.ts";
import {
  launchBrowser,
  screenshotDir,
  shot,
  type TestBrowser,
} from "./helpers/browser.ts";
import { withWebEnv } from "./helpers/web_env.ts";

/** Keys whose values differ between two dumps (added, removed, changed). */
function changed(a: Record<string, string>, b: Record<string, string>) {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .filter((k) => a[k] !== b[k]);
}

/** The session cookie of the page's context, if any. */
async function sessionCookie(page: Page) {
  return (await page.context().cookies()).find((c) =>
    c.name === "ucloud_session"
  );
}

Deno.test({
  name:
    "web: wrong password, wrong TOTP, an expired session, another user's VM and bad CSRF tokens are refused and change nothing in etcd",
  ...noSanitize,
  fn: (t) =>
    withWebEnv(async (env) => {
      const dir = await screenshotDir("web_refusals");
      const step = (name: string, fn: () => Promise<void>) =>
        t.step({ name, ...noSanitize, fn });
      /** Runs `fn` and asserts etcd is the same after it. */
      const unchanged = async (what: string, fn: () => Promise<void>) => {
        const before = await env.snapshot();
        await fn();
        const diff = changed(before, await env.snapshot());
        assert.deepEqual(diff, [], `${what} changed etcd`);
      };
      // Carol's VM, running before anything is compared.
      const deps = { store: env.cluster.store, config: env.cluster.config };
      const carols = await createVm(deps, { name: "carol", admin: false }, {
        name: "secret-carol-vm",
        cpus: 1,
        memory: 128,
        image: "tiny",
      });
      const carolVm = carols.vm.id;
      await waitFor("carol's VM running", async () =>
        (await env.cluster.store.get(keys.vm(carolVm), Vm))?.value.status
          .phase === "running", 60_000);
      await waitFor("its tasks done", async () => {
        const d = await env.snapshot();
        return Object.keys(d).every((k) =>
          !k.startsWith("queue/")
        );
      }, 30_000);

      let browser: TestBrowser | undefined;
      try {
        browser = await launchBrowser();
        const page = await browser.page();

        await step("a wrong password is refused", async () => {
          await unchanged("a wrong password", async () => {
            await env.login(page, "carol", { password: "bob-pw" });
          });
          assert.match(page.url(), /\/web\/login$/);
          await page.getByText("Invalid name, password or token").waitFor();
          assert.equal(await sessionCookie(page), undefined);
          await shot(page, dir, "01-wrong-password");
        });

        await step("a wrong TOTP token is refused", async () => {
          const good = await env.token("carol");
          const wrong = String((Number(good) + 1) % 1_000_000).padStart(6, "0");
          await unchanged("a wrong TOTP token", async () => {
            await env.login(page, "carol", { token: wrong });
          });
          await page.getByText("Invalid name, password or token").waitFor();
          assert.equal(await sessionCookie(page), undefined);
          await shot(page, dir, "02-wrong-totp");
        });

        await step("a login POST without its form token is 403", async () => {
          await unchanged("a login without token", async () => {
            const r = await page.request.post(`${env.base}/web/login`, {
              form: { name: "bob", password: "bob-pw", token: "123456" },
            });
            assert.equal(r.status(), 403);
          });
        });

        await step("the headers and the session cookie", async () => {
          const r = await page.request.get(`${env.base}/web/login`);
          assert.equal(r.headers()["content-security-policy"], CSP);
          assert.equal(r.headers()["x-content-type-options"], "nosniff");
          assert.equal(r.headers()["referrer-policy"], "same-origin");
          const css = await page.request.get(
            `${env.base}/web/assets/style.css`,
          );
          assert.equal(css.status(), 200);
          assert.match(css.headers()["content-type"], /^text\/css/);
          assert.equal(css.headers()["content-security-policy"], CSP);
          await env.login(page, "bob");
          assert.match(page.url(), /\/web\/vms$/);
          const c = await sessionCookie(page);
          assert.equal(c?.sameSite, "Strict");
          assert.equal(c?.httpOnly, true);
          assert.equal(c?.path, "/");
          // An unknown page is the web's own 404 page, with the same headers.
          const nope = await page.request.get(`${env.base}/web/nope`);
          assert.equal(nope.status(), 404);
          assert.match(nope.headers()["content-type"], /^text\/html/);
          assert.equal(nope.headers()["content-security-policy"], CSP);
          const root = await page.request.get(`${env.base}/web/`, {
            maxRedirects: 0,
          });
          assert.equal(root.headers()["location"], "/web/vms");
        });

        await step("another user's VM id shows nothing of it", async () => {
          await unchanged("another user's VM", async () => {
            const res = await page.goto(`${env.base}/web/vms/${carolVm}`);
            assert.equal(res?.status(), 404);
            const html = await page.content();
            assert.doesNotMatch(html, /secret-carol-vm|carol/);
            await shot(page, dir, "03-other-users-vm");
            const frag = await page.request.get(
              `${env.base}/web/fragments/vm-row/${carolVm}`,
            );
            assert.equal(frag.status(), 404);
            assert.equal(await frag.text(), "");
            // Its actions too, with bob's own valid form token.
            await page.goto(`${env.base}/web/keys`);
            const csrf = await page.locator('input[name="_csrf"]').first()
              .getAttribute("value");
            for (const action of ["stop", "delete", "start"]) {
              const r = await page.request.post(
                `${env.base}/web/vms/${carolVm}/${action}`,
                { form: { _csrf: csrf! } },
              );
              assert.equal(r.status(), 404, action);
              assert.doesNotMatch(await r.text(), /secret-carol-vm/);
            }
          });
          assert.equal(
            (await env.cluster.store.get(keys.vm(carolVm), Vm))?.value.desired,
            "running",
          );
          const list = await page.goto(`${env.base}/web/vms`);
          assert.equal(list?.status(), 200);
          assert.doesNotMatch(await page.content(), /secret-carol-vm/);
        });

        await step(
          "POSTs with a wrong, foreign or no CSRF token are 403",
          async () => {
            await page.goto(`${env.base}/web/keys`);
            const good = await page.locator('input[name="_csrf"]').first()
              .getAttribute("value");
            assert.ok(good && good.length >= 40);
            await unchanged("a bad CSRF token", async () => {
              // The browser's own form with its token changed.
              await page.getByLabel("Name").fill("evil");
              await page.getByLabel("Public key").fill(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x",
              );
              await page.evaluate(
                `document.querySelector('form[action="/web/keys"] input[name="_csrf"]').value = "x${
                  good.slice(1)
                }"`,
              );
              const [res] = await Promise.all([
                page.waitForResponse((r) =>
                  r.url().endsWith("/web/keys")
                ),
                page.getByRole("button", { name: "Add key" }).click(),
              ]);
              assert.equal(res.status(), 403);
              await page.getByText("security token").waitFor();
              await shot(page, dir, "04-bad-csrf");
              const forms: Record<string, string>[] = [
                {},
                { _csrf: "" },
                { _csrf: good + "x" },
              ];
              for (const form of forms) {
                const r = await page.request.post(`${env.base}/web/vms`, {
                  form: { ...form, name: "evil", cpus: "1", memory: "128" },
                });
                assert.equal(r.status(), 403, JSON.stringify(form));
              }
              const out = await page.request.post(`${env.base}/web/logout`, {
                form: {},
              });
              assert.equal(out.status(), 403);
            });
            // A second session (alice) has another token, refused in bob's.
            const ctx2 = await launchBrowser();
            try {
              const p2 = await ctx2.page();
              await env.login(p2, "alice");
              await p2.goto(`${env.base}/web/keys`);
              const alices = await p2.locator('input[name="_csrf"]').first()
                .getAttribute("value");
              assert.notEqual(alices, good);
              await unchanged("another session's token", async () => {
                const r = await page.request.post(`${env.base}/web/keys`, {
                  form: { _csrf: alices!, name: "evil", publicKey: "x" },
                });
                assert.equal(r.status(), 403);
              });
              // An admin sees the host internals; bob does not.
              await p2.goto(`${env.base}/web/vms/${carolVm}`);
              await p2.getByText("Host internals").waitFor();
            } finally {
              await ctx2.close();
            }
          },
        );

        await step("a bad field is the API's 400 on that field", async () => {
          await page.goto(`${env.base}/web/vms/new`);
          await unchanged("a bad create form", async () => {
            await page.getByLabel("Name", { exact: true }).fill("Bad_Name");
            await page.getByLabel("Memory (MiB)").fill("128");
            const [res] = await Promise.all([
              page.waitForResponse((r) => r.url().endsWith("/web/vms")),
              page.getByRole("button", { name: "Create VM" }).click(),
            ]);
            assert.equal(res.status(), 400);
          });
          const name = page.getByLabel("Name", { exact: true });
          assert.equal(await name.getAttribute("aria-invalid"), "true");
          assert.equal(await name.inputValue(), "Bad_Name");
          await page.getByText(
            "name must be 1-63 lowercase letters, digits or '-'",
          ).first().waitFor();
          await shot(page, dir, "05-bad-field");
        });

        await step(
          "an expired session goes to the login, saying so",
          async () => {
            await page.goto(`${env.base}/web/keys`);
            const csrf = await page.locator('input[name="_csrf"]').first()
              .getAttribute("value");
            const cookie = (await sessionCookie(page))!.value;
            env.advance(601_000);
            await unchanged("an expired session", async () => {
              await page.goto(`${env.base}/web/vms`);
              assert.match(
                page.url(),
                /\/web\/login\?m=expired&next=%2Fweb%2Fvms$/,
              );
              await page.getByText("Your session has ended").waitFor();
              assert.equal(await sessionCookie(page), undefined);
              // A form of the expired session, sent again.
              const r = await fetch(`${env.base}/web/keys`, {
                method: "POST",
                redirect: "manual",
                headers: { cookie: `ucloud_session=${cookie}` },
                body: new URLSearchParams({
                  _csrf: csrf!,
                  name: "late",
                  publicKey:
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl y",
                }),
              });
              await r.body?.cancel();
              assert.equal(r.status, 303);
              assert.equal(r.headers.get("location"), "/web/login?m=expired");
            });
            await shot(page, dir, "06-expired");
            await env.login(page, "bob");
            assert.match(page.url(), /\/web\/vms$/);
          },
        );
      } finally {
        await browser?.close();
      }
    }),
});
