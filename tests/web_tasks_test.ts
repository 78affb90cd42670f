/**
 * The tasks pages in headless Chromium against the real app, etcd, slapd
 * and a sim worker: bob's tasks newest first, the same as `GET /v1/tasks`
 * shows him, none of carol's, in the rows live.js updates (`<tbody
 * data-live-list="tasks">`, `<tr data-task>` with `data-field` state and
 * progress, and the live.js script); the state filter; one task's page
 * with its history; carol's task a 404 that shows nothing of it. At 375 px
 * no page scrolls sideways; axe-core finds no serious violation.
 * Screenshots: .state/screenshots/web_tasks/.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { Task, Vm } from "../core/schemas.ts";
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
import { withWebEnv } from "./helpers/web_env.ts";

Deno.test({
  name:
    "web tasks: the user's tasks newest first as GET /v1/tasks shows them, none of another user's, with state and progress cells, a task's history page, another's task a 404",
  ...noSanitize,
  fn: () =>
    withWebEnv(async (env) => {
      const dir = await screenshotDir("web_tasks");
      const { store } = env.cluster;
      const deps = { store, config: env.config };
      const vm = async (user: string, name: string) => {
        const made = await createVm(deps, { name: user, admin: false }, {
          name,
          cpus: 1,
          memory: 128,
          image: "tiny",
        });
        return made.vm.id;
      };
      const bobVms = [await vm("bob", "b1"), await vm("bob", "b2")];
      const carolVm = await vm("carol", "secret-carol-vm");
      for (const id of [...bobVms, carolVm]) {
        await waitFor(`${id} running`, async () =>
          (await store.get(keys.vm(id), Vm))?.value.status.phase ===
            "running", 60_000);
      }
      const all = (await store.list(keys.tasks, Task)).items.map((kv) =>
        kv.value
      );
      const carols = all.filter((t) =>
        t.owner === "carol"
      ).map((t) =>
        t.id
      );
      assert.ok(carols.length > 0);

      let browser: TestBrowser | undefined;
      try {
        browser = await launchBrowser();
        const page = await browser.page();
        const csp: string[] = [];
        page.on("console", (m) => {
          if (/Content Security Policy/i.test(m.text())) csp.push(m.text());
        });
        await env.login(page, "bob");
        await page.getByRole("link", { name: "Tasks" }).click();
        await page.getByRole("heading", { name: "Tasks" }).waitFor();
        await shot(page, dir, "01-tasks");
        const rows = page.locator(
          'tbody[data-live-list="tasks"] tr[data-task]',
        );
        const shown = await rows.evaluateAll((trs) =>
          trs.map((tr) => tr.getAttribute("data-task")!)
        );
        const api = await (await page.request.get(`${env.base}/v1/tasks`))
          .json() as { items: Task[] };
        assert.deepEqual(shown, api.items.map((t) => t.id));
        assert.ok(shown.length >= 2, `bob's tasks: ${shown}`);
        for (const id of shown) {
          assert.equal(all.find((t) => t.id === id)?.owner, "bob", id);
        }
        assert.ok(!shown.some((id) => carols.includes(id)));
        assert.deepEqual(shown, [...shown].sort().reverse(), "newest first");
        assert.doesNotMatch(await page.content(), /carol/);
        assert.equal(
          await page.locator('script[src="/web/assets/live.js"]').count(),
          1,
        );
        for (const id of shown) {
          const t = api.items.find((x) => x.id === id)!;
          const row = page.locator(`tr[data-task="${id}"]`);
          assert.equal(
            (await row.locator('td[data-field="state"]').innerText()).trim(),
            t.state,
          );
          assert.equal(
            (await row.locator('td[data-field="progress"]').innerText())
              .trim(),
            t.error ?? t.progress ?? "",
          );
        }
        const v = await seriousViolations(page);
        assert.deepEqual(v, [], JSON.stringify(v, null, 2));

        // The state filter: only succeeded tasks.
        await page.getByLabel("State").selectOption("succeeded");
        await page.getByRole("button", { name: "Show" }).click();
        await page.waitForURL(/state=succeeded/);
        const states = await page.locator('td[data-field="state"]')
          .allInnerTexts();
        assert.ok(states.length > 0);
        assert.ok(states.every((s) => s.trim() === "succeeded"), `${states}`);

        // One task's page: its history, event by event.
        const first = api.items.find((t) => t.kind === "vm.create") ??
          api.items[0];
        await page.goto(`${env.base}/web/tasks`);
        await page.locator(`tr[data-task="${first.id}"] a`).click();
        await page.waitForURL(new RegExp(`/web/tasks/${first.id}$`));
        await page.getByRole("heading", { name: `Task ${first.kind}` })
          .waitFor();
        const events = page.locator(
          'section[aria-labelledby="h-history"] tbody tr',
        );
        const doc = (await store.get(keys.task(first.id), Task))!.value;
        assert.equal(await events.count(), doc.history.length);
        assert.deepEqual(
          (await events.locator("td:first-of-type").allInnerTexts()).map((
            s,
          ) => s.trim()),
          doc.history.map((e) => e.state),
        );
        await shot(page, dir, "02-task-detail");
        const v2 = await seriousViolations(page);
        assert.deepEqual(v2, [], JSON.stringify(v2, null, 2));

        // Carol's task: the 404 page, nothing of it shown.
        const r = await page.goto(`${env.base}/web/tasks/${carols[0]}`);
        assert.equal(r?.status(), 404);
        assert.doesNotMatch(await page.content(), /carol|secret/);
        await shot(page, dir, "03-other-users-task");

        // A phone's width.
        await page.setViewportSize({ width: 375, height: 800 });
        for (
          const [path, name] of [
            ["/web/tasks", "04-tasks-375px"],
            [`/web/tasks/${first.id}`, "04-task-detail-375px"],
          ]
        ) {
          await page.goto(`${env.base}${path}`);
          await shot(page, dir, name);
          const w = await page.evaluate(
            "document.documentElement.scrollWidth",
          ) as number;
          assert.ok(w <= 375, `${path}: scrollWidth ${w}`);
        }
        assert.deepEqual(csp, [], "no CSP violation");
      } finally {
        await browser?.close();
      }
    }),
});
