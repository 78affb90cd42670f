/**
 * The admin pages in headless Chromium against the real app, etcd, slapd
 * and two sim workers (h1, h2): an admin sees both hosts with capacity and
 * VM counts, drains the one holding carol's VMs and sees it draining and
 * the VMs moved in the drain report, enables it again; sees carol's task
 * among all tasks; sets carol's quota and sees it, and an invalid value is
 * a field error that writes nothing. A non-admin is refused on every admin
 * page and POST with etcd unchanged; a host whose worker died shows dead.
 * At 375 px no admin page scrolls sideways; axe-core finds no serious
 * violation on them. Screenshots go to .state/screenshots/web_admin/.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { keys } from "../core/keys.ts";
import { QuotaDoc } from "../core/quota_schemas.ts";
import { Alive, AllocEntry, Host, Task, Vm } from "../core/schemas.ts";
import { createVm } from "../resources/vms/mod.ts";
import { noSanitize } from "./helpers/api.ts";
import { waitFor } from "./helpers/cluster.ts";
import {
  launchBrowser,
  screenshotDir,
  seriousViolations,
  shot,
  type TestBrowser,
} from "./helpers/browser.ts";
import { type WebTestEnv, withWebEnv } from "./helpers/web_env.ts";

/** Keys whose values differ between two dumps (added, removed, changed). */
function changed(a: Record<string, string>, b: Record<string, string>) {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .filter((k) => a[k] !== b[k]);
}

async function noSideScroll(page: Page, what: string) {
  const w = await page.evaluate("document.documentElement.scrollWidth");
  assert.ok((w as number) <= 375, `${what}: scrollWidth ${w} > 375`);
}

async function accessible(page: Page, what: string) {
  const v = await seriousViolations(page);
  assert.deepEqual(v, [], `${what}: ${JSON.stringify(v, null, 2)}`);
}

const text = async (page: Page, selector: string) =>
  (await page.locator(selector).textContent())?.trim();

/** Waits until no task waits in a queue or is claimed. */
async function settled(env: WebTestEnv) {
  await waitFor("every task done", async () => {
    const d = await env.snapshot();
    return Object.keys(d).every((k) =>
      !k.startsWith("queue/") && !k.startsWith("claim/")
    );
  }, 60_000);
}

/** Where each of `vms` is reserved now. */
async function hostsOf(env: WebTestEnv, vms: string[]) {
  const entries = await env.cluster.store.list(keys.allocVms, AllocEntry);
  const out: Record<string, string> = {};
  for (const { key } of entries.items) {
    const [host, vm] = key.slice(keys.allocVms.length).split("/");
    if (vms.includes(vm)) out[vm] = host;
  }
  return out;
}

Deno.test({
  name:
    "web admin: hosts with capacity and VMs, drain (VMs moved) and enable, everyone's tasks, a user's quota set (a bad value writes nothing); a non-admin is refused everywhere with etcd unchanged",
  ...noSanitize,
  fn: (t) =>
    withWebEnv(async (env) => {
      const dir = await screenshotDir("web_admin");
      const step = (name: string, fn: () => Promise<void>) =>
        t.step({ name, ...noSanitize, fn });
      const store = env.cluster.store;
      await env.cluster.addWorker({ name: "h2" });
      await waitFor("h2 registered", () => store.get(keys.host("h2"), Host));
      const deps = { store, config: env.cluster.config };
      const carol = { name: "carol", admin: false };
      const vms: string[] = [];
      for (const name of ["c1", "c2"]) {
        const r = await createVm(deps, carol, {
          name,
          cpus: 1,
          memory: 128,
          image: "tiny",
        });
        vms.push(r.vm.id);
      }
      for (const id of vms) {
        await waitFor(`${id} running`, async () =>
          (await store.get(keys.vm(id), Vm))?.value.status.phase ===
            "running", 60_000);
      }
      await settled(env);
      const at = await hostsOf(env, vms);
      // The host to drain: the one holding the first VM.
      const busy = at[vms[0]];
      const other = busy === "h1" ? "h2" : "h1";
      const onBusy = vms.filter((v) =>
        at[v] === busy
      );

      let browser: TestBrowser | undefined;
      try {
        browser = await launchBrowser();
        const page = await browser.page();
        page.on("dialog", (d) =>
          d.accept());
        const csp: string[] = [];
        page.on("console", (m) => {
          if (/Content Security Policy/i.test(m.text())) csp.push(m.text());
        });
        await env.login(page, "alice");

        await step("the hosts page shows both hosts", async () => {
          await page.getByRole("link", { name: "Hosts" }).click();
          await page.waitForURL(/\/web\/admin\/hosts$/);
          for (const name of ["h1", "h2"]) {
            const h = (await store.get(keys.host(name), Host))!.value;
            const row = `tr[data-host="${name}"]`;
            assert.match(
              (await text(page, `${row} td[data-field="capacity"]`))!,
              new RegExp(`^${h.capacity.cpus} cores`),
            );
            const count = Object.values(at).filter((x) => x === name).length;
            assert.equal(
              await text(page, `${row} td[data-field="vms"]`),
              String(count),
            );
            assert.match(
              (await text(page, `${row} td[data-field="state"]`))!,
              /active\s*alive/,
            );
            assert.match(
              (await text(page, `${row} td[data-field="heartbeat"]`))!,
              /^\d+ s ago$/,
            );
          }
          await shot(page, dir, "01-hosts");
          await accessible(page, "hosts");
        });

        let drainTask = "";
        await step("draining a host moves its VMs", async () => {
          await page.getByRole("button", { name: `Drain ${busy}` }).click();
          await page.waitForURL(/\/web\/admin\/drains\/[^/?]+\?done=drained$/);
          drainTask = page.url().match(/drains\/([^/?]+)/)![1];
          const task = (await store.get(keys.task(drainTask), Task))!.value;
          assert.equal(task.kind, "host.drain");
          assert.equal(task.payload.host, busy);
          assert.equal(
            (await store.get(keys.host(busy), Host))!.value.state,
            "draining",
          );
          await shot(page, dir, "02-drain-started");
          await waitFor(
            "the drain report done",
            async () => {
              await page.goto(`${env.base}/web/admin/drains/${drainTask}`);
              return await page.locator('[data-drain-done="true"]').count() ===
                1;
            },
            90_000,
            1000,
          );
          for (const vm of onBusy) {
            assert.equal(
              await text(
                page,
                `tr[data-drained-vm="${vm}"] td[data-field="to"]`,
              ),
              other,
            );
          }
          const now = await hostsOf(env, vms);
          assert.deepEqual(Object.values(now), vms.map(() => other));
          await shot(page, dir, "03-drain-report");
          await accessible(page, "drain report");
          await page.goto(`${env.base}/web/admin/hosts`);
          const row = `tr[data-host="${busy}"]`;
          assert.match(
            (await text(page, `${row} td[data-field="state"]`))!,
            /draining/,
          );
          assert.equal(await text(page, `${row} td[data-field="vms"]`), "0");
          assert.equal(
            await page.locator(`${row} a`, { hasText: "Drain report" })
              .getAttribute("href"),
            `/web/admin/drains/${drainTask}`,
          );
          await shot(page, dir, "04-hosts-draining");
        });

        await step("enabling the host makes it active again", async () => {
          await page.getByRole("button", { name: `Enable ${busy}` }).click();
          await page.getByText("Host enabled").waitFor();
          assert.equal(
            (await store.get(keys.host(busy), Host))!.value.state,
            "active",
          );
          assert.match(
            (await text(
              page,
              `tr[data-host="${busy}"] td[data-field="state"]`,
            ))!,
            /active/,
          );
          await shot(page, dir, "05-host-enabled");
        });

        await step("all tasks shows carol's tasks", async () => {
          await settled(env);
          const create = (await store.list(keys.tasks, Task)).items
            .map((kv) => kv.value)
            .find((t) => t.kind === "vm.create" && t.owner === "carol")!;
          await page.getByRole("link", { name: "All tasks" }).click();
          await page.waitForURL(/\/web\/admin\/tasks$/);
          const row =
            `tbody[data-live-list="tasks"] tr[data-task="${create.id}"]`;
          assert.equal(
            await text(page, `${row} td[data-field="owner"]`),
            "carol",
          );
          assert.equal(
            await text(page, `${row} td[data-field="state"]`),
            "succeeded",
          );
          assert.equal(await page.locator("[data-live-all]").count(), 1);
          await shot(page, dir, "06-all-tasks");
          await accessible(page, "all tasks");
          // Filters as GET /v1/tasks: kind and state.
          await page.getByLabel("Kind").fill("host.drain");
          await page.getByLabel("State").selectOption("succeeded");
          await page.getByRole("button", { name: "Filter" }).click();
          await page.waitForURL(/kind=host.drain/);
          const ids = await page.locator("tr[data-task]").evaluateAll((rs) =>
            rs.map((r) => r.getAttribute("data-task"))
          );
          assert.deepEqual(ids, [drainTask]);
          // A state the API does not know: its 400 on the field.
          const bad = await page.goto(
            `${env.base}/web/admin/tasks?state=bogus`,
          );
          assert.equal(bad?.status(), 400);
          assert.equal(
            await page.getByLabel("State").getAttribute("aria-invalid"),
            "true",
          );
          await shot(page, dir, "07-tasks-bad-filter");
        });

        await step("setting carol's quota, and a bad value", async () => {
          await page.getByRole("link", { name: "Users" }).click();
          await page.waitForURL(/\/web\/admin\/users$/);
          assert.equal(
            await text(page, 'tr[data-user="carol"] td[data-field="vms"]'),
            "2 / unlimited",
          );
          await shot(page, dir, "08-users");
          await accessible(page, "users");
          await page.getByRole("link", { name: "carol" }).click();
          await page.getByLabel("Cores").fill("8");
          await page.getByLabel("VMs").fill("unlimited");
          await page.getByRole("button", { name: "Set quota" }).click();
          await page.getByText("Quota set.").waitFor();
          const q = (await store.get(keys.quota("carol"), QuotaDoc))!.value;
          assert.deepEqual(q.limits, { cpus: 8, vms: null });
          assert.equal(q.updatedBy, "alice");
          assert.equal(
            await text(page, 'tr[data-resource="cpus"] td[data-field="limit"]'),
            "8",
          );
          assert.equal(
            await text(page, 'tr[data-resource="cpus"] td[data-field="used"]'),
            "2",
          );
          await shot(page, dir, "09-quota-set");
          await accessible(page, "user quota");
          const before = await env.snapshot();
          for (const v of ["many", "-1", "1.5"]) {
            await page.getByLabel("Cores").fill(v);
            const [res] = await Promise.all([
              page.waitForResponse((r) => r.url().endsWith("/quota")),
              page.getByRole("button", { name: "Set quota" }).click(),
            ]);
            assert.equal(res.status(), 400, v);
            await page.waitForLoadState("load");
            assert.equal(
              await page.getByLabel("Cores").getAttribute("aria-invalid"),
              "true",
              v,
            );
            assert.equal(await page.getByLabel("Cores").inputValue(), v);
            await page.locator("#f-cpus-error").waitFor();
          }
          await shot(page, dir, "10-quota-bad-value");
          assert.deepEqual(changed(before, await env.snapshot()), []);
        });

        await step("375 px: no admin page scrolls sideways", async () => {
          await page.setViewportSize({ width: 375, height: 800 });
          for (
            const [path, name] of [
              ["/web/admin/hosts", "11-hosts-375px"],
              [`/web/admin/drains/${drainTask}`, "11-drain-375px"],
              ["/web/admin/tasks", "11-tasks-375px"],
              ["/web/admin/users", "11-users-375px"],
              ["/web/admin/users/carol", "11-quota-375px"],
            ]
          ) {
            await page.goto(`${env.base}${path}`);
            await shot(page, dir, name);
            await noSideScroll(page, path);
          }
          await page.setViewportSize({ width: 1024, height: 768 });
          assert.deepEqual(csp, []);
        });

        await step("a non-admin is refused everywhere", async () => {
          await page.getByRole("button", { name: "Log out" }).click();
          await env.login(page, "bob");
          assert.equal(
            await page.getByRole("link", { name: "Hosts" }).count(),
            0,
          );
          await settled(env);
          const csrf = await page.locator('input[name="_csrf"]').first()
            .getAttribute("value");
          const before = await env.snapshot();
          for (
            const path of [
              "/web/admin/hosts",
              "/web/admin/tasks",
              "/web/admin/tasks?state=failed",
              "/web/admin/users",
              "/web/admin/users/carol",
              `/web/admin/drains/${drainTask}`,
              "/web/admin/nope",
            ]
          ) {
            const r = await page.request.get(`${env.base}${path}`);
            assert.equal(r.status(), 403, path);
            assert.doesNotMatch(await r.text(), /carol|h2/, path);
          }
          for (
            const [path, form] of [
              ["/web/admin/hosts/h1/drain", {}],
              ["/web/admin/hosts/h2/drain", {}],
              ["/web/admin/hosts/h1/enable", {}],
              ["/web/admin/users/bob/quota", { cpus: "100" }],
              ["/web/admin/users/carol/quota", { vms: "0" }],
            ] as const
          ) {
            const r = await page.request.post(`${env.base}${path}`, {
              form: { _csrf: csrf!, ...form },
              maxRedirects: 0,
            });
            assert.equal(r.status(), 403, path);
          }
          await page.goto(`${env.base}/web/admin/hosts`);
          await shot(page, dir, "12-non-admin-refused");
          assert.deepEqual(changed(before, await env.snapshot()), []);
        });

        await step("a host whose worker died shows dead", async () => {
          const h3 = await env.cluster.addWorker({ name: "h3", cpus: 8 });
          await waitFor("h3 alive", () => store.get(keys.alive("h3"), Alive));
          await h3.kill("SIGKILL");
          await h3.killFencer();
          await waitFor(
            "h3's lease gone",
            async () => !(await store.get(keys.alive("h3"), Alive)),
            30_000,
          );
          await page.getByRole("button", { name: "Log out" }).click();
          await env.login(page, "alice");
          await page.goto(`${env.base}/web/admin/hosts`);
          const row = 'tr[data-host="h3"]';
          assert.match(
            (await text(page, `${row} td[data-field="state"]`))!,
            /active\s*dead/,
          );
          assert.equal(
            await text(page, `${row} td[data-field="heartbeat"]`),
            "–",
          );
          assert.match(
            (await text(page, `${row} td[data-field="capacity"]`))!,
            /^8 cores/,
          );
          await shot(page, dir, "13-host-dead");
        });
      } finally {
        await browser?.close();
      }
    }),
});
