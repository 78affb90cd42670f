/**
 * `ucloud vm attach` and `ucloud vm detach`: a VM's NICs. A VM on a host
 * gets a NIC hot-plugged (or unplugged) by a `vm.nics` task, which
 * `--wait` follows; any other VM gets it when it starts (or loses it at
 * once).
 *
 * @module
 */
import { oneArg, WAIT_FLAGS } from "./args.ts";
import { networkNames, NETWORKS, type Nic, resolve, VMS } from "./client.ts";
import { command, type Context, type Input } from "./command.ts";
import { CliError, UsageError } from "./errors.ts";
import { networkLabel } from "./network.ts";
import { label, print, printJson } from "./output.ts";
import { MAX_NICS } from "./vm.ts";
import { waitNic } from "./wait.ts";

const NIC_WAIT_FLAGS = {
  ...WAIT_FLAGS,
  "--wait": "wait until a running VM has the change (the default)",
};

/** "MAC 52:54:00:12:34:56, IPv6 fd00::5054:ff:fe12:3456, IPv4 10.0.0.2". */
function nicAddresses(nic: Nic): string {
  return `MAC ${nic.mac}, IPv6 ${nic.ipv6}` +
    (nic.ipv4 ? `, IPv4 ${nic.ipv4}` : "");
}

function parseAttach({ read, args, topic }: Input) {
  read.required("network");
  return {
    vm: oneArg(args, "VM id or name", topic),
    network: read.ref("network", "a network id or name")!,
    wait: read.wait(),
  };
}

function parseDetach({ read, args, topic }: Input) {
  const vm = oneArg(args, "VM id or name", topic);
  const slot = read.integer(
    "slot",
    0,
    MAX_NICS - 1,
    `an integer from 0 to ${MAX_NICS - 1}`,
  );
  const network = read.ref("network", "a network id or name");
  if ((slot === undefined) === (network === undefined)) {
    throw new UsageError(
      "give either --slot or --network to choose the NIC",
      topic,
    );
  }
  /** Which NIC: its slot, or the one in a network (id or name). */
  const nic: { slot: number } | { network: string } = slot === undefined
    ? { network: network! }
    : { slot };
  return { vm, nic, wait: read.wait() };
}

const attach = command({
  summary: "Give a VM a NIC in a network (hot-plugged into a running VM)",
  usage: "ucloud vm attach ID|NAME --network ID|NAME [flags]",
  flags: {
    "--network ID|NAME": "the network of the new NIC",
    ...NIC_WAIT_FLAGS,
  },
  examples: ["ucloud vm attach web1 --network lan"],
  parse: parseAttach,
  run: attachNic,
});

const detach = command({
  summary: "Remove a NIC from a VM (hot-unplugged from a running VM)",
  usage: "ucloud vm detach ID|NAME (--slot N | --network ID|NAME) [flags]",
  flags: {
    "--slot N": `the NIC's slot, 0 to ${MAX_NICS - 1} (see 'ucloud vm show')`,
    "--network ID|NAME": "the NIC in this network",
    ...NIC_WAIT_FLAGS,
  },
  examples: [
    "ucloud vm detach web1 --slot 1",
    "ucloud vm detach web1 --network lan --no-wait",
  ],
  parse: parseDetach,
  run: detachNic,
});

/**
 * `ucloud vm attach`: a new NIC in a network. A VM on a host gets it
 * hot-plugged by a `vm.nics` task, which `--wait` follows; any other VM
 * gets it when it starts.
 */
async function attachNic(
  args: ReturnType<typeof parseAttach>,
  ctx: Context,
): Promise<void> {
  const { client } = ctx;
  const vm = await resolve(client, VMS, args.vm);
  const net = await resolve(client, NETWORKS, args.network);
  const began = Date.now();
  const accepted = await client.vms.attach(vm.id, net.id);
  const nic = accepted.vm.nics?.find((n) => n.network === net.id);
  if (!nic) {
    throw new CliError(
      `the API accepted the attach, but ${label(accepted.vm)} has no NIC ` +
        `in ${networkLabel(net.id, net.name)}`,
    );
  }
  const what = `${label(accepted.vm)} has NIC ${nic.slot} in ` +
    `${networkLabel(net.id, net.name)}: ${nicAddresses(nic)}`;
  const { task } = accepted;
  if (!args.wait || !task) {
    if (ctx.json) return printJson(ctx, accepted);
    return print(
      ctx,
      task
        ? `${what}; plugging it in as task ${task.id} (${task.state}): ` +
          `follow it with 'ucloud task show ${task.id}'`
        : `${what}; the VM gets it when it starts`,
    );
  }
  const done = await waitNic(
    ctx,
    accepted,
    nic.slot,
    "attach",
    args.wait.timeoutSeconds,
  );
  if (ctx.json) return printJson(ctx, done);
  const plugged = (done.task?.result as { plugged?: number[] } | undefined)
    ?.plugged?.includes(nic.slot);
  const took = ((Date.now() - began) / 1000).toFixed(1);
  print(
    ctx,
    `${what}; ${
      plugged ? "plugged in" : "the VM gets it when it starts"
    } (${took}s)`,
  );
}

/**
 * `ucloud vm detach`: removes a NIC, chosen by slot or network. A VM on a
 * host has it unplugged by a `vm.nics` task first, which `--wait` follows;
 * from any other VM it is removed at once.
 */
async function detachNic(
  args: ReturnType<typeof parseDetach>,
  ctx: Context,
): Promise<void> {
  const { client } = ctx;
  const vm = await resolve(client, VMS, args.vm);
  const nics = vm.nics ?? [];
  let nic: Nic | undefined;
  let names: Map<string, string>;
  if ("network" in args.nic) {
    const net = await resolve(client, NETWORKS, args.nic.network);
    nic = nics.find((n) => n.network === net.id);
    if (!nic) {
      throw new CliError(
        `Cannot detach ${networkLabel(net.id, net.name)} from ${label(vm)}: ` +
          "the VM has no NIC in it",
      );
    }
    names = new Map([[net.id, net.name]]);
  } else {
    const { slot } = args.nic;
    nic = nics.find((n) => n.slot === slot);
    if (!nic) {
      const slots = nics.map((n) => n.slot).join(", ") || "none";
      throw new CliError(
        `Cannot detach NIC ${slot} from ${label(vm)}: the VM has no NIC in ` +
          `slot ${slot} (its NICs: ${slots})`,
      );
    }
    names = await networkNames(client);
  }
  const { slot } = nic;
  const began = Date.now();
  const accepted = await client.vms.detach(vm.id, slot);
  const what = `${label(vm)}: NIC ${slot} in ` +
    networkLabel(nic.network, names.get(nic.network));
  const { task } = accepted;
  const removed = !accepted.vm.nics?.some((n) => n.slot === slot);
  if (!args.wait || removed) {
    if (ctx.json) return printJson(ctx, accepted);
    return print(
      ctx,
      removed
        ? `${what} is removed`
        : task
        ? `${what} is detaching as task ${task.id} (${task.state}); ` +
          `follow it with 'ucloud task show ${task.id}'`
        : `${what} is detaching already`,
    );
  }
  const done = await waitNic(
    ctx,
    accepted,
    slot,
    "detach",
    args.wait.timeoutSeconds,
  );
  if (ctx.json) return printJson(ctx, done);
  const unplugged = (done.task?.result as { unplugged?: number[] } | undefined)
    ?.unplugged?.includes(slot);
  const took = ((Date.now() - began) / 1000).toFixed(1);
  print(
    ctx,
    `${what} is ${unplugged ? "unplugged and " : ""}removed (${took}s)`,
  );
}

/**
 * `ucloud login`: the LDAP password buys a new TOTP seed (shown once by the
 * API), stored with name and realm in a file only the user can read; a

/** `vm attach` and `vm detach`. */
export const VM_NIC_COMMANDS = { "vm attach": attach, "vm detach": detach };
