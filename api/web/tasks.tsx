/**
 * `/web/tasks`: the user's tasks (every task for an admin), newest first,
 * a page at a time, optionally of one state (resources/tasks/list.ts
 * `listTasks`, as `GET /v1/tasks`), in the table live.js keeps current
 * (`<tbody data-live-list="tasks">` of `TaskRow`s); and `/web/tasks/{id}`,
 * one task with its payload, result and history. Another user's task is a
 * 404, as in the API.
 *
 * @example
 * ```ts
 * pages.route("/tasks", taskPages(w));
 * ```
 */
import { type Context, Hono } from "hono";
import { NotFoundError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { ID_RE, Task, TaskState } from "../../core/schemas.ts";
import { canSee } from "../../resources/deps.ts";
import { taskView } from "../../resources/host_internals.ts";
import { listTasks } from "../../resources/tasks/list.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import { Layout, pageCtx } from "./layout.tsx";
import { TaskRow } from "./vm_rows.tsx";

/** Tasks shown on one page. */
export const TASKS_PER_PAGE = 50;

function StateFilter({ state }: { state?: string }) {
  return (
    <form method="get" action="/web/tasks" class="row filter">
      <div class="field">
        <label for="f-state">State</label>
        <select id="f-state" name="state">
          <option value="" selected={!state}>any</option>
          {TaskState.options.map((s) => (
            <option key={s} value={s} selected={s === state}>{s}</option>
          ))}
        </select>
      </div>
      <button type="submit" class="secondary">Show</button>
    </form>
  );
}

async function listPage(c: Context<WebEnv>, { deps }: WebDeps) {
  const who = c.get("principal");
  const parsed = TaskState.safeParse(c.req.query("state"));
  const state = parsed.success ? parsed.data : undefined;
  const cont = c.req.query("continue");
  const page = await listTasks(deps.store, who, {
    limit: TASKS_PER_PAGE,
    continue: cont,
    state,
  });
  const next = new URLSearchParams({
    ...(state ? { state } : {}),
    continue: page.continue ?? "",
  });
  return c.html(
    <Layout title="Tasks" ctx={pageCtx(c)} scripts={["live.js"]}>
      <StateFilter state={state} />
      <div class="table-wrap">
        <table>
          <caption class="sr-only">
            {who.admin ? "All tasks" : "Your tasks"}, newest first
          </caption>
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col">State</th>
              <th scope="col">Progress</th>
              <th scope="col">Created (UTC)</th>
            </tr>
          </thead>
          <tbody data-live-list="tasks">
            {page.items.map((t) => (
              <TaskRow key={t.id} task={taskView(who, t)} />
            ))}
          </tbody>
        </table>
      </div>
      {page.items.length === 0 && !cont && (
        <p class="empty">No tasks{state ? ` in state ${state}` : ""}.</p>
      )}
      {page.continue && (
        <p>
          <a href={`/web/tasks?${next}`}>Older tasks</a>
        </p>
      )}
    </Layout>,
  );
}

/** JSON of a task's payload or result, indented. */
function Json({ value }: { value: unknown }) {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}

async function detailPage(c: Context<WebEnv>, { deps }: WebDeps) {
  const id = c.req.param("id") ?? "";
  const who = c.get("principal");
  if (!ID_RE.test(id)) throw new NotFoundError("task", id.slice(0, 64));
  const kv = await deps.store.get(keys.task(id), Task);
  if (!kv || !canSee(who, kv.value.owner)) throw new NotFoundError("task", id);
  const t = taskView(who, kv.value);
  const vm = typeof t.payload.vm === "string" && ID_RE.test(t.payload.vm)
    ? t.payload.vm
    : undefined;
  return c.html(
    <Layout title={`Task ${t.kind}`} ctx={pageCtx(c)}>
      <dl class="facts" data-task={t.id}>
        <dt>Id</dt>
        <dd>
          <code>{t.id}</code>
        </dd>
        <dt>State</dt>
        <dd data-field="state">
          <span class={`badge task-${t.state}`}>{t.state}</span>
        </dd>
        <dt>Progress</dt>
        <dd data-field="progress">{t.progress ?? "–"}</dd>
        {t.error && (
          <>
            <dt>Error</dt>
            <dd>{t.error}</dd>
          </>
        )}
        <dt>Attempts</dt>
        <dd>{t.attempts} of {t.maxAttempts}</dd>
        <dt>Target</dt>
        <dd>{t.target}</dd>
        {vm && (
          <>
            <dt>VM</dt>
            <dd>
              <a href={`/web/vms/${vm}`}>{vm}</a>
            </dd>
          </>
        )}
        {who.admin && t.owner && (
          <>
            <dt>Owner</dt>
            <dd>{t.owner}</dd>
          </>
        )}
        <dt>Created</dt>
        <dd>
          <time datetime={t.createdAt}>{t.createdAt}</time>
        </dd>
        <dt>Updated</dt>
        <dd>
          <time datetime={t.updatedAt}>{t.updatedAt}</time>
        </dd>
      </dl>
      <section aria-labelledby="h-history">
        <h2 id="h-history">History</h2>
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Events of this task, oldest first</caption>
            <thead>
              <tr>
                <th scope="col">Time (UTC)</th>
                <th scope="col">State</th>
                <th scope="col">Worker</th>
                <th scope="col">Message</th>
              </tr>
            </thead>
            <tbody>
              {t.history.map((e, i) => (
                <tr key={i}>
                  <th scope="row">
                    <time datetime={e.at}>{e.at.slice(11, 23)}</time>
                  </th>
                  <td>
                    <span class={`badge task-${e.state}`}>{e.state}</span>
                  </td>
                  <td>{e.worker ?? "–"}</td>
                  <td class="wrap">
                    {e.message ?? ""}
                    {e.by &&
                      ` (asked by ${
                        e.by.actor
                          ? `${e.by.actor} for ${e.by.user}`
                          : e.by.user
                      })`}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <section aria-labelledby="h-payload">
        <h2 id="h-payload">Payload</h2>
        <Json value={t.payload} />
        {t.result !== undefined && (
          <>
            <h2>Result</h2>
            <Json value={t.result} />
          </>
        )}
      </section>
      <p>
        <a href="/web/tasks">All your tasks</a>
      </p>
    </Layout>,
  );
}

/** The task pages. */
export function taskPages(w: WebDeps): Hono<WebEnv> {
  return new Hono<WebEnv>()
    .get("/", (c) => listPage(c, w))
    .get("/:id", (c) => detailPage(c, w));
}
