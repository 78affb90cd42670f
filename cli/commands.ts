/**
 * The command tree: every command of the CLI by name, in the order help
 * lists them, from the command groups (vm.ts, vm_power.ts, vm_nics.ts,
 * network.ts, key.ts, image.ts, host.ts, task.ts, quota.ts, events.ts, auth.ts), plus `ucloud completion`; the
 * global flags; and `ParsedArgs`, what the parser makes of a command line.
 *
 * @module
 */
import { DEFAULT_API, oneArg } from "./args.ts";
import { AUTH_COMMANDS } from "./auth.ts";
import { command, type Context, type Input } from "./command.ts";
import { bashCompletion } from "./completion.ts";
import { UsageError } from "./errors.ts";
import { EVENT_COMMANDS } from "./events.ts";
import { HOST_COMMANDS } from "./host.ts";
import { KEY_COMMANDS } from "./key.ts";
import { IMAGE_COMMANDS } from "./image.ts";
import { NETWORK_COMMANDS } from "./network.ts";
import { print } from "./output.ts";
import { QUOTA_COMMANDS } from "./quota.ts";
import { TASK_COMMANDS } from "./task.ts";
import { VM_COMMANDS } from "./vm.ts";
import { VM_NIC_COMMANDS } from "./vm_nics.ts";
import { VM_CONSOLE_COMMANDS } from "./vm_console.ts";
import { VM_POWER_COMMANDS } from "./vm_power.ts";

/** Flags every command takes, with their help lines. */
export const GLOBAL_FLAGS = {
  "--api URL": `API address (default $UCLOUD_API, else ${DEFAULT_API})`,
  "--json": "print the JSON the API answers instead of a table",
  "-h, --help": "show help",
};

/** The first word of the commands of two words. */
export const GROUPS = [
  "vm",
  "network",
  "key",
  "image",
  "host",
  "task",
  "quota",
];
/** Commands of one word. */
export const SINGLES = ["events", "login", "whoami", "logout", "completion"];

function parseCompletion({ args, topic }: Input) {
  const shell = oneArg(args, "shell (bash)", topic);
  if (shell !== "bash") {
    throw new UsageError(
      `no completion for shell '${shell}': only bash is supported`,
      topic,
    );
  }
  return { shell };
}

async function printCompletion(_: unknown, ctx: Context): Promise<void> {
  print(ctx, bashCompletion(COMMANDS, GLOBAL_FLAGS, GROUPS).trimEnd());
  await Promise.resolve();
}

const completion = command({
  summary: "Print a shell completion script for ucloud",
  usage: "ucloud completion bash",
  flags: {},
  examples: [
    "source <(ucloud completion bash)",
    "ucloud completion bash > /etc/bash_completion.d/ucloud",
  ],
  parse: parseCompletion,
  run: printCompletion,
});

/** Every command by name, in the order help lists them. */
export const COMMANDS = {
  "vm create": VM_COMMANDS["vm create"],
  "vm list": VM_COMMANDS["vm list"],
  "vm show": VM_COMMANDS["vm show"],
  "vm start": VM_COMMANDS["vm start"],
  ...VM_POWER_COMMANDS,
  ...VM_CONSOLE_COMMANDS,
  "vm delete": VM_COMMANDS["vm delete"],
  ...VM_NIC_COMMANDS,
  ...NETWORK_COMMANDS,
  ...KEY_COMMANDS,
  ...IMAGE_COMMANDS,
  ...HOST_COMMANDS,
  ...TASK_COMMANDS,
  ...QUOTA_COMMANDS,
  ...EVENT_COMMANDS,
  ...AUTH_COMMANDS,
  completion,
};

/** The name of a command: "vm create", "login". */
export type CommandName = keyof typeof COMMANDS;

type Tree = typeof COMMANDS;

/** What `parseArgs()` understood: one command with its validated input. */
export type ParsedArgs =
  & { api?: string; json: boolean }
  & (
    | { command: "help"; topic: string[] }
    | {
      [K in CommandName]:
        & { command: K }
        & ReturnType<Tree[K]["parse"]>;
    }[CommandName]
  );

/** Whether `name` is a command of the tree. */
export function isCommand(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}
