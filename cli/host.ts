/**
 * `ucloud host list | drain | enable | shutdown | rebalance`: the hosts
 * with their usage of what they offer to placement (CPUS and MEM: used /
 * effective capacity, from the CPU and memory allocation RATIOS and the
 * memory RESERVED for the host), state and heartbeat, and the operator's
 * moves: drain a host, let it take VMs again, shut it down in order for
 * maintenance, run a rebalance round now (or show its plan).
 *
 * @module
 */
import { drainLines } from "./drain_report.ts";
import { etcdLines, etcdStatus } from "./etcd_status.ts";
import { DRAIN_TIMEOUT_SECONDS, hostArg, noArgs } from "./args.ts";
import type { HostView, RebalancePlan } from "./client.ts";
import { command, type Input } from "./command.ts";
import { age, type Column, formatTable, print, printJson } from "./output.ts";
import { waitDrained, waitShutdown } from "./wait.ts";

const HOST_COLUMNS: Column<HostView>[] = [
  { header: "NAME", value: (h) => h.name },
  { header: "STATE", value: hostState },
  { header: "ALIVE", value: (h) => h.alive ? "yes" : "no" },
  {
    header: "CPUS",
    value: (h) => `${h.usage.cpus}/${h.effective.cpus}`,
    align: "right",
  },
  {
    header: "MEM(MiB)",
    value: (h) => `${h.usage.memoryMiB}/${h.effective.memoryMiB}`,
    align: "right",
  },
  {
    header: "RATIOS",
    value: (h) => `${h.allocation.cpuRatio}/${h.allocation.memoryRatio}`,
    align: "right",
  },
  {
    header: "RESERVED(MiB)",
    value: (h) => h.allocation.reservedMemoryMiB,
    align: "right",
  },
  { header: "VMS", value: (h) => h.usage.vms, align: "right" },
  {
    header: "DISK(GiB)",
    value: (h) =>
      h.capacity.diskMiB === undefined
        ? "-"
        : `${gib(h.usage.diskMiB ?? 0)}/${gib(h.capacity.diskMiB)}`,
    align: "right",
  },
  {
    header: "HEARTBEAT",
    value: (h) => h.lastHeartbeat ? `${age(h.lastHeartbeat)} ago` : "-",
  },
];

/** handover, shutting-down, shutdown (the worker exited), or the state. */
function hostState(h: HostView): string {
  if (h.handover) return "handover";
  if (h.shutdown) return h.shutdown.done ? "shutdown" : "shutting-down";
  return h.state;
}

/** MiB as whole GiB (rounded down), for the DISK column. */
function gib(mib: number): number {
  return Math.floor(mib / 1024);
}

/** The host columns; DISK only when some host tracks local disk. */
function hostColumns(hosts: HostView[]): Column<HostView>[] {
  return hosts.some((h) => h.capacity.diskMiB !== undefined)
    ? HOST_COLUMNS
    : HOST_COLUMNS.filter((c) => c.header !== "DISK(GiB)");
}

/** A rebalance plan as lines: drains, moves with their reasons, why. */
function planLines(p: RebalancePlan): string[] {
  return [
    ...p.drains.map((d) => `would resume the drain of host ${d.host}`),
    ...p.moves.map((m) =>
      `would move ${m.phase} vm ${m.vm} from ${m.from} to ${m.to}: ${m.why}`
    ),
    `${p.moves.length} move(s) planned, nothing enqueued: ${p.reason}`,
  ];
}

/** `host drain` and `host shutdown`: the host and how long to wait. */
function parseMove({ read, args, topic }: Input) {
  return {
    host: hostArg(args, topic),
    wait: read.wait(DRAIN_TIMEOUT_SECONDS),
  };
}

const list = command({
  summary:
    "List hosts with their capacity, usage, state and heartbeat, and etcd's size",
  usage: "ucloud host list [--json]",
  flags: {},
  examples: ["ucloud host list"],
  parse: ({ args, topic }: Input) => (noArgs(args, topic), {}),
  async run(_, ctx) {
    const list = await ctx.client.hosts.list();
    const etcd = await etcdStatus(ctx.client);
    if (ctx.json) return printJson(ctx, etcd ? { ...list, etcd } : list);
    const table = formatTable(list.items, hostColumns(list.items));
    print(ctx, [table, ...etcdLines(etcd)].join("\n"));
  },
});

const drain = command({
  summary: "Stop placing VMs on a host and move its VMs elsewhere",
  usage: "ucloud host drain NAME [flags]",
  flags: {
    "--wait": "wait until no VM is left on the host (the default)",
    "--no-wait": "return as soon as the API accepted the request",
    "--timeout SECONDS":
      `stop waiting after this long (default ${DRAIN_TIMEOUT_SECONDS})`,
  },
  examples: ["ucloud host drain h1", "ucloud host drain h1 --no-wait"],
  parse: parseMove,
  async run(args, ctx) {
    const began = Date.now();
    const accepted = await ctx.client.hosts.drain(args.host);
    if (!args.wait) {
      if (ctx.json) return printJson(ctx, accepted);
      const { host, task } = accepted;
      return print(
        ctx,
        task
          ? `host ${host.name}: draining; task ${task.id} moves its ` +
            `${host.vms.length} VM(s): follow it with 'ucloud host list'`
          : `host ${host.name}: already draining, ${host.vms.length} VM(s) left`,
      );
    }
    const host = await waitDrained(ctx, accepted, args.wait.timeoutSeconds);
    const deadline = began + args.wait.timeoutSeconds * 1000;
    const moved = accepted.task
      ? await drainLines(ctx, accepted.task.id, deadline)
      : null;
    if (ctx.json) return printJson(ctx, { ...host, drain: moved?.report });
    const took = ((Date.now() - began) / 1000).toFixed(1);
    print(
      ctx,
      [`host ${host.name} is drained (${took}s)`, ...moved?.lines ?? []].join(
        "\n",
      ),
    );
  },
});

const enable = command({
  summary: "Let a drained host take VMs again",
  usage: "ucloud host enable NAME [--json]",
  flags: {},
  examples: ["ucloud host enable h1"],
  parse: ({ args, topic }: Input) => ({ host: hostArg(args, topic) }),
  async run(args, ctx) {
    const r = await ctx.client.hosts.enable(args.host);
    if (ctx.json) return printJson(ctx, r);
    print(
      ctx,
      r.task
        ? `host ${r.host.name} is active: new VMs may be placed on it`
        : `host ${r.host.name} was already active`,
    );
  },
});

const shutdown = command({
  summary: "Drain a host, then stop its worker (for maintenance reboots)",
  usage: "ucloud host shutdown NAME [flags]",
  flags: {
    "--wait": "wait until the worker has exited (the default)",
    "--no-wait": "return as soon as the API accepted the request",
    "--timeout SECONDS":
      `stop waiting after this long (default ${DRAIN_TIMEOUT_SECONDS})`,
  },
  examples: ["ucloud host shutdown h1", "ucloud host enable h1"],
  parse: parseMove,
  async run(args, ctx) {
    const began = Date.now();
    const accepted = await ctx.client.hosts.shutdown(args.host);
    if (!args.wait) {
      if (ctx.json) return printJson(ctx, accepted);
      return print(
        ctx,
        `host ${accepted.host.name}: shutting down; its worker exits once ` +
          `its ${accepted.host.vms.length} VM(s) are elsewhere: follow it ` +
          "with 'ucloud host list'",
      );
    }
    const host = await waitShutdown(ctx, accepted, args.wait.timeoutSeconds);
    if (ctx.json) return printJson(ctx, host);
    const took = ((Date.now() - began) / 1000).toFixed(1);
    print(
      ctx,
      `host ${host.name} is shut down (${took}s): drained, worker stopped. ` +
        `After the maintenance, start its worker and run 'ucloud host ` +
        `enable ${host.name}'`,
    );
  },
});

const rebalance = command({
  summary: "Run a rebalance round now: drains, and moves to idle hosts",
  usage: "ucloud host rebalance [--dry-run] [--json]",
  flags: {
    "--dry-run": "show what a round would move, from where to where and " +
      "why; enqueue nothing",
  },
  examples: ["ucloud host rebalance --dry-run", "ucloud host rebalance"],
  parse({ read, args, topic }: Input) {
    noArgs(args, topic);
    return { dryRun: read.has("dry-run") };
  },
  async run(args, ctx) {
    if (args.dryRun) {
      const p = await ctx.client.rebalance.plan();
      if (ctx.json) return printJson(ctx, p);
      return print(ctx, planLines(p).join("\n"));
    }
    const r = await ctx.client.rebalance.run();
    if (ctx.json) return printJson(ctx, r);
    if (!r.ran) return print(ctx, `rebalance did not run: ${r.reason}`);
    const lines = [
      ...r.drains.map((d) =>
        `drain of host ${d.host} resumed as task ${d.task}`
      ),
      ...r.moves.map((m) =>
        `moving vm ${m.vm} off ${m.from} (towards ${m.to}) as task ${m.task}`
      ),
      `${r.moves.length} move(s): ${r.reason}`,
    ];
    print(ctx, lines.join("\n"));
  },
});

/** The host commands, by name. */
export const HOST_COMMANDS = {
  "host list": list,
  "host drain": drain,
  "host enable": enable,
  "host shutdown": shutdown,
  "host rebalance": rebalance,
};
