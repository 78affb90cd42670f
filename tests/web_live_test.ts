/**
 * api/web/assets/live.js in headless Chromium (Debian's, driven by
 * playwright-core) against a fixture page: one server answers the page
 * (a VM table per the web contract, with the page CSP), live.js, the
 * fragment of a VM row (made here from `GET /v1/vms/{id}`: a fixture of
 * the page, the real fragments are the web pages'), the same for task
 * rows, and everything else
 * by the real app (identity on, session cookie), so all is one origin. A
 * worker (sim driver) runs the VMs. The phase cell turns running without
 * a reload, a new VM's row appears, a deleted VM's row goes, the VM's tasks appear
 * with their state, and after a gap without a stream (the server refused
 * it) the page drops the row of a VM deleted meanwhile. Screenshots go
 * to .state/test-artifacts/web_live/ (never into git).
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { createApp } from "../api/app.ts";
import { EventHub } from "../api/event_hub.ts";
import { createIdentity } from "../api/identity.ts";
import { parseConfig } from "../core/config.ts";
import { keys } from "../core/keys.ts";
import { Alive, type Task, type Vm } from "../core/schemas.ts";
import { importHostKey, newHostKey } from "../core/secrets.ts";
import { noSanitize } from "./helpers/api.ts";
import { ROOT, waitFor, withCluster } from "./helpers/cluster.ts";

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; " +
  "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; " +
  "base-uri 'none'; form-action 'self'";
const SHOTS = `${ROOT}.state/test-artifacts/web_live`;
const LAUNCH_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A VM row as the web contract has it. */
function row(vm: Vm): string {
  const addresses = vm.nics.map((n) => n.ipv6).join(" ");
  return `<tr data-vm="${esc(vm.id)}"><td>${esc(vm.spec.name)}</td>` +
    `<td data-field="phase">${esc(vm.status.phase)}</td>` +
    `<td data-field="host">${esc(vm.status.host ?? "")}</td>` +
    `<td data-field="addresses">${esc(addresses)}</td></tr>`;
}

/** A task row as the web contract has it. */
function taskRow(t: Task): string {
  return `<tr data-task="${esc(t.id)}"><td>${esc(t.kind)}</td>` +
    `<td data-field="state">${esc(t.state)}</td>` +
    `<td data-field="progress">${esc(t.progress ?? "")}</td></tr>`;
}

function page(vms: Vm[]): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>VMs</title><script src="/web/assets/live.js" defer></script></head>
<body><p>Updates: <span data-live-status>connecting</span></p>
<table><thead><tr><th>Name</th><th>Phase</th><th>Host</th><th>Addresses</th>
</tr></thead><tbody data-live-list="vms">${vms.map(row).join("")}</tbody>
</table><table><thead><tr><th>Task</th><th>State</th><th>Progress</th></tr>
</thead><tbody data-live-list="tasks"></tbody></table></body></html>`;
}

Deno.test({
  name:
    "live.js turns a VM's phase cell to running without a reload, appends a new VM's row and removes a deleted one's, under the page CSP",
  ...noSanitize,
  fn: () =>
    withCluster(async (c) => {
      const config = parseConfig({
        stateDir: c.dir,
        etcd: c.config.etcd,
        identity: { ldap: { url: "ldap://127.0.0.1:1" } },
      }, () => undefined);
      const identity = await createIdentity({
        store: c.store,
        config,
        keys: await importHostKey(newHostKey()),
      });
      const hub = new EventHub(c.store);
      const app = createApp({
        store: c.store,
        config,
        identity,
        events: { hub },
      });
      const { token } = await identity.sessions.issue({
        name: "bob",
        admin: false,
      });
      const cookie = `ucloud_session=${token}`;
      const api = async (method: string, path: string, body?: unknown) => {
        const res = await app.request(path, {
          method,
          headers: { cookie, "content-type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        return { status: res.status, body: await res.json() };
      };
      const createVm = async (name: string) => {
        const r = await api("POST", "/v1/vms", { name, cpus: 1, memory: 128 });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        return r.body.vm as Vm;
      };
      const first = await createVm("web1");
      let eventsDown = false;
      const liveJs = await Deno.readTextFile(
        `${ROOT}api/web/assets/live.js`,
      );
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        async (req, info) => {
          const path = new URL(req.url).pathname;
          const headers = { "content-security-policy": CSP };
          if (path === "/v1/events" && eventsDown) {
            return new Response("down for the test", { status: 503 });
          }
          if (path === "/web/vms") {
            const list = await app.request("/v1/vms", {
              headers: { cookie: req.headers.get("cookie") ?? "" },
            });
            const vms = (await list.json()).items as Vm[];
            return new Response(page(vms), {
              headers: { ...headers, "content-type": "text/html" },
            });
          }
          if (path === "/web/assets/live.js") {
            return new Response(liveJs, {
              headers: { "content-type": "text/javascript" },
            });
          }
          const m = /^\/web\/fragments\/(vm|task)-row\/([^/]+)$/.exec(path);
          if (m) {
            const res = await app.request(`/v1/${m[1]}s/${m[2]}`, {
              headers: { cookie: req.headers.get("cookie") ?? "" },
            });
            if (res.status !== 200) return res;
            const doc = await res.json();
            return new Response(m[1] === "vm" ? row(doc) : taskRow(doc), {
              headers: { "content-type": "text/html" },
            });
          }
          return app.fetch(req, info);
        },
      );
      const base = `http://127.0.0.1:${server.addr.port}`;
      const profile = await Deno.makeTempDir({ prefix: "uc-chromium-" });
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: "/usr/bin/chromium",
        headless: true,
        args: LAUNCH_ARGS,
      });
      await Deno.mkdir(SHOTS, { recursive: true });
      try {
        await context.addCookies([{
          name: "ucloud_session",
          value: token,
          url: base,
        }]);
        const tab = context.pages()[0] ?? await context.newPage();
        const violations: string[] = [];
        tab.on("console", (m) => {
          if (/Content.Security.Policy/i.test(m.text())) {
            violations.push(m.text());
          }
        });
        let loads = 0;
        tab.on("load", () => loads++);
        await tab.goto(`${base}/web/vms`);
        const status = tab.locator("[data-live-status]");
        await status.filter({ hasText: "live" }).waitFor({ timeout: 30_000 });
        const phase = tab.locator(
          `[data-vm="${first.id}"] [data-field="phase"]`,
        );
        assert.equal(await phase.textContent(), "pending");
        await tab.screenshot({ path: `${SHOTS}/0-pending.png` });
        // Only now a host comes: the VM is placed and started.
        await c.addWorker({
          name: "h1",
          cpus: 8,
          env: { UCLOUD_DRIVER: "sim" },
        });
        await waitFor("h1 alive", () => c.store.get(keys.alive("h1"), Alive));
        await phase.filter({ hasText: "running" }).waitFor({ timeout: 60_000 });
        assert.equal(
          await tab.locator(`[data-vm="${first.id}"] [data-field="host"]`)
            .textContent(),
          "h1",
        );
        // The VM's tasks got rows, their state live too.
        const tasks = tab.locator('tbody[data-live-list="tasks"] tr');
        await tasks.filter({ hasText: "vm.start" }).locator(
          '[data-field="state"]',
        ).filter({ hasText: "succeeded" }).waitFor({ timeout: 60_000 });
        await tab.screenshot({ path: `${SHOTS}/1-running.png` });

        const second = await createVm("web2");
        const added = tab.locator(
          `tbody[data-live-list="vms"] tr[data-vm="${second.id}"]`,
        );
        await added.waitFor({ timeout: 30_000 });
        await added.locator('[data-field="phase"]').filter({
          hasText: "running",
        })
          .waitFor({ timeout: 60_000 });
        await tab.screenshot({ path: `${SHOTS}/2-added.png` });

        // The server drops every stream (event: reset) and refuses new
        // ones for a while: live.js keeps trying. Meanwhile web1 is deleted;
        // no vm-deleted reaches the page, the next snapshot lacks web1.
        const states: string[] = [];
        await tab.exposeFunction("liveStatus", (t: string) => states.push(t));
        // Page code as text: this file is type-checked without the DOM.
        await tab.evaluate(`{
          const el = document.querySelector("[data-live-status]");
          new MutationObserver(() => liveStatus(el.textContent))
            .observe(el, { childList: true, characterData: true, subtree: true });
        }`);
        eventsDown = true;
        await hub.close();
        await waitFor("reconnecting", () => states.includes("reconnecting"));
        assert.equal((await api("DELETE", `/v1/vms/${first.id}`)).status, 202);
        await waitFor(
          "web1 gone",
          async () => (await api("GET", `/v1/vms/${first.id}`)).status === 404,
          60_000,
        );
        await tab.screenshot({ path: `${SHOTS}/3-disconnected.png` });
        assert.equal(await tab.locator(`tr[data-vm="${first.id}"]`).count(), 1);
        eventsDown = false;
        await waitFor("live again", () => states.at(-1) === "live", 60_000);
        await tab.locator(`tr[data-vm="${first.id}"]`).waitFor({
          state: "detached",
          timeout: 60_000,
        });
        assert.equal(
          await tab.locator(`tr[data-vm="${second.id}"] [data-field="phase"]`)
            .textContent(),
          "running",
        );
        await tab.screenshot({ path: `${SHOTS}/4-reconnected.png` });
        assert.equal(loads, 1, "the page was never reloaded");
        assert.deepEqual(violations, []);
      } finally {
        await context.close();
        await hub.close();
        await server.shutdown();
        await Deno.remove(profile, { recursive: true });
      }
    }, { guest: false }),
});
