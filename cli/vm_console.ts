/**
 * `ucloud vm console VM`: prints the URL of the VM's console page with a
 * fresh ticket in its fragment (api/console.ts). The ticket is made with
 * this CLI's credentials, so it is the browser's credential too: open the
 * URL within its 30 seconds, in any browser (no login needed); it works
 * once, and the console ends with the credentials it was made with.
 *
 * @module
 */
import { oneArg } from "./args.ts";
import { resolve, VMS } from "./client.ts";
import { command, type Input } from "./command.ts";
import { print, printJson } from "./output.ts";

function parseConsole({ args, topic }: Input) {
  return { vm: oneArg(args, "VM id or name", topic) };
}

const consoleCommand = command({
  summary: "Print a URL that opens a running VM's screen in the browser",
  usage: "ucloud vm console ID|NAME",
  flags: {},
  examples: ["ucloud vm console web1", "xdg-open $(ucloud vm console web1)"],
  parse: parseConsole,
  async run(args, ctx) {
    const vm = await resolve(ctx.client, VMS, args.vm);
    const t = await ctx.client.vms.console(vm.id);
    if (ctx.json) return printJson(ctx, t);
    print(ctx, t.url);
  },
});

/** `vm console`. */
export const VM_CONSOLE_COMMANDS = { "vm console": consoleCommand };
