/**
 * The table rows of VMs and tasks, the shape live updates (live.js) rely
 * on: `<tr data-vm="ID">` with cells `data-field="phase"`, `"host"` and
 * `"addresses"`; `<tr data-task="ID">` with `data-field="state"` and
 * `"progress"`. The list pages and the fragments
 * (`/web/fragments/vm-row/{id}`, `/web/fragments/task-row/{id}`) render
 * the same components. They take documents already reduced to what the
 * user may see (resources/host_internals.ts `vmView`, `taskView`).
 *
 * @example
 * ```tsx
 * <tbody data-live-list="vms">{vms.map((v) => <VmRow vm={v} />)}</tbody>
 * ```
 */
import type { Child } from "hono/jsx";
import type { Task, Vm } from "../../core/schemas.ts";

/** The addresses of a VM's attached NICs: IPv6 first, then IPv4. */
export function addressesOf(vm: Vm): string[] {
  const nics = vm.nics.filter((n) => n.state === "attached");
  return [
    ...nics.map((n) => n.ipv6),
    ...nics.flatMap((n) => n.ipv4 ? [n.ipv4] : []),
  ];
}

/** The phase as a badge (its class colours it, its text says it). */
export function Phase({ phase }: { phase: string }) {
  return <span class={`badge phase-${phase}`}>{phase}</span>;
}

/** The link to a running VM's console (the page of api/console_page*). */
export function ConsoleLink({ vm }: { vm: Vm }) {
  if (vm.status.phase !== "running") return null;
  return (
    <a class="button secondary" href={`/web/console/${vm.id}`}>
      Console<span class="sr-only">{` of ${vm.spec.name}`}</span>
    </a>
  );
}

/** One VM of a list. */
export function VmRow({ vm }: { vm: Vm }) {
  const addrs = addressesOf(vm);
  return (
    <tr data-vm={vm.id}>
      <th scope="row">
        <a href={`/web/vms/${vm.id}`}>{vm.spec.name}</a>
      </th>
      <td data-field="phase">
        <Phase phase={vm.status.phase} />
      </td>
      <td data-field="host">{vm.status.host ?? "–"}</td>
      <td data-field="addresses">
        {addrs.length
          ? (
            <ul class="plain">
              {addrs.map((a) => (
                <li key={a}>
                  <code>{a}</code>
                </li>
              ))}
            </ul>
          )
          : "–"}
      </td>
      <td data-field="actions">
        <ConsoleLink vm={vm} />
      </td>
    </tr>
  );
}

/**
 * One task of a list; `extra` cells go last (a fragment row, which has
 * none, still lines up with the others).
 */
export function TaskRow({ task, extra }: { task: Task; extra?: Child }) {
  return (
    <tr data-task={task.id}>
      <th scope="row">
        <a href={`/web/tasks/${task.id}`}>{task.kind}</a>
      </th>
      <td data-field="state">
        <span class={`badge task-${task.state}`}>{task.state}</span>
      </td>
      <td data-field="progress">{task.error ?? task.progress ?? ""}</td>
      <td>
        <time datetime={task.createdAt}>
          {task.createdAt.slice(11, 19)}
        </time>
      </td>
      {extra}
    </tr>
  );
}
