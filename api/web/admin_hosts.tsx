/**
 * `/web/admin/hosts` (admins): every host as `GET /v1/hosts` shows it
 * (api/host_views.ts): capacity, what placement counts (allocation ratios,
 * memory reserve, effective capacity), what is reserved, state (active or
 * draining, alive or dead), time since its last heartbeat and its VMs;
 * drain and enable buttons that call the same functions as `POST
 * /v1/hosts/{name}/drain|enable` (api/host_actions.ts), and the drain's
 * report (`/web/admin/drains/{task}`, tasks/drain_report.ts as `GET
 * /v1/tasks/{id}/drain`): each VM's stop, new host and downtime.
 *
 * @example
 * ```ts
 * admin.route("/", hostPages(w));
 * ```
 */
import { type Context, Hono } from "hono";
import { ConflictError, NotFoundError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { ID_RE, Task } from "../../core/schemas.ts";
import { taskView } from "../../resources/host_internals.ts";
import { listTasks } from "../../resources/tasks/list.ts";
import { drainReport } from "../../tasks/drain_report.ts";
import { requireAdmin } from "../env.ts";
import { drainHost, enableHost } from "../host_actions.ts";
import { type HostView, listHostViews } from "../host_views.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import { ErrorBanner, Notice, type Problem, problemOf } from "./form.tsx";
import { Layout, pageCtx } from "./layout.tsx";
import { PostButton } from "./vm_detail.tsx";
import { TaskRow } from "./vm_rows.tsx";

/** How many recent `host.drain` tasks the hosts page looks at. */
const RECENT_DRAINS = 50;

const HOST_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** "12 s ago", "3 min ago", "2 h ago" of an ISO time, from `now`. */
export function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function State({ h }: { h: HostView }) {
  return (
    <ul class="plain">
      <li>
        <span
          class={`badge ${
            h.state === "active" ? "phase-running" : "phase-pending"
          }`}
        >
          {h.state}
        </span>
      </li>
      <li>
        <span class={`badge ${h.alive ? "phase-running" : "phase-failed"}`}>
          {h.alive ? "alive" : "dead"}
        </span>
      </li>
      {h.shutdown && <li>{h.shutdown.done ? "shut down" : "shutting down"}</li>}
      {h.handover && <li>handing over</li>}
    </ul>
  );
}

const gib = (mib: number) => `${(mib / 1024).toFixed(1)} GiB`;

function Row(
  { h, csrf, drain, now }: {
    h: HostView;
    csrf: string;
    drain?: string;
    now: number;
  },
) {
  const e = h.effective;
  return (
    <tr data-host={h.name}>
      <th scope="row">{h.name}</th>
      <td data-field="state">
        <State h={h} />
      </td>
      <td data-field="heartbeat">
        {h.lastHeartbeat
          ? <time datetime={h.lastHeartbeat}>{ago(h.lastHeartbeat, now)}</time>
          : "–"}
      </td>
      <td data-field="capacity">
        <ul class="plain">
          <li>{h.capacity.cpus} cores</li>
          <li>{gib(h.capacity.memoryMiB)}</li>
          {h.capacity.diskMiB !== undefined && (
            <li>{gib(h.capacity.diskMiB)} disk</li>
          )}
        </ul>
      </td>
      <td data-field="allocation">
        <ul class="plain">
          <li>cores × {h.allocation.cpuRatio}</li>
          <li>memory × {h.allocation.memoryRatio}</li>
          <li>{h.allocation.reservedMemoryMiB} MiB kept</li>
        </ul>
      </td>
      <td data-field="usage">
        <ul class="plain">
          <li>{h.usage.cpus} / {e.cpus} cores</li>
          <li>{h.usage.memoryMiB} / {e.memoryMiB} MiB</li>
          {e.diskMiB !== undefined && (
            <li>{h.usage.diskMiB ?? 0} / {e.diskMiB} MiB disk</li>
          )}
        </ul>
      </td>
      <td data-field="vms">{h.vms.length}</td>
      <td data-field="actions">
        <ul class="plain">
          <li>
            {h.state === "active"
              ? (
                <PostButton
                  action={`/web/admin/hosts/${h.name}/drain`}
                  csrf={csrf}
                  label={`Drain ${h.name}`}
                  confirm={`Drain host ${h.name}? Its ${h.vms.length} VMs move to other hosts.`}
                />
              )
              : (
                <PostButton
                  action={`/web/admin/hosts/${h.name}/enable`}
                  csrf={csrf}
                  label={`Enable ${h.name}`}
                  secondary
                />
              )}
          </li>
          {drain && (
            <li>
              <a href={`/web/admin/drains/${drain}`}>
                Drain report<span class="sr-only">{` of ${h.name}`}</span>
              </a>
            </li>
          )}
        </ul>
      </td>
    </tr>
  );
}

/** The newest `host.drain` task of each host among the recent ones. */
async function lastDrains(w: WebDeps, c: Context<WebEnv>) {
  const page = await listTasks(w.deps.store, c.get("principal"), {
    limit: RECENT_DRAINS,
    kind: "host.drain",
  });
  const out = new Map<string, string>();
  for (const t of page.items) {
    const host = t.payload.host;
    if (typeof host === "string" && !out.has(host)) out.set(host, t.id);
  }
  return out;
}

const NOTICES: Record<string, string> = {
  drained: "Host draining: its VMs are being moved.",
  "already-draining": "The host was draining already.",
  enabled: "Host enabled: it takes new VMs again.",
  "already-active": "The host was active already.",
};

async function hostsPage(w: WebDeps, c: Context<WebEnv>, problem?: Problem) {
  requireAdmin(c.get("principal"), "list hosts");
  const [views, drains] = await Promise.all([
    listHostViews(w.deps.store),
    lastDrains(w, c),
  ]);
  const csrf = c.get("csrf");
  const now = Date.now();
  return c.html(
    <Layout title="Hosts" ctx={pageCtx(c)}>
      <Notice text={NOTICES[c.req.query("done") ?? ""]} />
      <ErrorBanner problem={problem} />
      <p>
        Usage is what VMs reserve against what placement counts: cores × ratio,
        memory less the reserve × ratio.
      </p>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Hosts</caption>
          <thead>
            <tr>
              <th scope="col">Host</th>
              <th scope="col">State</th>
              <th scope="col">Heartbeat</th>
              <th scope="col">Capacity</th>
              <th scope="col">Allocation</th>
              <th scope="col">Reserved</th>
              <th scope="col">VMs</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {views.map((h) => (
              <Row
                key={h.name}
                h={h}
                csrf={csrf}
                drain={drains.get(h.name)}
                now={now}
              />
            ))}
          </tbody>
        </table>
      </div>
      {views.length === 0 && <p class="empty">No host has registered.</p>}
    </Layout>,
    problem?.status ?? 200,
  );
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const STOPS = {
  shutdown: "guest shut down",
  forced: "stopped hard",
  gone: "was not running",
} as const;

async function drainPage(w: WebDeps, c: Context<WebEnv>) {
  const id = c.req.param("id") ?? "";
  const who = c.get("principal");
  requireAdmin(who, "show drain reports");
  if (!ID_RE.test(id)) throw new NotFoundError("task", id.slice(0, 64));
  const t = await w.deps.store.get(keys.task(id), Task);
  if (!t) throw new NotFoundError("task", id);
  if (t.value.kind !== "host.drain") {
    throw new ConflictError(
      `Task ${id} is a ${t.value.kind}, not a host.drain: it has no drain report`,
    );
  }
  const report = await drainReport(w.deps.store, id);
  const done = t.value.state === "succeeded" && report.vms.every((v) => v.done);
  const host = report.host ?? String(t.value.payload.host ?? "");
  return c.html(
    <Layout title={`Drain of ${host}`} ctx={pageCtx(c)} scripts={["live.js"]}>
      <Notice text={c.req.query("done") === "drained" ? NOTICES.drained : ""} />
      <p data-drain-done={done ? "true" : "false"}>
        {done
          ? `Done: every VM has left ${host}.`
          : "Still moving. Reload the page to see the latest."}{" "}
        <a href={`/web/admin/drains/${id}`}>Reload</a> ·{" "}
        <a href="/web/admin/hosts">All hosts</a>
      </p>
      <h2>Task</h2>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">The drain task</caption>
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col">State</th>
              <th scope="col">Progress</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody data-live-list="tasks">
            <TaskRow task={taskView(who, t.value)} />
          </tbody>
        </table>
      </div>
      <h2>VMs</h2>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">What the drain did to each VM</caption>
          <thead>
            <tr>
              <th scope="col">VM</th>
              <th scope="col">Stop</th>
              <th scope="col">Now on</th>
              <th scope="col">Downtime</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {report.vms.map((v) => (
              <tr key={v.vm} data-drained-vm={v.vm}>
                <th scope="row">
                  <a href={`/web/vms/${v.vm}`}>{v.vm}</a>
                </th>
                <td>
                  {v.stop
                    ? `${STOPS[v.stop]}${
                      v.stop === "gone" ? "" : ` (${seconds(v.stopMs ?? 0)})`
                    }`
                    : "–"}
                </td>
                <td data-field="to">{v.to ?? "–"}</td>
                <td>
                  {v.downtimeMs === undefined ? "–" : seconds(v.downtimeMs)}
                </td>
                <td data-field="done">
                  {v.problem ?? (v.done ? "moved" : "moving")}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {report.vms.length === 0 && (
        <p class="empty">
          No VM to move (yet: the drain lists them when it runs).
        </p>
      )}
    </Layout>,
  );
}

/** The host name of the path; a malformed one is not found. */
function hostOf(c: Context<WebEnv>): string {
  const name = c.req.param("name") ?? "";
  if (!HOST_RE.test(name)) throw new NotFoundError("host", name.slice(0, 64));
  return name;
}

/** The hosts pages and their actions. */
export function hostPages(w: WebDeps): Hono<WebEnv> {
  /** Runs a host change; refused: the hosts page with the problem. */
  const act = (
    run: typeof drainHost,
    done: (changed: boolean) => string,
    drainLink: boolean,
  ) =>
  async (c: Context<WebEnv>) => {
    const name = hostOf(c);
    try {
      const r = await run(w.deps, c.get("principal"), name);
      if (drainLink && r.task) {
        return c.redirect(`/web/admin/drains/${r.task.id}?done=drained`, 303);
      }
      return c.redirect(`/web/admin/hosts?done=${done(!!r.task)}`, 303);
    } catch (err) {
      const p = problemOf(err);
      if (!p || p.status === 403) throw err;
      return await hostsPage(w, c, p);
    }
  };
  return new Hono<WebEnv>()
    .get("/hosts", (c) => hostsPage(w, c))
    .post(
      "/hosts/:name/drain",
      act(drainHost, (x) => x ? "drained" : "already-draining", true),
    )
    .post(
      "/hosts/:name/enable",
      act(enableHost, (x) => x ? "enabled" : "already-active", false),
    )
    .get("/drains/:id", (c) => drainPage(w, c));
}
