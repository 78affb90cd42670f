/**
 * `ucloud vm stop` and `ucloud vm reboot`: the request with `force` and
 * `timeoutSeconds` (the guest's time to shut down or reboot by itself);
 * `--wait` follows the VM to stopped (stop) or the task to its end
 * (reboot), then says how it went from the task's result.
 *
 * @module
 */
import { DEFAULT_TIMEOUT_SECONDS, oneArg, WAIT_FLAGS } from "./args.ts";
import { followTask, resolve, VMS } from "./client.ts";
import { command, type Context, type Input } from "./command.ts";
import { CliError } from "./errors.ts";
import { label, print, printJson } from "./output.ts";
import { operate } from "./vm.ts";
import { waitTask } from "./wait.ts";

/** The API's limit of `vm stop --timeout` (api/vm_power.ts). */
const MAX_POWER_TIMEOUT_SECONDS = 3600;
/** The default of a host's `worker.stopTimeoutSeconds`. */
const HOST_STOP_TIMEOUT_SECONDS = 60;

function parsePower({ read, args, topic }: Input) {
  const vm = oneArg(args, "VM id or name", topic);
  const timeoutSeconds = read.integer(
    "timeout",
    1,
    MAX_POWER_TIMEOUT_SECONDS,
    `a whole number of seconds from 1 to ${MAX_POWER_TIMEOUT_SECONDS}`,
  );
  // Waits for the guest's time, then as long as for any change.
  const wait = read.wait() && {
    timeoutSeconds: (timeoutSeconds ?? HOST_STOP_TIMEOUT_SECONDS) +
      DEFAULT_TIMEOUT_SECONDS,
  };
  return {
    vm,
    /** The hard stop (reset) at once. */
    force: read.has("force"),
    /** The guest's time to shut down (reboot) by itself; absent: the host's. */
    ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }),
    wait,
  };
}

type PowerArgs = ReturnType<typeof parsePower>;

function powerBody(args: PowerArgs) {
  return {
    ...(args.force ? { force: true } : {}),
    ...(args.timeoutSeconds ? { timeoutSeconds: args.timeoutSeconds } : {}),
  };
}

const stop = command({
  summary:
    "Shut a VM down (ACPI power button, then a hard stop) and wait until it is stopped",
  usage: "ucloud vm stop ID|NAME [flags]",
  flags: {
    "--force": "stop it hard at once, without asking the guest",
    "--timeout SECONDS": "how long the guest gets to shut down before the " +
      `hard stop, 1 to ${MAX_POWER_TIMEOUT_SECONDS} (default: the host's, 60)`,
    "--wait": WAIT_FLAGS["--wait"],
    "--no-wait": WAIT_FLAGS["--no-wait"],
  },
  examples: [
    "ucloud vm stop web1",
    "ucloud vm stop web1 --timeout 300",
    "ucloud vm stop web1 --force",
  ],
  parse: parsePower,
  async run(args, ctx) {
    const { client } = ctx;
    const vm = await resolve(client, VMS, args.vm);
    const send = () => client.vms.stop(vm.id, powerBody(args));
    return operate(ctx, "vm stop", args.wait, send, async (done) => {
      if (!done.task) return "";
      const r = (await followTask(client, done.task.id)).result as
        | { how?: string; ms?: number }
        | undefined;
      const secs = ((r?.ms ?? 0) / 1000).toFixed(1);
      if (r?.how === "shutdown") return `: the guest shut down in ${secs}s`;
      if (r?.how !== "forced") return "";
      return args.force
        ? ": stopped hard (--force)"
        : `: stopped hard after ${secs}s, the guest did not shut down in time`;
    });
  },
});

const reboot = command({
  summary:
    "Reboot a running VM (ctrl-alt-delete, then a reset) and wait until it is done",
  usage: "ucloud vm reboot ID|NAME [flags]",
  flags: {
    "--force": "reset it at once (system_reset), without asking the guest",
    "--timeout SECONDS": "how long the guest gets to reboot before the " +
      `reset, 1 to ${MAX_POWER_TIMEOUT_SECONDS} (default: the host's, 60)`,
    "--wait": "wait until the reboot is done (the default)",
    "--no-wait": WAIT_FLAGS["--no-wait"],
  },
  examples: ["ucloud vm reboot web1", "ucloud vm reboot web1 --force"],
  parse: parsePower,
  run: rebootVm,
});

async function rebootVm(args: PowerArgs, ctx: Context): Promise<void> {
  const vm = await resolve(ctx.client, VMS, args.vm);
  const began = Date.now();
  const accepted = await ctx.client.vms.reboot(vm.id, powerBody(args));
  if (!args.wait || !accepted.task) {
    if (ctx.json) return printJson(ctx, accepted);
    return print(
      ctx,
      `${label(accepted.vm)}: reboot accepted as task ${accepted.task?.id} ` +
        `(${accepted.task?.state}); follow it with 'ucloud task show ` +
        `${accepted.task?.id}'`,
    );
  }
  const task = await waitTask(ctx, accepted, args.wait.timeoutSeconds);
  if (ctx.json) return printJson(ctx, { vm: accepted.vm, task });
  const r = task.result as { how?: string; ms?: number; skipped?: string };
  if (r?.skipped) {
    throw new CliError(`${label(accepted.vm)} was not rebooted: ${r.skipped}`);
  }
  const took = ((Date.now() - began) / 1000).toFixed(1);
  const how = r?.how === "reboot"
    ? "the guest rebooted"
    : args.force
    ? "reset (--force)"
    : "reset, the guest did not reboot in time";
  print(ctx, `${label(accepted.vm)} rebooted (${took}s): ${how}`);
}

/** `vm stop` and `vm reboot`. */
export const VM_POWER_COMMANDS = { "vm stop": stop, "vm reboot": reboot };
