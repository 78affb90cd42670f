/**
 * `/web/admin/tasks` (admins): everyone's tasks, newest first, a page at a
 * time, filtered by state, kind and target as `GET /v1/tasks` does (the
 * same query schema, api/tasks.ts `TaskQuery`, and the same listing,
 * resources/tasks/list.ts). The rows are the task rows of live.js
 * (`<tr data-task>`, api/web/vm_rows.tsx) with the owner and target last;
 * `data-live-all` asks live.js to follow everyone's tasks.
 *
 * @example
 * ```ts
 * admin.get("/tasks", allTasksPage(w));
 * ```
 */
import type { Context, Handler } from "hono";
import { TaskState } from "../../core/schemas.ts";
import { taskView } from "../../resources/host_internals.ts";
import { listTasks } from "../../resources/tasks/list.ts";
import { requireAdmin } from "../env.ts";
import { TaskQuery } from "../tasks.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import { ErrorBanner, Field, isFieldOf, problemOf } from "./form.tsx";
import { Layout, pageCtx } from "./layout.tsx";
import { TaskRow } from "./vm_rows.tsx";

/** Tasks shown on one page. */
export const TASKS_PER_PAGE = 50;

/** The filters of the page (what the form sends back). */
type Filters = { state: string; kind: string; target: string };

function filtersOf(c: Context<WebEnv>): Filters {
  const q = (k: string) => (c.req.query(k) ?? "").trim();
  return { state: q("state"), kind: q("kind"), target: q("target") };
}

/** The query of `GET /v1/tasks` from the filters (blank: no filter). */
function queryOf(f: Filters, cont: string | undefined) {
  return {
    limit: String(TASKS_PER_PAGE),
    ...(cont ? { continue: cont } : {}),
    ...(f.state ? { state: f.state } : {}),
    ...(f.kind ? { kind: f.kind } : {}),
    ...(f.target ? { target: f.target } : {}),
  };
}

function FilterForm(
  { f, problem }: { f: Filters; problem: ReturnType<typeof problemOf> },
) {
  const stateBad = isFieldOf(problem, "state");
  return (
    <form method="get" action="/web/admin/tasks" class="row">
      <div class={stateBad ? "field invalid" : "field"}>
        <label for="f-state">State</label>
        <select
          id="f-state"
          name="state"
          aria-invalid={stateBad ? "true" : undefined}
          aria-describedby={stateBad
            ? "f-state-hint f-state-error"
            : "f-state-hint"}
        >
          <option value="" selected={f.state === ""}>any</option>
          {TaskState.options.map((s) => (
            <option key={s} value={s} selected={s === f.state}>{s}</option>
          ))}
        </select>
        <p class="hint" id="f-state-hint">any: no filter</p>
        {stateBad && (
          <p class="field-error" id="f-state-error">{problem!.message}</p>
        )}
      </div>
      <Field
        label="Kind"
        name="kind"
        value={f.kind}
        problem={problem}
        hint="e.g. vm.create"
      />
      <Field
        label="Target"
        name="target"
        value={f.target}
        problem={problem}
        hint="a host or any"
      />
      <button type="submit">Filter</button>
    </form>
  );
}

/** The all-tasks page's handler. */
export function allTasksPage({ deps }: WebDeps): Handler<WebEnv> {
  return async (c) => {
    const who = c.get("principal");
    requireAdmin(who, "list everyone's tasks");
    const f = filtersOf(c);
    const cont = c.req.query("continue") || undefined;
    const parsed = TaskQuery.safeParse(queryOf(f, cont));
    const problem = parsed.success ? null : problemOf(parsed.error);
    const page = parsed.success
      ? await listTasks(deps.store, who, parsed.data)
      : { items: [], continue: null };
    const next = page.continue === null
      ? null
      : new URLSearchParams(queryOf(f, page.continue));
    next?.delete("limit");
    return c.html(
      <Layout title="All tasks" ctx={pageCtx(c)} scripts={["live.js"]}>
        <ErrorBanner problem={problem} />
        <FilterForm f={f} problem={problem} />
        <h2>Tasks, newest first</h2>
        <div class="table-wrap" data-live-all>
          <table>
            <caption class="sr-only">Everyone's tasks, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">State</th>
                <th scope="col">Progress</th>
                <th scope="col">Created</th>
                <th scope="col">Owner</th>
                <th scope="col">Target</th>
              </tr>
            </thead>
            <tbody data-live-list="tasks">
              {page.items.map((t) => (
                <TaskRow
                  key={t.id}
                  task={taskView(who, t)}
                  extra={
                    <>
                      <td data-field="owner">{t.owner ?? "–"}</td>
                      <td data-field="target">{t.target}</td>
                    </>
                  }
                />
              ))}
            </tbody>
          </table>
        </div>
        {page.items.length === 0 && !problem && (
          <p class="empty">No task matches.</p>
        )}
        {next && (
          <p>
            <a href={`/web/admin/tasks?${next}`}>Next page</a>
          </p>
        )}
      </Layout>,
      problem?.status ?? 200,
    );
  };
}
