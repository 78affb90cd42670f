/**
 * `ucloud task list | show`: the task documents (what the workers did, do
 * and will do), newest first, and one task with its history.
 *
 * @module
 */
import { noArgs, oneArg } from "./args.ts";
import { find, type Task, VMS } from "./client.ts";
import { command, type Input } from "./command.ts";
import { UsageError } from "./errors.ts";
import {
  age,
  type Column,
  formatFields,
  formatTable,
  print,
  printJson,
  when,
} from "./output.ts";

const TASK_STATES = ["queued", "running", "succeeded", "failed", "cancelled"];

function taskVm(task: Task): string {
  return typeof task.payload?.vm === "string" ? task.payload.vm : "-";
}

const TASK_COLUMNS: Column<Task>[] = [
  { header: "ID", value: (t) => t.id },
  { header: "KIND", value: (t) => t.kind },
  { header: "TARGET", value: (t) => t.target },
  { header: "STATE", value: (t) => t.state },
  {
    header: "ATTEMPTS",
    value: (t) => `${t.attempts}/${t.maxAttempts}`,
    align: "right",
  },
  { header: "AGE", value: (t) => age(t.createdAt), align: "right" },
  { header: "VM", value: taskVm },
];

function taskFields(task: Task): string {
  const fields = formatFields([
    ["id", task.id],
    ["kind", task.kind],
    ["target", task.target],
    ["vm", taskVm(task)],
    ["state", task.state],
    ["attempts", `${task.attempts}/${task.maxAttempts}`],
    ["worker", task.worker],
    ["progress", task.progress],
    ["error", task.error],
    [
      "result",
      task.result === undefined ? undefined : JSON.stringify(task.result),
    ],
    [
      "not before",
      task.notBefore > Date.now()
        ? new Date(task.notBefore).toISOString()
        : undefined,
    ],
    ["created", when(task.createdAt)],
    ["updated", when(task.updatedAt)],
  ]);
  const history = formatTable(task.history, [
    { header: "AT", value: (e) => e.at },
    { header: "STATE", value: (e) => e.state },
    { header: "WORKER", value: (e) => e.worker ?? "-" },
    { header: "MESSAGE", value: (e) => e.message ?? "" },
  ]).split("\n").map((line) => `  ${line}`.trimEnd());
  return [fields, "history:", ...history].join("\n");
}

const list = command({
  summary: "List tasks, newest first",
  usage: "ucloud task list [--state STATE] [--kind KIND] [--vm ID|NAME] " +
    "[--limit N]",
  flags: {
    "--state STATE": TASK_STATES.join(", "),
    "--kind KIND": "e.g. vm.create",
    "--vm ID|NAME": "tasks of this VM",
    "--limit N": "at most N tasks (default 100)",
  },
  examples: ["ucloud task list --state failed", "ucloud task list --vm web1"],
  parse({ read, args, topic }: Input) {
    noArgs(args, topic);
    const state = read.text("state");
    if (state !== undefined && !TASK_STATES.includes(state)) {
      throw new UsageError(
        `--state must be one of ${TASK_STATES.join(", ")}, got "${state}"`,
        topic,
      );
    }
    const query = {
      state,
      kind: read.text("kind"),
      vm: read.text("vm"),
      limit: read.integer("limit", 1, 10_000, "an integer from 1 to 10000"),
    };
    return { query };
  },
  async run(args, ctx) {
    const { vm } = args.query;
    // A name is resolved among current VMs; else it may be a deleted VM's id.
    const id = vm && ((await find(ctx.client, VMS, vm))?.id ?? vm);
    const list = await ctx.client.tasks.list({ ...args.query, vm: id });
    if (ctx.json) return printJson(ctx, list);
    print(ctx, formatTable(list.items, TASK_COLUMNS));
  },
});

const show = command({
  summary: "Show one task with its history",
  usage: "ucloud task show ID [--json]",
  flags: {},
  examples: ["ucloud task show t-0123"],
  parse: ({ args, topic }: Input) => ({ task: oneArg(args, "task id", topic) }),
  async run(args, ctx) {
    const task = await ctx.client.tasks.get(args.task);
    return ctx.json ? printJson(ctx, task) : print(ctx, taskFields(task));
  },
});

/** The task commands, by name. */
export const TASK_COMMANDS = { "task list": list, "task show": show };
