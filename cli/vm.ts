/**
 * `ucloud vm create | list | show | start | delete`: VMs and their life
 * cycle; `operate()` sends a change and waits until the VM gets there.
 * `vm stop` and `vm reboot` are in vm_power.ts, `vm attach` and
 * `vm detach` in vm_nics.ts, the metadata inputs (`--key`, `--user-data`)
 * in vm_metadata.ts. `vm show` prints `vmFields()`.
 *
 * @module
 */
import { NAME_RULE, noArgs, oneArg, WAIT_FLAGS } from "./args.ts";
import {
  networkNames,
  NETWORKS,
  type Operation,
  resolve,
  type Vm,
  VMS,
} from "./client.ts";
import { command, type Context, type Input, type Wait } from "./command.ts";
import { listCommand } from "./list_command.ts";
import { UsageError } from "./errors.ts";
import {
  type Column,
  formatFields,
  formatTable,
  label,
  print,
  printJson,
  when,
} from "./output.ts";
import { MAX_VM_KEYS, metadataFields, readUserData } from "./vm_metadata.ts";
import { waitFor } from "./wait.ts";

/** NICs per VM, slots 0 to 7. */
export const MAX_NICS = 8;

const GOALS = {
  "vm create": "running",
  "vm start": "running",
  "vm stop": "stopped",
  "vm delete": "deleted",
} as const;

/**
 * Sends a VM change and, unless `--no-wait`, waits until the VM reaches
 * the command's goal; prints the outcome (`outcome` adds to its line).
 *
 * @example
 * ```ts
 * await operate(ctx, "vm start", wait, () => ctx.client.vms.start(id));
 * ```
 */
export async function operate(
  ctx: Context,
  command: keyof typeof GOALS,
  wait: Wait,
  send: () => Promise<Operation>,
  /** More for the final line, from what the wait ended with. */
  outcome?: (done: Operation) => Promise<string>,
): Promise<void> {
  const began = Date.now();
  const accepted = await send();
  const verb = command.slice(3);
  if (!wait) {
    if (ctx.json) return printJson(ctx, accepted);
    const { vm, task } = accepted;
    return print(
      ctx,
      task
        ? `${
          label(vm)
        }: ${verb} accepted as task ${task.id} (${task.state}); ` +
          `follow it with 'ucloud task show ${task.id}'`
        : `${label(vm)}: nothing to do, phase ${vm.status.phase}`,
    );
  }
  const goal = GOALS[command];
  const done = await waitFor(ctx, accepted, goal, wait.timeoutSeconds);
  if (ctx.json) return printJson(ctx, done);
  const where = goal === "running" && done.vm.status.host
    ? ` on ${done.vm.status.host}`
    : "";
  const took = ((Date.now() - began) / 1000).toFixed(1);
  const more = outcome ? await outcome(done) : "";
  print(ctx, `${label(done.vm)} is ${goal}${where} (${took}s)${more}`);
}

const VM_COLUMNS: Column<Vm>[] = [
  { header: "ID", value: (vm) => vm.id },
  { header: "NAME", value: (vm) => vm.spec.name },
  { header: "CPUS", value: (vm) => vm.spec.cpus, align: "right" },
  { header: "MEM", value: (vm) => `${vm.spec.memory}Mi`, align: "right" },
  { header: "PHASE", value: (vm) => vm.status.phase },
  { header: "HOST", value: (vm) => vm.status.host ?? "-" },
];

/** How often the VM crashed lately and why, for `vm show`. */
function crashLine(vm: Vm): string | undefined {
  const c = vm.status.crashes ?? [];
  if (!c.length) return undefined;
  const last = c[c.length - 1];
  return `${c.length} recently, last ${when(last.at)}: ${last.reason}`;
}

/**
 * What `ucloud vm show` prints: the VM's fields, then its NICs; `names`:
 * network names by id.
 *
 * @example
 * ```ts
 * print(ctx, vmFields(vm, await networkNames(ctx.client)));
 * ```
 */
export function vmFields(vm: Vm, names: Map<string, string>): string {
  const nics = vm.nics ?? [];
  const fields = formatFields([
    ["id", vm.id],
    ["name", vm.spec.name],
    ["owner", vm.owner],
    ["cpus", vm.spec.cpus],
    ["memory", `${vm.spec.memory} MiB`],
    ["image", vm.spec.image],
    ["disk", vm.spec.disk === undefined ? undefined : `${vm.spec.disk} GiB`],
    [
      "movable",
      vm.spec.movable ? "yes: the rebalancer may move it running" : undefined,
    ],
    ["desired", vm.desired],
    ["phase", vm.status.phase],
    ["host", vm.status.host],
    ["reason", vm.status.reason],
    ["crashes", crashLine(vm)],
    ...metadataFields(vm),
    ["handle", vm.status.handle && JSON.stringify(vm.status.handle)],
    ["updated", when(vm.status.updatedAt)],
    ["created", when(vm.createdAt)],
    ["nics", nics.length ? undefined : "none"],
  ]);
  if (!nics.length) return fields;
  const table = formatTable(nics, [
    { header: "SLOT", value: (n) => n.slot, align: "right" },
    {
      header: "NETWORK",
      value: (n) => {
        const name = names.get(n.network);
        return name === undefined ? n.network : `${name} (${n.network})`;
      },
    },
    { header: "MAC", value: (n) => n.mac },
    { header: "IPV6", value: (n) => n.ipv6 },
    { header: "IPV4", value: (n) => n.ipv4 ?? "-" },
    { header: "STATE", value: (n) => n.state },
  ]).split("\n").map((line) => `  ${line}`.trimEnd());
  return [fields, "nics:", ...table, ...dropLines(vm)].join("\n");
}

/** A warning per NIC whose port filter dropped what the VM sent. */
function dropLines(vm: Vm): string[] {
  return Object.entries(vm.status.spoofDrops ?? {})
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([slot, d]) =>
      `warning: nic ${slot}: ${d.packets} packets dropped by anti-spoofing ` +
      `(last ${
        when(d.at)
      }); the guest must use its own MAC and EUI-64 addresses`
    );
}

const create = command({
  summary: "Create a VM and wait until it runs",
  usage: "ucloud vm create --name NAME --cpus N --memory MIB [flags]",
  flags: {
    "--name NAME": NAME_RULE,
    "--cpus N": "whole CPUs, 1 to 64",
    "--memory MIB": "memory in MiB, 96 to 1048576",
    "--image IMAGE": "guest image (default tiny)",
    "--disk GIB":
      "local disk in GiB, 1 to 65536 (default: the image's size, none reserved)",
    "--network ID|NAME": `a NIC in this network; repeat for more, up to ` +
      `${MAX_NICS} (eth0, eth1, ... in this order)`,
    "--movable":
      "the rebalancer may stop the running VM and start it on another host",
    "--key NAME": `one of your SSH keys for the VM; repeat for more, up to ` +
      `${MAX_VM_KEYS} (default: all your keys, also ones added later)`,
    "--user-data FILE":
      "user data for the guest (e.g. a cloud-config), UTF-8 text of at most 64 KiB",
    "--idempotency-key KEY":
      "retrying with the same key returns the first VM, not a new one",
    ...WAIT_FLAGS,
  },
  examples: [
    "ucloud vm create --name web1 --cpus 1 --memory 128",
    "ucloud vm create --name db1 --cpus 2 --memory 2048 --image tiny --no-wait",
    "ucloud vm create --name data1 --cpus 1 --memory 512 --disk 20",
    "ucloud vm create --name app1 --cpus 1 --memory 128 --network lan --network dmz",
    "ucloud vm create --name dev1 --cpus 1 --memory 512 --key k1 --key k2 --user-data cloud.yaml",
  ],
  parse({ read, args, topic }) {
    read.required("name", "cpus", "memory");
    noArgs(args, topic);
    const input = {
      name: read.name("name")!,
      cpus: read.integer("cpus", 1, 64, "an integer from 1 to 64")!,
      memory: read.integer(
        "memory",
        96,
        1_048_576,
        "a whole number of MiB from 96 to 1048576",
      )!,
      image: read.name("image"),
    };
    const disk = read.integer(
      "disk",
      1,
      65_536,
      "a whole number of GiB from 1 to 65536",
    );
    const networks = read.refs("network", "a network id or name");
    if (networks && networks.length > MAX_NICS) {
      throw new UsageError(
        `--network may be given at most ${MAX_NICS} times (one NIC each), ` +
          `got ${networks.length}`,
        topic,
      );
    }
    const keys = read.refs("key", "an SSH key name");
    if (keys && keys.length > MAX_VM_KEYS) {
      throw new UsageError(
        `--key may be given at most ${MAX_VM_KEYS} times, got ${keys.length}`,
        topic,
      );
    }
    return {
      // Only when given, so the request stays what the user typed.
      input: {
        ...input,
        ...(disk === undefined ? {} : { disk }),
        ...(networks ? { networks } : {}),
        ...(read.has("movable") ? { movable: true } : {}),
        ...(keys ? { keys } : {}),
      },
      userData: read.text("user-data"),
      idempotencyKey: read.text("idempotency-key"),
      wait: read.wait(),
    };
  },
  async run(args, ctx) {
    const { client } = ctx;
    const { networks, ...spec } = args.input;
    // Read and checked before any request.
    const userData = args.userData === undefined
      ? {}
      : { userData: await readUserData(args.userData) };
    const ids: string[] = [];
    for (const ref of networks ?? []) {
      ids.push((await resolve(client, NETWORKS, ref)).id);
    }
    const body = {
      ...spec,
      ...(networks ? { networks: ids } : {}),
      ...userData,
    };
    return operate(
      ctx,
      "vm create",
      args.wait,
      () => client.vms.create(body, args.idempotencyKey),
    );
  },
});

const list = listCommand({
  summary: "List VMs",
  topic: "vm",
  fetch: (client) => client.vms.list(),
  columns: VM_COLUMNS,
});

const show = command({
  summary: "Show one VM",
  usage: "ucloud vm show ID|NAME [--json]",
  flags: {},
  examples: ["ucloud vm show web1"],
  parse: ({ args, topic }) => ({ vm: oneArg(args, "VM id or name", topic) }),
  async run(args, ctx) {
    const vm = await resolve(ctx.client, VMS, args.vm);
    if (ctx.json) return printJson(ctx, vm);
    const names = vm.nics?.length
      ? await networkNames(ctx.client)
      : new Map<string, string>();
    print(ctx, vmFields(vm, names));
  },
});

/** `vm start` and `vm delete`: the VM and how long to wait. */
function parseChange({ read, args, topic }: Input) {
  return { vm: oneArg(args, "VM id or name", topic), wait: read.wait() };
}

const start = command({
  summary: "Start a stopped VM and wait until it runs",
  usage: "ucloud vm start ID|NAME [flags]",
  flags: WAIT_FLAGS,
  examples: ["ucloud vm start web1"],
  parse: parseChange,
  async run(args, ctx) {
    const vm = await resolve(ctx.client, VMS, args.vm);
    return operate(
      ctx,
      "vm start",
      args.wait,
      () => ctx.client.vms.start(vm.id),
    );
  },
});

const remove = command({
  summary: "Delete a VM and wait until it is gone",
  usage: "ucloud vm delete ID|NAME [flags]",
  flags: WAIT_FLAGS,
  examples: ["ucloud vm delete web1 --no-wait"],
  parse: parseChange,
  async run(args, ctx) {
    const vm = await resolve(ctx.client, VMS, args.vm);
    return operate(
      ctx,
      "vm delete",
      args.wait,
      () => ctx.client.vms.delete(vm.id),
    );
  },
});

/** The VM commands of this file, by name. */
export const VM_COMMANDS = {
  "vm create": create,
  "vm list": list,
  "vm show": show,
  "vm start": start,
  "vm delete": remove,
};
