/**
 * `ucloud network create | list | show | delete`: private VXLAN segments
 * and public bridge networks, each with its IPv6 /64. `network create`
 * checks its flags as the API would, so a mistake is told before any
 * request.
 *
 * @module
 */
import { NAME_RULE, noArgs, oneArg } from "./args.ts";
import type { FlagReader } from "./args.ts";
import {
  type Network,
  type NetworkInput,
  NETWORKS,
  resolve,
} from "./client.ts";
import { command, type Input } from "./command.ts";
import { listCommand } from "./list_command.ts";
import { UsageError } from "./errors.ts";
import { type Column, formatFields, print, printJson, when } from "./output.ts";

const BRIDGE_RE = /^[a-zA-Z0-9_.-]{1,15}$/;
const VXLAN_MODES = ["multicast", "unicast"];

/**
 * `network create` flags as the request body: only what was given, so the
 * API's defaults apply to the rest.
 */
function networkInput(read: FlagReader, topic: string[]): NetworkInput {
  const name = read.name("name")!;
  const kind = read.has("public") ? "public" as const : undefined;
  const bridge = read.text("bridge");
  const prefix = read.text("prefix");
  const ipv4 = read.text("ipv4");
  const mode = read.text("mode");
  const problem = (message: string) => new UsageError(message, topic);
  if (kind) {
    if (bridge === undefined) {
      throw problem("--public needs --bridge (the hosts' bridge, e.g. br0)");
    }
    if (prefix === undefined) {
      throw problem("--public needs --prefix (the IPv6 /64 of the bridge)");
    }
    if (mode !== undefined) {
      throw problem("--mode is for private networks only, not with --public");
    }
  } else if (bridge !== undefined) {
    throw problem("--bridge needs --public: private networks have no bridge");
  }
  if (bridge !== undefined && !BRIDGE_RE.test(bridge)) {
    throw problem(
      `--bridge must be 1-15 letters, digits, '_', '.' or '-', got "${bridge}"`,
    );
  }
  if (mode !== undefined && !VXLAN_MODES.includes(mode)) {
    throw problem(
      `--mode must be ${VXLAN_MODES.join(" or ")}, got "${mode}"`,
    );
  }
  if (prefix !== undefined) {
    const [address, length] = prefix.split("/");
    if (length !== "64" || !isIpv6(address)) {
      throw problem(
        `--prefix must be an IPv6 /64 such as 2001:db8:1::/64, got "${prefix}"`,
      );
    }
  }
  const v4problem = ipv4 === undefined ? null : ipv4SubnetProblem(ipv4);
  if (v4problem) throw problem(`--ipv4 ${v4problem}`);
  if (read.has("dhcp4") && ipv4 === undefined) {
    throw problem("--dhcp4 needs --ipv4 (the subnet DHCPv4 serves)");
  }
  const dhcp = read.has("dhcp6") || read.has("dhcp4")
    ? { v6: read.has("dhcp6"), v4: read.has("dhcp4") }
    : undefined;
  const input: NetworkInput = {
    name,
    kind,
    prefix,
    ipv4,
    mode: mode as NetworkInput["mode"],
    bridge,
    dhcp,
  };
  return Object.fromEntries(
    Object.entries(input).filter(([, v]) => v !== undefined),
  ) as NetworkInput;
}

/** Whether `text` is an IPv6 address written with hex groups and `::`. */
function isIpv6(text: string): boolean {
  const halves = text.split("::");
  if (halves.length > 2) return false;
  const groups = halves.flatMap((h) => h === "" ? [] : h.split(":"));
  if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  return halves.length === 2 ? groups.length < 8 : groups.length === 8;
}

/** What is wrong with an IPv4 subnet `a.b.c.d/len` (/8 to /30), or null. */
function ipv4SubnetProblem(text: string): string | null {
  const m = text.match(
    /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/,
  );
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const length = m ? Number(m[5]) : NaN;
  if (!m || octets.some((o) => o > 255) || !(length >= 8 && length <= 30)) {
    return `must be an IPv4 subnet from /8 to /30 such as 10.0.0.0/24, got "${text}"`;
  }
  const address = octets.reduce((a, o) => a * 256 + o, 0);
  const base = address - address % 2 ** (32 - length);
  if (base === address) return null;
  const dotted = [24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256);
  return `${text} has host bits set: the subnet is ${
    dotted.join(".")
  }/${length}`;
}

/**
 * How messages name a network: `network lan (net-1)`, or `network net-1`
 * when the name is unknown.
 *
 * @example
 * ```ts
 * networkLabel("net-1", "lan"); // "network lan (net-1)"
 * ```
 */
export function networkLabel(id: string, name?: string): string {
  return name === undefined ? `network ${id}` : `network ${name} (${id})`;
}

/** "private, fd00:0:0:1::/64, VNI 4096 (multicast), IPv4 10.0.0.0/24". */
function networkSummary(net: Network): string {
  return [
    net.kind,
    net.prefix,
    net.vni === undefined
      ? undefined
      : `VNI ${net.vni}${net.mode ? ` (${net.mode})` : ""}`,
    net.bridge && `bridge ${net.bridge}`,
    net.ipv4 && `IPv4 ${net.ipv4}`,
  ].filter(Boolean).join(", ");
}

const NETWORK_COLUMNS: Column<Network>[] = [
  { header: "ID", value: (n) => n.id },
  { header: "NAME", value: (n) => n.name },
  { header: "KIND", value: (n) => n.kind },
  { header: "PREFIX", value: (n) => n.prefix },
  { header: "IPV4", value: (n) => n.ipv4 ?? "-" },
  { header: "VNI", value: (n) => n.vni ?? "-", align: "right" },
  { header: "BRIDGE", value: (n) => n.bridge ?? "-" },
  { header: "VMS", value: (n) => n.vmCount ?? n.vms.length, align: "right" },
];

/** A network's VMs: the ids shown, and how many more it has. */
function vmsField(net: Network): string {
  if (!net.vms.length) return "none";
  const more = (net.vmCount ?? 0) - net.vms.length;
  return net.vms.join(", ") + (more > 0 ? ` and ${more} more` : "");
}

function networkFields(net: Network): string {
  const dhcp = [net.dhcp.v6 && "DHCPv6", net.dhcp.v4 && "DHCPv4"]
    .filter(Boolean).join(", ");
  return formatFields([
    ["id", net.id],
    ["name", net.name],
    ["owner", net.owner],
    ["kind", net.kind],
    ["prefix", net.prefix],
    ["ipv4", net.ipv4],
    ["vni", net.vni],
    ["mode", net.mode],
    ["group", net.group],
    ["bridge", net.bridge],
    ["ra", net.ra ? "yes" : "no"],
    ["dhcp", dhcp || "no"],
    ["vms", vmsField(net)],
    ["created", when(net.createdAt)],
  ]);
}

const create = command({
  summary: "Create a network: a private VXLAN segment with its own IPv6 /64",
  usage: "ucloud network create --name NAME [flags]",
  flags: {
    "--name NAME": NAME_RULE,
    "--public": "a public network on the hosts' bridge (admins only)",
    "--bridge BRIDGE": "public: the host bridge, e.g. br0 (needs --public)",
    "--prefix PREFIX":
      "the IPv6 /64 (admins only; needed with --public; default: the next " +
      "free /64 of the pool)",
    "--ipv4 SUBNET": "a legacy IPv4 subnet, /8 to /30, e.g. 10.0.0.0/24",
    "--mode MODE": "private: VXLAN multicast or unicast (default: the API's)",
    "--dhcp6": "serve DHCPv6 besides router advertisements",
    "--dhcp4": "serve DHCPv4 in the IPv4 subnet (needs --ipv4)",
  },
  examples: [
    "ucloud network create --name lan",
    "ucloud network create --name legacy --ipv4 10.0.0.0/24 --dhcp4",
    "ucloud network create --name pub --public --bridge br0 " +
    "--prefix 2001:db8:1::/64",
  ],
  parse({ read, args, topic }: Input) {
    read.required("name");
    noArgs(args, topic);
    return { input: networkInput(read, topic) };
  },
  async run(args, ctx) {
    const net = await ctx.client.networks.create(args.input);
    if (ctx.json) return printJson(ctx, net);
    print(
      ctx,
      `${networkLabel(net.id, net.name)} created: ${networkSummary(net)}`,
    );
  },
});

const list = listCommand({
  summary: "List networks: yours and the public ones",
  topic: "network",
  fetch: (client) => client.networks.list(),
  columns: NETWORK_COLUMNS,
});

/** `network show` and `network delete`: the one network. */
function parseOne({ args, topic }: Input) {
  return { network: oneArg(args, "network id or name", topic) };
}

const show = command({
  summary: "Show one network",
  usage: "ucloud network show ID|NAME [--json]",
  flags: {},
  examples: ["ucloud network show lan"],
  parse: parseOne,
  async run(args, ctx) {
    const net = await resolve(ctx.client, NETWORKS, args.network);
    return ctx.json ? printJson(ctx, net) : print(ctx, networkFields(net));
  },
});

const remove = command({
  summary: "Delete a network no VM has a NIC in",
  usage: "ucloud network delete ID|NAME [--json]",
  flags: {},
  examples: ["ucloud network delete lan"],
  parse: parseOne,
  async run(args, ctx) {
    const net = await resolve(ctx.client, NETWORKS, args.network);
    const r = await ctx.client.networks.delete(net.id);
    if (ctx.json) return printJson(ctx, r);
    print(ctx, `${networkLabel(net.id, net.name)} deleted`);
  },
});

/** The network commands, by name. */
export const NETWORK_COMMANDS = {
  "network create": create,
  "network list": list,
  "network show": show,
  "network delete": remove,
};
