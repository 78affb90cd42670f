/**
 * `GET /web/vms/{id}`: one VM as the API shows it to the user
 * (resources/host_internals.ts `vmView`: the host's name, none of its
 * internals; an admin also sees the driver handle and incarnation), its
 * NICs with detach buttons, a form to attach a network, the power and
 * delete buttons, the console link while it runs, and its recent tasks
 * (live.js keeps the state and the tasks current). Another user's VM is a 404, as in the API.
 *
 * @example
 * ```ts
 * vms.get("/:id", (c) => detailPage(c, w, c.req.param("id")));
 * ```
 */
import type { Context } from "hono";
import type { Network, Vm } from "../../core/schemas.ts";
import { taskView, vmView } from "../../resources/host_internals.ts";
import { canUse, listNetworks } from "../../resources/networks/mod.ts";
import { listTasks } from "../../resources/tasks/list.ts";
import { showVm } from "../../resources/vms/mod.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import { Csrf, ErrorBanner, Notice, noticeOf, type Problem } from "./form.tsx";
import { Layout, pageCtx } from "./layout.tsx";
import { addressesOf, ConsoleLink, Phase, TaskRow } from "./vm_rows.tsx";

/** The recent tasks a VM page shows. */
export const TASKS_SHOWN = 10;

/** A button that posts to `action` with the CSRF token. */
export function PostButton(
  { action, csrf, label, confirm, secondary, extra }: {
    action: string;
    csrf: string;
    label: string;
    /** Asked before sending (confirm.js). */
    confirm?: string;
    secondary?: boolean;
    extra?: Record<string, string>;
  },
) {
  return (
    <form method="post" action={action} class="inline" data-confirm={confirm}>
      <Csrf token={csrf} />
      {Object.entries(extra ?? {}).map(([k, v]) => (
        <input key={k} type="hidden" name={k} value={v} />
      ))}
      <button type="submit" class={secondary ? "secondary" : undefined}>
        {label}
      </button>
    </form>
  );
}

function Facts({ vm, admin }: { vm: Vm; admin: boolean }) {
  const addrs = addressesOf(vm);
  return (
    <dl class="facts">
      <dt>State</dt>
      <dd>
        <span data-field="phase">
          <Phase phase={vm.status.phase} />
        </span>{" "}
        (wanted: {vm.desired})
      </dd>
      {vm.status.reason && (
        <>
          <dt>Reason</dt>
          <dd>{vm.status.reason}</dd>
        </>
      )}
      <dt>Host</dt>
      <dd data-field="host">{vm.status.host ?? "–"}</dd>
      <dt>Addresses</dt>
      <dd data-field="addresses">
        {addrs.length ? addrs.map((a) => <code key={a}>{a}</code>) : "–"}
      </dd>
      <dt>Size</dt>
      <dd>
        {vm.spec.cpus} CPU, {vm.spec.memory} MiB memory
        {vm.spec.disk ? `, ${vm.spec.disk} GiB disk` : ""}
      </dd>
      <dt>Image</dt>
      <dd>{vm.spec.image}</dd>
      <dt>Created</dt>
      <dd>
        <time datetime={vm.createdAt}>{vm.createdAt}</time>
      </dd>
      {admin && (
        <>
          <dt>Owner</dt>
          <dd>{vm.owner}</dd>
          <dt>Host internals</dt>
          <dd>
            <code>
              {JSON.stringify({
                incarnation: vm.status.incarnation,
                handle: vm.status.handle,
              })}
            </code>
          </dd>
        </>
      )}
    </dl>
  );
}

function Nics(
  { vm, nets, csrf }: { vm: Vm; nets: Map<string, Network>; csrf: string },
) {
  if (vm.nics.length === 0) return <p>No network attached.</p>;
  return (
    <div class="table-wrap">
      <table>
        <caption class="sr-only">Network interfaces</caption>
        <thead>
          <tr>
            <th scope="col">Slot</th>
            <th scope="col">Network</th>
            <th scope="col">MAC</th>
            <th scope="col">Addresses</th>
            <th scope="col">State</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {vm.nics.map((n) => (
            <tr key={n.slot}>
              <th scope="row">eth{n.slot}</th>
              <td>{nets.get(n.network)?.name ?? n.network}</td>
              <td>
                <code>{n.mac}</code>
              </td>
              <td>
                <code>{n.ipv6}</code>
                {n.ipv4 && <code>{n.ipv4}</code>}
              </td>
              <td>{n.state}</td>
              <td>
                {n.state === "attached" && (
                  <PostButton
                    action={`/web/vms/${vm.id}/nics/${n.slot}/detach`}
                    csrf={csrf}
                    label={`Detach eth${n.slot}`}
                    secondary
                  />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Actions({ vm, csrf }: { vm: Vm; csrf: string }) {
  const at = `/web/vms/${vm.id}`;
  return (
    <div class="actions">
      <ConsoleLink vm={vm} />
      {vm.desired === "stopped" && (
        <PostButton action={`${at}/start`} csrf={csrf} label="Start" />
      )}
      {vm.desired === "running" && (
        <>
          <PostButton action={`${at}/stop`} csrf={csrf} label="Stop" />
          <PostButton
            action={`${at}/stop`}
            csrf={csrf}
            label="Force stop"
            secondary
            extra={{ force: "1" }}
            confirm={`Stop ${vm.spec.name} at once, without asking the guest?`}
          />
        </>
      )}
      {vm.desired !== "deleted" && (
        <PostButton
          action={`${at}/delete`}
          csrf={csrf}
          label="Delete"
          secondary
          confirm={`Delete ${vm.spec.name} and its disk?`}
        />
      )}
    </div>
  );
}

/**
 * The state part of the VM page: its facts and buttons, one element that
 * live.js replaces by `/web/fragments/vm-state/{id}` when the phase
 * changes (the buttons and the Console link depend on it).
 */
export function VmState(
  { vm, admin, csrf }: { vm: Vm; admin: boolean; csrf: string },
) {
  return (
    <div data-vm={vm.id} data-fragment="vm-state">
      <Facts vm={vm} admin={admin} />
      <Actions vm={vm} csrf={csrf} />
    </div>
  );
}

/** Renders the VM page; `problem`: an action on it was refused. */
export async function detailPage(
  c: Context<WebEnv>,
  { deps }: WebDeps,
  id: string,
  problem?: Problem,
) {
  const who = c.get("principal");
  const vm = vmView(who, await showVm(deps.store, who, id));
  const [nets, tasks] = await Promise.all([
    listNetworks(deps.store, who),
    listTasks(deps.store, who, { limit: TASKS_SHOWN, vm: vm.id }),
  ]);
  const byId = new Map(nets.map((n) => [n.id, n]));
  const usable = nets.filter((n) =>
    canUse(who, n) && !vm.nics.some((x) => x.network === n.id)
  );
  const csrf = c.get("csrf");
  return c.html(
    <Layout title={`VM ${vm.spec.name}`} ctx={pageCtx(c)} scripts={["live.js"]}>
      <Notice text={noticeOf(c.req.query("done"))} />
      <ErrorBanner problem={problem} />
      <section aria-labelledby="h-state">
        <h2 id="h-state">State</h2>
        <VmState vm={vm} admin={who.admin} csrf={csrf} />
      </section>
      <section aria-labelledby="h-nics">
        <h2 id="h-nics">Networks</h2>
        <Nics vm={vm} nets={byId} csrf={csrf} />
        {usable.length > 0 && vm.desired !== "deleted" && (
          <form method="post" action={`/web/vms/${vm.id}/nics`} class="row">
            <Csrf token={csrf} />
            <div class="field">
              <label for="f-network">Attach a network</label>
              <select id="f-network" name="network">
                {usable.map((n) => (
                  <option key={n.id} value={n.id}>{n.name} ({n.prefix})</option>
                ))}
              </select>
            </div>
            <button type="submit">Attach</button>
          </form>
        )}
      </section>
      <section aria-labelledby="h-tasks">
        <h2 id="h-tasks">Recent tasks</h2>
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Tasks of this VM, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">State</th>
                <th scope="col">Progress</th>
                <th scope="col">Created (UTC)</th>
              </tr>
            </thead>
            <tbody data-live-list="tasks">
              {tasks.items.map((t) => (
                <TaskRow key={t.id} task={taskView(who, t)} />
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </Layout>,
    problem?.status ?? 200,
  );
}
