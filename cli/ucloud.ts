#!/usr/bin/env -S deno run --allow-net --allow-env=UCLOUD_API,XDG_CONFIG_HOME,HOME --allow-read --allow-write
/**
 * `ucloud`: the command-line client of the ucloud API. Besides the Deno
 * runtime it imports only the shared TOTP code (`core/totp_token.ts`, which
 * reaches neither etcd nor subprocesses); `deno bundle` makes one file of it.
 *
 * Exit codes: 0 ok, 1 API or operation error, 2 usage error.
 *
 * @example
 * ```sh
 * deno run --allow-net --allow-env=UCLOUD_API,XDG_CONFIG_HOME,HOME --allow-read --allow-write cli/ucloud.ts \
 *   vm create --name web1 --cpus 1 --memory 128
 * ```
 *
 * @module
 */
import {
  hotp,
  NAME_RE as OTP_NAME_RE,
  totpCounter,
} from "../core/totp_token.ts";

/** A VM as the API returns it (`Vm` in `core/schemas.ts`). */
export interface Vm {
  id: string;
  owner: string;
  spec: {
    name: string;
    cpus: number;
    memory: number;
    image: string;
    /** GiB of local disk, when asked for. */
    disk?: number;
    /** The rebalancer may stop it while running and start it elsewhere. */
    movable?: boolean;
  };
  /** Absent from APIs older than networks. */
  nics?: Nic[];
  desired: string;
  status: {
    phase: string;
    host?: string;
    reason?: string;
    handle?: Record<string, unknown>;
    /** Crashes within the restart window, oldest first. */
    crashes?: { at: string; reason: string }[];
    /** Packets each NIC's port filter dropped, by slot, and when last. */
    spoofDrops?: Record<string, { packets: number; at: string }>;
    updatedAt: string;
  };
  createdAt: string;
}

/** How often the VM crashed lately and why, for `vm show`. */
function crashLine(vm: Vm): string | undefined {
  const c = vm.status.crashes ?? [];
  if (!c.length) return undefined;
  const last = c[c.length - 1];
  return `${c.length} recently, last ${when(last.at)}: ${last.reason}`;
}

/**
 * A NIC of a VM (`Nic` in `core/schemas.ts`): slot `N` is the guest's
 * `ethN`; `ipv6` is the SLAAC (EUI-64) address the VM gets in the network.
 */
export interface Nic {
  slot: number;
  network: string;
  mac: string;
  ipv6: string;
  ipv4?: string;
  bridge?: string;
  state: string;
}

/** A network as the API returns it (`Network` in `core/schemas.ts`). */
export interface Network {
  id: string;
  name: string;
  owner: string;
  kind: string;
  /** The IPv6 /64. */
  prefix: string;
  /** The legacy IPv4 subnet. */
  ipv4?: string;
  /** Private networks: the VXLAN segment. */
  vni?: number;
  mode?: string;
  group?: string;
  /** Public networks: the hosts' bridge. */
  bridge?: string;
  /** Hosts send router advertisements for `prefix`. */
  ra: boolean;
  dhcp: { v6: boolean; v4: boolean };
  /** VMs with a NIC in the network (empty for another owner's). */
  vms: string[];
  createdAt: string;
}

/** What `POST /v1/networks` takes. */
export interface NetworkInput {
  name: string;
  kind?: "private" | "public";
  prefix?: string;
  ipv4?: string;
  mode?: "multicast" | "unicast";
  bridge?: string;
  dhcp?: { v6: boolean; v4: boolean };
}

/** A task as the API returns it (`Task` in `core/schemas.ts`). */
export interface Task {
  id: string;
  kind: string;
  target: string;
  payload: { vm?: unknown };
  state: string;
  attempts: number;
  maxAttempts: number;
  notBefore: number;
  createdAt: string;
  updatedAt: string;
  worker?: string;
  progress?: string;
  result?: unknown;
  error?: string;
  history: { at: string; state: string; worker?: string; message?: string }[];
}

/** A host as `GET /v1/hosts` lists it. */
export interface HostView {
  name: string;
  /** `diskMiB` only on hosts whose VM disks are local. */
  capacity: { cpus: number; memoryMiB: number; diskMiB?: number };
  usage: { cpus: number; memoryMiB: number; diskMiB?: number; vms: number };
  state: string;
  alive: boolean;
  /** Until when the fencer holds the lease for the next worker process. */
  handover?: string;
  /** An ordered shutdown; `done` once its worker exited after the drain. */
  shutdown?: { at: string; by: string; done?: string };
  incarnation?: string;
  started?: string;
  /** Ids of the VMs reserved on the host. */
  vms: string[];
  /** The host's last heartbeat (lease keep-alive), alive hosts only. */
  lastHeartbeat?: string;
  addresses: string[];
  os: string;
  drivers: string[];
}

/** What `POST /v1/maintenance/rebalance` answers. */
export interface RebalanceResult {
  ran: boolean;
  by: string;
  at: string;
  reason: string;
  drains: { host: string; task: string }[];
  moves: (PlannedMove & { task: string })[];
}

/** One move of a rebalance plan. */
export interface PlannedMove {
  vm: string;
  from: string;
  to: string;
  why: string;
  phase: string;
}

/** What `GET /v1/maintenance/rebalance` answers: a plan, nothing done. */
export interface RebalancePlan {
  reason: string;
  drains: { host: string }[];
  moves: PlannedMove[];
}

/** What create, start, stop, delete, attach and detach answer. */
interface Operation {
  vm: Vm;
  task: Task | null;
}

const DEFAULT_API = "http://127.0.0.1:8750";
const DEFAULT_REALM = "ucloud";
const DEFAULT_TIMEOUT_SECONDS = 120;
const DRAIN_TIMEOUT_SECONDS = 600;
/** The API's limit of `vm stop --timeout` (api/vm_power.ts). */
const MAX_POWER_TIMEOUT_SECONDS = 3600;
/** The default of a host's `worker.stopTimeoutSeconds`. */
const HOST_STOP_TIMEOUT_SECONDS = 60;
const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const NAME_RULE =
  "1-63 lowercase letters, digits or '-', not starting or ending with '-'";
const HOST_RE = /^[a-z0-9][a-z0-9.-]{0,62}$/;
const HOST_RULE =
  "1-63 lowercase letters, digits, '.' or '-', starting with a letter or digit";
/** What the API takes as an id; every VM or network name is one too. */
const REF_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** NICs per VM, slots 0 to 7. */
const MAX_NICS = 8;
const BRIDGE_RE = /^[a-zA-Z0-9_.-]{1,15}$/;
const VXLAN_MODES = ["multicast", "unicast"];
const TASK_STATES = ["queued", "running", "succeeded", "failed", "cancelled"];

/**
 * An error the CLI reports as `error: <message>` and exits with `exitCode`.
 *
 * @example
 * ```ts
 * throw new CliError("Cannot find vm web1: no VM has this id or name");
 * ```
 */
export class CliError extends Error {
  override name = "CliError";
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

/**
 * Bad command-line input: exit code 2. `topic` names the command whose help
 * applies; `showHelp` prints that help instead of a one-line hint.
 *
 * @example
 * ```ts
 * throw new UsageError("--cpus must be an integer from 1 to 64", ["vm", "create"]);
 * ```
 */
export class UsageError extends CliError {
  override name = "UsageError";
  constructor(
    message: string,
    readonly topic: string[] = [],
    readonly showHelp = false,
  ) {
    super(message, 2);
  }
}

/**
 * An error answer of the API, `{error: {status, code, message, field?}}`.
 *
 * @example
 * ```ts
 * const err = new ApiError(400, "invalid", "image not found", "image");
 * err.message; // "image not found (field: image)"
 * ```
 */
export class ApiError extends CliError {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(field ? `${message} (field: ${field})` : message);
  }
}

// ---------------------------------------------------------------- arguments

type Wait = { timeoutSeconds: number } | null;

/** What `parseArgs()` understood: one command with its validated input. */
export type ParsedArgs =
  & { api?: string; json: boolean }
  & (
    | { command: "help"; topic: string[] }
    | {
      command: "vm create";
      input: {
        name: string;
        cpus: number;
        memory: number;
        image?: string;
        disk?: number;
        /** Network ids or names, resolved to ids before the request. */
        networks?: string[];
        movable?: boolean;
      };
      idempotencyKey?: string;
      wait: Wait;
    }
    | {
      command: "vm list" | "network list" | "host list";
    }
    | { command: "host rebalance"; dryRun: boolean }
    | { command: "host drain" | "host shutdown"; host: string; wait: Wait }
    | { command: "host enable"; host: string }
    | { command: "vm show"; vm: string }
    | { command: "vm start" | "vm delete"; vm: string; wait: Wait }
    | {
      command: "vm stop" | "vm reboot";
      vm: string;
      /** The hard stop (reset) at once. */
      force: boolean;
      /** The guest's time to shut down (reboot) by itself; absent: the host's. */
      timeoutSeconds?: number;
      wait: Wait;
    }
    | { command: "vm attach"; vm: string; network: string; wait: Wait }
    | {
      command: "vm detach";
      vm: string;
      /** Which NIC: its slot, or the one in a network (id or name). */
      nic: { slot: number } | { network: string };
      wait: Wait;
    }
    | { command: "network create"; input: NetworkInput }
    | { command: "network show" | "network delete"; network: string }
    | {
      command: "task list";
      query: { state?: string; kind?: string; vm?: string; limit?: number };
    }
    | { command: "task show"; task: string }
    | {
      command: "login";
      name?: string;
      realm: string;
      passwordStdin: boolean;
      replace: boolean;
    }
    | { command: "whoami" | "logout" }
  );

type CommandName = Exclude<ParsedArgs["command"], "help">;

interface CommandSpec {
  summary: string;
  usage: string;
  /** Flags besides the global ones, with their help lines. */
  flags: Record<string, string>;
  examples: string[];
}

const WAIT_FLAGS = {
  "--wait": "wait until the VM gets there (the default)",
  "--no-wait": "return as soon as the API accepted the request",
  "--timeout SECONDS":
    `stop waiting after this long (default ${DEFAULT_TIMEOUT_SECONDS})`,
};

const NIC_WAIT_FLAGS = {
  ...WAIT_FLAGS,
  "--wait": "wait until a running VM has the change (the default)",
};

const COMMANDS: Record<CommandName, CommandSpec> = {
  "vm create": {
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
      "--idempotency-key KEY":
        "retrying with the same key returns the first VM, not a new one",
      ...WAIT_FLAGS,
    },
    examples: [
      "ucloud vm create --name web1 --cpus 1 --memory 128",
      "ucloud vm create --name db1 --cpus 2 --memory 2048 --image tiny --no-wait",
      "ucloud vm create --name data1 --cpus 1 --memory 512 --disk 20",
      "ucloud vm create --name app1 --cpus 1 --memory 128 --network lan --network dmz",
    ],
  },
  "vm list": {
    summary: "List VMs",
    usage: "ucloud vm list [--json]",
    flags: {},
    examples: ["ucloud vm list"],
  },
  "vm show": {
    summary: "Show one VM",
    usage: "ucloud vm show ID|NAME [--json]",
    flags: {},
    examples: ["ucloud vm show web1"],
  },
  "vm start": {
    summary: "Start a stopped VM and wait until it runs",
    usage: "ucloud vm start ID|NAME [flags]",
    flags: WAIT_FLAGS,
    examples: ["ucloud vm start web1"],
  },
  "vm stop": {
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
  },
  "vm reboot": {
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
  },
  "vm delete": {
    summary: "Delete a VM and wait until it is gone",
    usage: "ucloud vm delete ID|NAME [flags]",
    flags: WAIT_FLAGS,
    examples: ["ucloud vm delete web1 --no-wait"],
  },
  "vm attach": {
    summary: "Give a VM a NIC in a network (hot-plugged into a running VM)",
    usage: "ucloud vm attach ID|NAME --network ID|NAME [flags]",
    flags: {
      "--network ID|NAME": "the network of the new NIC",
      ...NIC_WAIT_FLAGS,
    },
    examples: ["ucloud vm attach web1 --network lan"],
  },
  "vm detach": {
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
  },
  "network create": {
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
  },
  "network list": {
    summary: "List networks: yours and the public ones",
    usage: "ucloud network list [--json]",
    flags: {},
    examples: ["ucloud network list"],
  },
  "network show": {
    summary: "Show one network",
    usage: "ucloud network show ID|NAME [--json]",
    flags: {},
    examples: ["ucloud network show lan"],
  },
  "network delete": {
    summary: "Delete a network no VM has a NIC in",
    usage: "ucloud network delete ID|NAME [--json]",
    flags: {},
    examples: ["ucloud network delete lan"],
  },
  "host list": {
    summary: "List hosts with their capacity, usage, state and heartbeat",
    usage: "ucloud host list [--json]",
    flags: {},
    examples: ["ucloud host list"],
  },
  "host drain": {
    summary: "Stop placing VMs on a host and move its VMs elsewhere",
    usage: "ucloud host drain NAME [flags]",
    flags: {
      "--wait": "wait until no VM is left on the host (the default)",
      "--no-wait": "return as soon as the API accepted the request",
      "--timeout SECONDS":
        `stop waiting after this long (default ${DRAIN_TIMEOUT_SECONDS})`,
    },
    examples: ["ucloud host drain h1", "ucloud host drain h1 --no-wait"],
  },
  "host enable": {
    summary: "Let a drained host take VMs again",
    usage: "ucloud host enable NAME [--json]",
    flags: {},
    examples: ["ucloud host enable h1"],
  },
  "host shutdown": {
    summary: "Drain a host, then stop its worker (for maintenance reboots)",
    usage: "ucloud host shutdown NAME [flags]",
    flags: {
      "--wait": "wait until the worker has exited (the default)",
      "--no-wait": "return as soon as the API accepted the request",
      "--timeout SECONDS":
        `stop waiting after this long (default ${DRAIN_TIMEOUT_SECONDS})`,
    },
    examples: ["ucloud host shutdown h1", "ucloud host enable h1"],
  },
  "host rebalance": {
    summary: "Run a rebalance round now: drains, and moves to idle hosts",
    usage: "ucloud host rebalance [--dry-run] [--json]",
    flags: {
      "--dry-run": "show what a round would move, from where to where and " +
        "why; enqueue nothing",
    },
    examples: ["ucloud host rebalance --dry-run", "ucloud host rebalance"],
  },
  "task list": {
    summary: "List tasks, newest first",
    usage: "ucloud task list [--state STATE] [--kind KIND] [--vm ID|NAME] " +
      "[--limit N]",
    flags: {
      "--state STATE": TASK_STATES.join(", "),
      "--kind KIND": "e.g. vm.create",
      "--vm ID|NAME": "tasks of this VM",
      "--limit N": "at most N tasks",
    },
    examples: ["ucloud task list --state failed", "ucloud task list --vm web1"],
  },
  "task show": {
    summary: "Show one task with its history",
    usage: "ucloud task show ID [--json]",
    flags: {},
    examples: ["ucloud task show t-0123"],
  },
  "login": {
    summary:
      "Get a TOTP seed with the LDAP password and keep it for later commands",
    usage:
      "ucloud login [--name NAME] [--realm REALM] [--password-stdin] [--replace]",
    flags: {
      "--name NAME": "the LDAP user name (asked when absent)",
      "--realm REALM": `the realm (default ${DEFAULT_REALM})`,
      "--password-stdin": "read the LDAP password from stdin",
      "--replace":
        "replace an existing seed (the old one and its devices stop working)",
    },
    examples: [
      "ucloud login --name alice",
      'echo "$PW" | ucloud login --name alice --password-stdin',
    ],
  },
  "whoami": {
    summary: "Show who the API sees",
    usage: "ucloud whoami [--json]",
    flags: {},
    examples: ["ucloud whoami"],
  },
  "logout": {
    summary: "Forget the stored seed and bearer token",
    usage: "ucloud logout",
    flags: {},
    examples: ["ucloud logout"],
  },
};

const GLOBAL_FLAGS = {
  "--api URL": `API address (default $UCLOUD_API, else ${DEFAULT_API})`,
  "--json": "print the JSON the API answers instead of a table",
  "-h, --help": "show help",
};

const GROUPS = ["vm", "network", "host", "task"];
/** Commands of one word. */
const SINGLES = ["login", "whoami", "logout"];
const VALUE_FLAGS = new Set([
  "api",
  "timeout",
  "name",
  "cpus",
  "memory",
  "image",
  "disk",
  "idempotency-key",
  "state",
  "kind",
  "vm",
  "limit",
  "realm",
  "network",
  "slot",
  "prefix",
  "ipv4",
  "mode",
  "bridge",
]);
/** Value flags that may be given more than once (where a command allows). */
const REPEATABLE_FLAGS = new Set(["network"]);
const BOOLEAN_FLAGS = new Set([
  "json",
  "force",
  "help",
  "wait",
  "no-wait",
  "password-stdin",
  "replace",
  "public",
  "dhcp6",
  "dhcp4",
  "movable",
  "dry-run",
]);

/** The flag names (`cpus`, `no-wait`) a command accepts besides the globals. */
function flagNames(spec: CommandSpec): Set<string> {
  const names = Object.keys(spec.flags).map((f) => f.split(" ")[0].slice(2));
  return new Set([...names, "api", "json", "help"]);
}

/**
 * Parses the command line into one command with validated flags. Throws
 * `UsageError` for anything wrong, naming the flag.
 *
 * @example
 * ```ts
 * const args = parseArgs(["vm", "create", "--name", "web1", "--cpus", "1", "--memory", "128"]);
 * args.command; // "vm create"
 * ```
 */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const words: string[] = [];
  const flags = new Map<string, string | true>();
  /** Every value of a repeatable flag, in order. */
  const lists = new Map<string, string[]>();
  let problem: string | undefined;
  let onlyWords = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (onlyWords || !arg.startsWith("-") || arg === "-") {
      words.push(arg);
      continue;
    }
    if (arg === "--") {
      onlyWords = true;
      continue;
    }
    if (!arg.startsWith("--") && arg !== "-h") {
      problem ??= `unknown flag ${arg}`;
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg === "-h"
      ? "help"
      : arg.slice(2, eq === -1 ? undefined : eq);
    let value: string | true = true;
    if (VALUE_FLAGS.has(name)) {
      const next = argv[i + 1];
      if (eq !== -1) value = arg.slice(eq + 1);
      else if (next === undefined || next.startsWith("--")) {
        problem ??= `--${name} needs a value`;
        continue;
      } else {
        value = next;
        i++;
      }
    } else if (!BOOLEAN_FLAGS.has(name)) {
      problem ??= `unknown flag --${name}`;
      continue;
    } else if (eq !== -1) {
      problem ??= `--${name} takes no value`;
      continue;
    }
    if (REPEATABLE_FLAGS.has(name) && typeof value === "string") {
      lists.set(name, [...lists.get(name) ?? [], value]);
    } else if (flags.has(name)) problem ??= `--${name} is given twice`;
    flags.set(name, value);
  }

  const globals = { api: apiFlag(flags.get("api")), json: flags.has("json") };
  if (words[0] === "help") {
    if (problem) throw new UsageError(problem);
    return { ...globals, command: "help", topic: helpTopic(words.slice(1)) };
  }
  if (words.length === 0) {
    if (problem) throw new UsageError(problem);
    if (flags.has("help")) return { ...globals, command: "help", topic: [] };
    throw new UsageError("missing command", [], true);
  }
  if (SINGLES.includes(words[0])) {
    return parseSingle(words, flags, globals, problem);
  }
  const [group, sub] = words;
  if (!GROUPS.includes(group)) {
    throw new UsageError(`unknown command '${group}'`);
  }
  if (sub === undefined || sub === "help") {
    if (problem) throw new UsageError(problem, [group]);
    if (sub === "help") {
      const topic = helpTopic([group, ...words.slice(2)]);
      return { ...globals, command: "help", topic };
    }
    if (flags.has("help")) {
      return { ...globals, command: "help", topic: [group] };
    }
    throw new UsageError(`missing ${group} command`, [group], true);
  }
  const command = `${group} ${sub}`;
  if (!isCommand(command)) {
    throw new UsageError(`unknown command '${command}'`, [group]);
  }
  const topic = [group, sub];
  if (problem) throw new UsageError(problem, topic);
  if (flags.has("help")) return { ...globals, command: "help", topic };
  const allowed = flagNames(COMMANDS[command]);
  for (const name of flags.keys()) {
    if (!allowed.has(name)) {
      throw new UsageError(
        `--${name} is not a flag of 'ucloud ${command}'`,
        topic,
      );
    }
  }
  const read = new FlagReader(flags, topic, lists);
  const args = words.slice(2);
  switch (command) {
    case "vm create": {
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
      return {
        ...globals,
        command,
        // Only when given, so the request stays what the user typed.
        input: {
          ...input,
          ...(disk === undefined ? {} : { disk }),
          ...(networks ? { networks } : {}),
          ...(read.has("movable") ? { movable: true } : {}),
        },
        idempotencyKey: read.text("idempotency-key"),
        wait: read.wait(),
      };
    }
    case "vm attach": {
      read.required("network");
      return {
        ...globals,
        command,
        vm: oneArg(args, "VM id or name", topic),
        network: read.ref("network", "a network id or name")!,
        wait: read.wait(),
      };
    }
    case "vm detach": {
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
      return {
        ...globals,
        command,
        vm,
        nic: slot === undefined ? { network: network! } : { slot },
        wait: read.wait(),
      };
    }
    case "network create": {
      read.required("name");
      noArgs(args, topic);
      return { ...globals, command, input: networkInput(read, topic) };
    }
    case "network show":
    case "network delete":
      return {
        ...globals,
        command,
        network: oneArg(args, "network id or name", topic),
      };
    case "vm show":
      return { ...globals, command, vm: oneArg(args, "VM id or name", topic) };
    case "vm start":
    case "vm delete":
      return {
        ...globals,
        command,
        vm: oneArg(args, "VM id or name", topic),
        wait: read.wait(),
      };
    case "vm stop":
    case "vm reboot": {
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
        ...globals,
        command,
        vm,
        force: read.has("force"),
        ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }),
        wait,
      };
    }
    case "task list": {
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
      return { ...globals, command, query };
    }
    case "task show":
      return { ...globals, command, task: oneArg(args, "task id", topic) };
    case "host drain":
    case "host shutdown":
      return {
        ...globals,
        command,
        host: hostArg(args, topic),
        wait: read.wait(DRAIN_TIMEOUT_SECONDS),
      };
    case "host enable":
      return { ...globals, command, host: hostArg(args, topic) };
    case "vm list":
    case "network list":
    case "host list":
      noArgs(args, topic);
      return { ...globals, command };
    case "host rebalance":
      noArgs(args, topic);
      return { ...globals, command, dryRun: read.has("dry-run") };
    default:
      throw new UsageError(`unknown command '${command}'`, [group]);
  }
}

/** `login`, `whoami`, `logout`: commands without a group. */
function parseSingle(
  words: string[],
  flags: Map<string, string | true>,
  globals: { api?: string; json: boolean },
  problem: string | undefined,
): ParsedArgs {
  const command = words[0] as "login" | "whoami" | "logout";
  const topic = [command];
  if (problem) throw new UsageError(problem, topic);
  if (flags.has("help")) return { ...globals, command: "help", topic };
  const allowed = flagNames(COMMANDS[command]);
  for (const name of flags.keys()) {
    if (!allowed.has(name)) {
      throw new UsageError(
        `--${name} is not a flag of 'ucloud ${command}'`,
        topic,
      );
    }
  }
  noArgs(words.slice(1), topic);
  if (command !== "login") return { ...globals, command };
  const read = new FlagReader(flags, topic);
  const name = read.text("name");
  const realm = read.text("realm") ?? DEFAULT_REALM;
  for (const [flag, v] of [["name", name], ["realm", realm]]) {
    if (v !== undefined && !OTP_NAME_RE.test(v)) {
      throw new UsageError(
        `--${flag} must be 1-128 letters, digits or ._@+- (no / or :), got "${v}"`,
        topic,
      );
    }
  }
  return {
    ...globals,
    command,
    name,
    realm,
    passwordStdin: flags.has("password-stdin"),
    replace: flags.has("replace"),
  };
}

function isCommand(command: string): command is CommandName {
  return Object.hasOwn(COMMANDS, command);
}

function helpTopic(words: string[]): string[] {
  if (words.length === 0) return [];
  if (SINGLES.includes(words[0])) {
    if (words.length > 1) {
      throw new UsageError(`no help for unknown command '${words.join(" ")}'`);
    }
    return words;
  }
  if (!GROUPS.includes(words[0])) {
    throw new UsageError(`no help for unknown command '${words.join(" ")}'`);
  }
  if (words.length === 1) return words;
  const command = `${words[0]} ${words[1]}`;
  if (words.length > 2 || !isCommand(command)) {
    throw new UsageError(
      `no help for unknown command '${words.join(" ")}'`,
      [words[0]],
    );
  }
  return words;
}

function apiFlag(value: string | true | undefined): string | undefined {
  return typeof value === "string" ? apiUrl(value, "--api") : undefined;
}

function apiUrl(value: string, source: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw new UsageError(
      `${source} must be an http(s) URL such as ${DEFAULT_API}, got "${value}"`,
    );
  }
  return value.replace(/\/+$/, "");
}

function noArgs(args: string[], topic: string[]): void {
  if (args.length > 0) {
    throw new UsageError(`unexpected argument '${args[0]}'`, topic);
  }
}

function oneArg(args: string[], what: string, topic: string[]): string {
  if (args.length === 0) throw new UsageError(`missing ${what}`, topic);
  noArgs(args.slice(1), topic);
  return args[0];
}

function hostArg(args: string[], topic: string[]): string {
  const name = oneArg(args, "host name", topic);
  if (!HOST_RE.test(name)) {
    throw new UsageError(
      `host name must be ${HOST_RULE}, got "${name}"`,
      topic,
    );
  }
  return name;
}

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

/** Reads and validates flag values; every message names the flag. */
class FlagReader {
  constructor(
    private readonly flags: Map<string, string | true>,
    private readonly topic: string[],
    /** Every value of each repeatable flag. */
    private readonly lists = new Map<string, string[]>(),
  ) {}

  has(name: string): boolean {
    return this.flags.has(name);
  }

  required(...names: string[]): void {
    const missing = names.filter((n) => !this.flags.has(n));
    if (missing.length > 0) {
      const list = missing.map((n) => `--${n}`).join(", ");
      throw new UsageError(`missing required flag ${list}`, this.topic);
    }
  }

  text(name: string): string | undefined {
    const value = this.flags.get(name);
    if (value === undefined) return undefined;
    if ((this.lists.get(name)?.length ?? 0) > 1) {
      throw new UsageError(`--${name} is given twice`, this.topic);
    }
    if (typeof value !== "string" || value === "") {
      throw new UsageError(`--${name} must not be empty`, this.topic);
    }
    return value;
  }

  name(flag: string): string | undefined {
    const value = this.text(flag);
    if (value !== undefined && !NAME_RE.test(value)) {
      throw new UsageError(
        `--${flag} must be ${NAME_RULE}, got "${value}"`,
        this.topic,
      );
    }
    return value;
  }

  /** An id or name of something the API has (`what`: "a network id or name"). */
  ref(flag: string, what: string): string | undefined {
    const value = this.text(flag);
    if (value !== undefined) this.#checkRef(flag, value, what);
    return value;
  }

  /** Every value of a repeatable `ref()` flag; each at most once. */
  refs(flag: string, what: string): string[] | undefined {
    const values = this.lists.get(flag);
    values?.forEach((value, i) => {
      this.#checkRef(flag, value, what);
      if (values.indexOf(value) !== i) {
        throw new UsageError(`--${flag} ${value} is given twice`, this.topic);
      }
    });
    return values;
  }

  #checkRef(flag: string, value: string, what: string): void {
    if (value === "") {
      throw new UsageError(`--${flag} must not be empty`, this.topic);
    }
    if (!REF_RE.test(value)) {
      throw new UsageError(
        `--${flag} must be ${what} (lowercase letters, digits and '-'), ` +
          `got "${value}"`,
        this.topic,
      );
    }
  }

  integer(
    name: string,
    min: number,
    max: number,
    rule: string,
  ): number | undefined {
    const value = this.flags.get(name);
    if (value === undefined) return undefined;
    const n = typeof value === "string" && /^-?\d+$/.test(value)
      ? Number(value)
      : NaN;
    if (!(n >= min && n <= max)) {
      throw new UsageError(
        `--${name} must be ${rule}, got "${value}"`,
        this.topic,
      );
    }
    return n;
  }

  wait(defaultSeconds = DEFAULT_TIMEOUT_SECONDS): Wait {
    if (this.flags.has("wait") && this.flags.has("no-wait")) {
      throw new UsageError(
        "--wait and --no-wait exclude each other",
        this.topic,
      );
    }
    const timeout = this.flags.get("timeout");
    const seconds = timeout === undefined ? defaultSeconds : Number(timeout);
    if (!(seconds > 0 && seconds <= 86_400)) {
      throw new UsageError(
        `--timeout must be a number of seconds above 0 and at most 86400, got "${timeout}"`,
        this.topic,
      );
    }
    return this.flags.has("no-wait") ? null : { timeoutSeconds: seconds };
  }
}

// ---------------------------------------------------------------- help

function helpText(topic: string[]): string {
  const lines: string[] = [];
  const globals = formatFlags(GLOBAL_FLAGS);
  if (topic.length === 2 || SINGLES.includes(topic[0])) {
    const spec = COMMANDS[topic.join(" ") as CommandName];
    lines.push(`${spec.summary}.`, "", `Usage: ${spec.usage}`, "");
    if (Object.keys(spec.flags).length > 0) {
      lines.push("Flags:", ...formatFlags(spec.flags), "");
    }
    lines.push("Global flags:", ...globals, "", "Examples:");
    lines.push(...spec.examples.map((e) => `  ${e}`));
    return lines.join("\n") + "\n";
  }
  const group = topic[0];
  const names = (Object.keys(COMMANDS) as CommandName[])
    .filter((c) =>
      group === undefined ? !SINGLES.includes(c) : c.startsWith(`${group} `)
    );
  if (group === undefined) {
    lines.push(
      "ucloud: manage the VMs, networks, hosts and tasks of a ucloud cloud.",
      "",
    );
  }
  lines.push(`Usage: ucloud ${group ?? "<group>"} <command> [flags]`, "");
  lines.push("Commands:");
  lines.push(
    ...formatTable(names, [
      { header: "", value: (c) => `  ${c}` },
      { header: "", value: (c) => COMMANDS[c].summary },
    ]).split("\n").slice(1),
  );
  if (group === undefined) {
    lines.push(
      ...formatTable(SINGLES as CommandName[], [
        { header: "", value: (c) => `  ${c}` },
        { header: "", value: (c) => COMMANDS[c].summary },
      ]).split("\n").slice(1),
    );
  }
  lines.push("", "Global flags:", ...globals, "");
  lines.push(
    `Run 'ucloud ${group ? `${group} ` : ""}<command> --help' for its flags.`,
  );
  return lines.join("\n") + "\n";
}

function formatFlags(flags: Record<string, string>): string[] {
  return formatTable(Object.entries(flags), [
    { header: "", value: ([flag]) => `  ${flag}` },
    { header: "", value: ([, text]) => text },
  ]).split("\n").slice(1);
}

// ---------------------------------------------------------------- output

/** One column of `formatTable()`. */
export interface Column<T> {
  header: string;
  value: (row: T) => string | number;
  align?: "left" | "right";
}

/**
 * Formats rows as a table: a header line, then one line per row, columns
 * two spaces apart, padded to the widest cell, no trailing spaces.
 *
 * @example
 * ```ts
 * formatTable([{ id: "vm-1", cpus: 2 }], [
 *   { header: "ID", value: (r) => r.id },
 *   { header: "CPUS", value: (r) => r.cpus, align: "right" },
 * ]);
 * // "ID    CPUS\nvm-1     2"
 * ```
 */
export function formatTable<T>(
  rows: readonly T[],
  columns: readonly Column<T>[],
): string {
  const cells = [
    columns.map((c) => c.header),
    ...rows.map((row) => columns.map((c) => String(c.value(row)))),
  ];
  const widths = columns.map((_, i) =>
    Math.max(...cells.map((line) => line[i].length))
  );
  return cells.map((line) =>
    line.map((cell, i) =>
      columns[i].align === "right"
        ? cell.padStart(widths[i])
        : cell.padEnd(widths[i])
    ).join("  ").trimEnd()
  ).join("\n");
}

/** Aligned `key: value` lines; pairs without a value are left out. */
function formatFields(fields: [string, string | number | undefined][]): string {
  const shown = fields.filter((f): f is [string, string | number] =>
    f[1] !== undefined && f[1] !== ""
  );
  const width = Math.max(...shown.map(([key]) => key.length)) + 1;
  return shown.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value}`)
    .join("\n");
}

/** "4s", "3m", "5h", "2d" since `iso`; "-" when it does not parse. */
function age(iso: string, now = Date.now()): string {
  const seconds = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (Number.isNaN(seconds)) return "-";
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

function when(iso: string): string {
  return `${iso} (${age(iso)} ago)`;
}

function taskVm(task: Task): string {
  return typeof task.payload?.vm === "string" ? task.payload.vm : "-";
}

function label(vm: Vm): string {
  return `vm ${vm.spec.name} (${vm.id})`;
}

const VM_COLUMNS: Column<Vm>[] = [
  { header: "ID", value: (vm) => vm.id },
  { header: "NAME", value: (vm) => vm.spec.name },
  { header: "CPUS", value: (vm) => vm.spec.cpus, align: "right" },
  { header: "MEM", value: (vm) => `${vm.spec.memory}Mi`, align: "right" },
  { header: "PHASE", value: (vm) => vm.status.phase },
  { header: "HOST", value: (vm) => vm.status.host ?? "-" },
];

const HOST_COLUMNS: Column<HostView>[] = [
  { header: "NAME", value: (h) => h.name },
  { header: "STATE", value: hostState },
  { header: "ALIVE", value: (h) => h.alive ? "yes" : "no" },
  {
    header: "CPUS",
    value: (h) => `${h.usage.cpus}/${h.capacity.cpus}`,
    align: "right",
  },
  {
    header: "MEM(MiB)",
    value: (h) => `${h.usage.memoryMiB}/${h.capacity.memoryMiB}`,
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

/** The VM's fields, then its NICs; `names`: network names by id. */
function vmFields(vm: Vm, names: Map<string, string>): string {
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

/** `network lan (net-1)`, or `network net-1` when the name is unknown. */
function networkLabel(id: string, name?: string): string {
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

/** "MAC 52:54:00:12:34:56, IPv6 fd00::5054:ff:fe12:3456, IPv4 10.0.0.2". */
function nicAddresses(nic: Nic): string {
  return `MAC ${nic.mac}, IPv6 ${nic.ipv6}` +
    (nic.ipv4 ? `, IPv4 ${nic.ipv4}` : "");
}

const NETWORK_COLUMNS: Column<Network>[] = [
  { header: "ID", value: (n) => n.id },
  { header: "NAME", value: (n) => n.name },
  { header: "KIND", value: (n) => n.kind },
  { header: "PREFIX", value: (n) => n.prefix },
  { header: "IPV4", value: (n) => n.ipv4 ?? "-" },
  { header: "VNI", value: (n) => n.vni ?? "-", align: "right" },
  { header: "BRIDGE", value: (n) => n.bridge ?? "-" },
  { header: "VMS", value: (n) => n.vms.length, align: "right" },
];

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
    ["vms", net.vms.length ? net.vms.join(", ") : "none"],
    ["created", when(net.createdAt)],
  ]);
}

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

// ---------------------------------------------------------------- API client

/** Where the CLI writes; `isTerminal` allows rewriting the progress line. */
export interface Output {
  write(text: string): void;
  isTerminal?(): boolean;
  columns?(): number;
}

type Api = <T>(
  method: string,
  path: string,
  init?: { body?: unknown; headers?: Record<string, string> },
) => Promise<T>;

function connect(
  base: string,
  fetchFn: typeof globalThis.fetch,
  session?: Session,
): Api {
  return async <T>(
    method: string,
    path: string,
    init: { body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<T> => {
    const send = async (auth: Record<string, string>) => {
      try {
        return await fetchFn(`${base}${path}`, {
          method,
          headers: {
            accept: "application/json",
            ...(init.body === undefined
              ? {}
              : { "content-type": "application/json" }),
            ...auth,
            ...init.headers,
          },
          body: init.body === undefined ? undefined : JSON.stringify(init.body),
        });
      } catch (err) {
        const why = networkReason(err);
        throw new CliError(
          `the ucloud API is not reachable at ${base} (${why}). ` +
            "Start it with 'deno task up', or point --api or UCLOUD_API at " +
            "a running API.",
        );
      }
    };
    const auth = session ? await session.headers() : {};
    let response = await send(auth);
    if (response.status === 401 && session && auth.authorization) {
      // The cached bearer token was revoked or the API's key changed.
      await response.body?.cancel();
      response = await send(await session.headers(true));
    }
    const text = await response.text();
    let data: unknown;
    try {
      data = text === "" ? undefined : JSON.parse(text);
    } catch {
      data = undefined;
    }
    if (!response.ok) {
      const err = apiError(response, data, text);
      if (response.status === 401 && session && !auth.authorization) {
        throw new ApiError(
          err.status,
          err.code,
          `${err.message} (run 'ucloud login' first)`,
          err.field,
        );
      }
      throw err;
    }
    if (data === undefined) {
      throw new CliError(
        `the API answered ${method} ${path} with ${response.status} ` +
          "but without a JSON body",
      );
    }
    return data as T;
  };
}

/** "connection refused", else the innermost message of a fetch failure. */
function networkReason(err: unknown): string {
  let reason = String(err);
  for (let e = err; e instanceof Error; e = e.cause) {
    if (/connection refused/i.test(e.message)) return "connection refused";
    reason = e.message;
  }
  return reason;
}

function apiError(response: Response, data: unknown, text: string): ApiError {
  const error = (data as { error?: Record<string, unknown> } | undefined)
    ?.error;
  if (error && typeof error.message === "string") {
    return new ApiError(
      response.status,
      String(error.code ?? ""),
      error.message,
      typeof error.field === "string" ? error.field : undefined,
    );
  }
  const body = text.trim().slice(0, 200);
  return new ApiError(
    response.status,
    "",
    `the API answered ${response.status} ${response.statusText}` +
      (body ? `: ${body}` : ""),
  );
}

const path = {
  vm: (id: string) => `/v1/vms/${encodeURIComponent(id)}`,
  network: (id: string) => `/v1/networks/${encodeURIComponent(id)}`,
  task: (id: string) => `/v1/tasks/${encodeURIComponent(id)}`,
  host: (name: string) => `/v1/hosts/${encodeURIComponent(name)}`,
};

/** What `path` answers, or null when the API answers 404. */
async function getOrNull<T>(api: Api, path: string): Promise<T | null> {
  try {
    return await api<T>("GET", path);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/** The VM with this id, or null when the API answers 404. */
function getVm(api: Api, id: string): Promise<Vm | null> {
  return getOrNull<Vm>(api, path.vm(id));
}

/** A kind of resource that commands name by id or name. */
interface Kind<T> {
  /** In messages: "vm", "VM", "VMs". */
  word: string;
  noun: string;
  nouns: string;
  path: (id: string) => string;
  list: string;
  name: (item: T) => string;
}

const VMS: Kind<Vm> = {
  word: "vm",
  noun: "VM",
  nouns: "VMs",
  path: path.vm,
  list: "/v1/vms",
  name: (vm) => vm.spec.name,
};

const NETWORKS: Kind<Network> = {
  word: "network",
  noun: "network",
  nouns: "networks",
  path: path.network,
  list: "/v1/networks",
  name: (net) => net.name,
};

/**
 * The item whose id or, failing that, whose name is `ref`; null when none.
 * Several with that name are an error: the user must pick an id.
 */
async function find<T extends { id: string }>(
  api: Api,
  kind: Kind<T>,
  ref: string,
): Promise<T | null> {
  try {
    const item = await getOrNull<T>(api, kind.path(ref));
    if (item) return item;
  } catch (err) {
    // A name that is not a valid id may be refused as a bad request.
    if (!(err instanceof ApiError && err.status === 400)) throw err;
  }
  const { items } = await api<{ items: T[] }>("GET", kind.list);
  const named = items.filter((item) => kind.name(item) === ref);
  if (named.length > 1) {
    const ids = named.map((item) => item.id).join(", ");
    throw new CliError(
      `Cannot pick ${kind.word} ${ref}: ${named.length} ${kind.nouns} have ` +
        `this name (${ids}); use an id`,
    );
  }
  return named[0] ?? null;
}

async function resolve<T extends { id: string }>(
  api: Api,
  kind: Kind<T>,
  ref: string,
): Promise<T> {
  const item = await find(api, kind, ref);
  if (!item) {
    throw new CliError(
      `Cannot find ${kind.word} ${ref}: no ${kind.noun} has this id or name`,
    );
  }
  return item;
}

/** Network names by id, for showing NICs; networks not visible are left out. */
async function networkNames(api: Api): Promise<Map<string, string>> {
  const { items } = await api<{ items: Network[] }>("GET", NETWORKS.list);
  return new Map(items.map((net) => [net.id, net.name]));
}

/** The task, or once it succeeded by forwarding, the task it forwarded to. */
async function followTask(api: Api, id: string): Promise<Task> {
  let task = await api<Task>("GET", path.task(id));
  while (task.state === "succeeded") {
    const next = (task.result as { forwarded?: unknown } | undefined)
      ?.forwarded;
    if (typeof next !== "string") break;
    task = await api<Task>("GET", path.task(next));
  }
  return task;
}

// ---------------------------------------------------------------- waiting

type Goal = "running" | "stopped" | "deleted";

/** One progress line on stderr; rewritten in place on a terminal. */
class Progress {
  #last = "";
  #open = false;
  readonly #tty: boolean;
  constructor(private readonly out: Output) {
    this.#tty = out.isTerminal?.() ?? false;
  }

  show(status: string, prefix: string): void {
    if (status === this.#last) return;
    this.#last = status;
    const line = `${prefix} ${status}`;
    if (!this.#tty) return this.out.write(`${line}\n`);
    const columns = this.out.columns?.() ?? 80;
    const fitted = line.length < columns
      ? line
      : `${line.slice(0, columns - 2)}…`;
    this.out.write(`\r\x1b[K${fitted}`);
    this.#open = true;
  }

  end(): void {
    if (this.#open) this.out.write("\n");
    this.#open = false;
  }
}

function describe(vm: Vm, task: Task | null, gone: boolean): string {
  const where = vm.status.host ? ` on ${vm.status.host}` : "";
  // Why it waits (e.g. no host has room), as `vm show` tells it.
  const why = !gone && vm.status.reason ? ` (${vm.status.reason})` : "";
  const parts = [
    `${label(vm)}: ${gone ? "deleted" : vm.status.phase}${where}${why}`,
  ];
  if (task) {
    const progress = task.progress ? `: ${task.progress}` : "";
    parts.push(
      `task ${task.id} ${task.kind} ${task.state} ` +
        `(attempt ${task.attempts}/${task.maxAttempts})${progress}`,
    );
  }
  return parts.join(" | ");
}

interface WaitContext {
  api: Api;
  stderr: Output;
  pollIntervalMs: number;
}

/**
 * Polls the task and the VM until the VM reaches `goal`; prints a progress
 * line on stderr at every change. Throws `CliError` when the task fails, the
 * VM fails or crashes (after the operation began), or time runs out.
 */
async function waitFor(
  { api, stderr, pollIntervalMs }: WaitContext,
  start: Operation,
  goal: Goal,
  timeoutSeconds: number,
): Promise<Operation> {
  const began = Date.now();
  const deadline = began + timeoutSeconds * 1000;
  const since = start.task ? Date.parse(start.task.createdAt) : NaN;
  const progress = new Progress(stderr);
  let { vm, task } = start;
  let gone = false;
  let movedOn = false;
  try {
    while (true) {
      const elapsed = `[${((Date.now() - began) / 1000).toFixed(1)}s]`;
      progress.show(describe(vm, task, gone), elapsed);
      const phase = vm.status.phase;
      if (gone || phase === goal) return { vm, task };
      if (task?.state === "failed" || task?.state === "cancelled") {
        throw new CliError(
          `task ${task.id} (${task.kind}) ${task.state}: ` +
            (task.error ?? vm.status.reason ?? "no reason given"),
        );
      }
      if (
        goal !== "deleted" &&
        (phase === "failed" || phase === "crashed" || phase === "error")
      ) {
        // A failure from before this operation does not count.
        if (!task || movedOn || Date.parse(vm.status.updatedAt) > since) {
          throw new CliError(
            `${label(vm)} ${phase}: ${vm.status.reason ?? "no reason given"}`,
          );
        }
      } else movedOn = true;
      if (Date.now() >= deadline) {
        const taskState = task ? `, task ${task.id} ${task.state}` : "";
        const why = vm.status.reason ? ` (${vm.status.reason})` : "";
        throw new CliError(
          `Cannot wait longer than ${timeoutSeconds}s for ${label(vm)} to be ` +
            `${goal}: phase is ${phase}${why}${taskState}. The operation goes on ` +
            `in the background: see 'ucloud vm show ${vm.id}', or wait ` +
            "longer with --timeout",
        );
      }
      await sleep(Math.min(pollIntervalMs, deadline - Date.now()));
      const [nextTask, nextVm] = await Promise.all([
        task ? api<Task>("GET", path.task(task.id)) : null,
        getVm(api, vm.id),
      ]);
      task = nextTask;
      if (nextVm) vm = nextVm;
      else if (goal === "deleted") gone = true;
      else throw new CliError(`${label(vm)} was deleted while waiting`);
    }
  } finally {
    progress.end();
  }
}

/**
 * Polls the VM and its `vm.nics` task until NIC `slot` is in (`attach`: the
 * task, followed to another host when forwarded, succeeded) or gone
 * (`detach`); prints a progress line on stderr at every change. Throws
 * `CliError` when the task fails, the VM is deleted, or time runs out.
 */
async function waitNic(
  { api, stderr, pollIntervalMs }: WaitContext,
  start: Operation,
  slot: number,
  change: "attach" | "detach",
  timeoutSeconds: number,
): Promise<Operation> {
  const began = Date.now();
  const deadline = began + timeoutSeconds * 1000;
  const progress = new Progress(stderr);
  let { vm, task } = start;
  try {
    while (true) {
      const elapsed = `[${((Date.now() - began) / 1000).toFixed(1)}s]`;
      progress.show(describe(vm, task, false), elapsed);
      const done = change === "attach"
        ? !task || task.state === "succeeded"
        : !vm.nics?.some((n) => n.slot === slot);
      if (done) return { vm, task };
      if (task?.state === "failed" || task?.state === "cancelled") {
        throw new CliError(
          `task ${task.id} (${task.kind}) ${task.state}: ` +
            (task.error ?? "no reason given"),
        );
      }
      if (Date.now() >= deadline) {
        const goal = change === "attach" ? "plugged in" : "removed";
        const state = task
          ? `task ${task.id} is ${task.state}`
          : "the NIC is still detaching";
        throw new CliError(
          `Cannot wait longer than ${timeoutSeconds}s for NIC ${slot} of ` +
            `${label(vm)} to be ${goal}: ${state}. The change goes on in ` +
            `the background: see 'ucloud vm show ${vm.id}', or wait longer ` +
            "with --timeout",
        );
      }
      await sleep(Math.min(pollIntervalMs, deadline - Date.now()));
      const [nextTask, nextVm] = await Promise.all([
        task ? followTask(api, task.id) : null,
        getVm(api, vm.id),
      ]);
      if (!nextVm) throw new CliError(`${label(vm)} was deleted while waiting`);
      task = nextTask;
      vm = nextVm;
    }
  } finally {
    progress.end();
  }
}

/**
 * Polls the host list until `host` has no VM left; prints a progress line
 * on stderr at every change. Throws `CliError` when the drain task fails,
 * the host is enabled again, or time runs out.
 */
async function waitDrained(
  { api, stderr, pollIntervalMs }: WaitContext,
  start: { host: HostView; task: Task | null },
  timeoutSeconds: number,
): Promise<HostView> {
  const began = Date.now();
  const deadline = began + timeoutSeconds * 1000;
  const progress = new Progress(stderr);
  let { host, task } = start;
  try {
    while (true) {
      const elapsed = `[${((Date.now() - began) / 1000).toFixed(1)}s]`;
      const left = host.vms.length
        ? `${host.vms.length} VM(s) left: ${host.vms.join(", ")}`
        : "no VM left";
      const drain = task ? ` | task ${task.id} ${task.kind} ${task.state}` : "";
      progress.show(
        `host ${host.name}: ${host.state}, ${left}${drain}`,
        elapsed,
      );
      if (host.vms.length === 0) return host;
      if (host.state !== "draining") {
        throw new CliError(
          `host ${host.name} is ${host.state} again: the drain was undone`,
        );
      }
      if (task?.state === "failed" || task?.state === "cancelled") {
        throw new CliError(
          `task ${task.id} (${task.kind}) ${task.state}: ` +
            (task.error ?? "no reason given"),
        );
      }
      if (Date.now() >= deadline) {
        throw new CliError(
          `Cannot wait longer than ${timeoutSeconds}s for host ${host.name} ` +
            `to be drained: ${host.vms.length} VM(s) left. The drain goes on ` +
            `in the background: see 'ucloud host list', or wait longer with ` +
            "--timeout",
        );
      }
      await sleep(Math.min(pollIntervalMs, deadline - Date.now()));
      const [list, nextTask] = await Promise.all([
        api<{ items: HostView[] }>("GET", "/v1/hosts"),
        task ? api<Task>("GET", path.task(task.id)) : null,
      ]);
      const found = list.items.find((h) => h.name === host.name);
      if (!found) {
        throw new CliError(`host ${host.name} was removed while waiting`);
      }
      host = found;
      task = nextTask;
    }
  } finally {
    progress.end();
  }
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

/**
 * Waits for a drain (see {@linkcode waitDrained}), then until the host's
 * worker has exited (`shutdown.done`, no longer alive).
 */
async function waitShutdown(
  ctx: WaitContext,
  start: { host: HostView; task: Task | null },
  timeoutSeconds: number,
): Promise<HostView> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let host = await waitDrained(ctx, start, timeoutSeconds);
  while (!host.shutdown?.done || host.alive) {
    if (!host.shutdown) {
      throw new CliError(
        `host ${host.name} is ${host.state} again: the shutdown was called off`,
      );
    }
    if (Date.now() >= deadline) {
      throw new CliError(
        `Cannot wait longer than ${timeoutSeconds}s for the worker of host ` +
          `${host.name} to exit; see 'ucloud host list'`,
      );
    }
    await sleep(Math.min(ctx.pollIntervalMs, deadline - Date.now()));
    const list = await ctx.api<{ items: HostView[] }>("GET", "/v1/hosts");
    const found = list.items.find((h) => h.name === host.name);
    if (!found) {
      throw new CliError(`host ${host.name} was removed while waiting`);
    }
    host = found;
  }
  return host;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

// ---------------------------------------------------------------- credentials

/**
 * What `ucloud login` keeps in `$XDG_CONFIG_HOME/ucloud/config.json`
 * (`~/.config/ucloud/config.json`), readable only by the user.
 */
export interface StoredLogin {
  api: string;
  name: string;
  realm: string;
  /** The base32 TOTP seed: the CLI makes its own tokens from it. */
  seed: string;
}

/** A bearer token kept in `token.json` next to the config until it expires. */
interface CachedToken {
  api: string;
  name: string;
  realm: string;
  token: string;
  expiresAt: string;
  /** The TOTP step it was bought with: each step is accepted once. */
  step: number;
}

/** Files of the CLI; the seam of tests. */
export interface Files {
  /** The file's text, or null when it does not exist. */
  read(path: string): Promise<string | null>;
  /** Replaces the file with `text`, readable only by the user (0600). */
  writePrivate(path: string, text: string): Promise<void>;
  /** Removes the file when it exists. */
  remove(path: string): Promise<void>;
}

const denoFiles: Files = {
  async read(path) {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
    }
  },
  async writePrivate(path, text) {
    try {
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), {
        recursive: true,
        mode: 0o700,
      });
      const tmp = `${path}.${crypto.randomUUID()}.tmp`;
      await Deno.writeTextFile(tmp, text, { createNew: true, mode: 0o600 });
      await Deno.chmod(tmp, 0o600);
      await Deno.rename(tmp, path);
    } catch (err) {
      throw new CliError(`cannot write ${path}: ${(err as Error).message}`);
    }
  },
  async remove(path) {
    try {
      await Deno.remove(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new CliError(`cannot remove ${path}: ${(err as Error).message}`);
      }
    }
  },
};

/** `$XDG_CONFIG_HOME/ucloud`, else `$HOME/.config/ucloud`; null without both. */
function configDir(env: Record<string, string | undefined>): string | null {
  if (env.XDG_CONFIG_HOME) return `${env.XDG_CONFIG_HOME}/ucloud`;
  if (env.HOME) return `${env.HOME}/.config/ucloud`;
  return null;
}

/** The TOTP of the stored seed at `step`, from the shared TOTP code. */
function loginToken(seed: string, step: number): string {
  try {
    return hotp(seed, step);
  } catch {
    throw new CliError("the stored seed is not base32");
  }
}

/**
 * Authentication of one API base: the stored login (when it was made for
 * this API) and a cached bearer token, bought with a fresh TOTP when the
 * cached one is missing, about to expire, or refused.
 */
class Session {
  #login: StoredLogin | null | undefined;

  constructor(
    readonly base: string,
    readonly fetchFn: typeof globalThis.fetch,
    readonly files: Files,
    readonly dir: string | null,
    readonly now: () => number,
  ) {}

  get configPath(): string | null {
    return this.dir && `${this.dir}/config.json`;
  }

  get tokenPath(): string | null {
    return this.dir && `${this.dir}/token.json`;
  }

  /** The stored login, whatever API it is for. */
  async stored(): Promise<StoredLogin | null> {
    if (this.#login !== undefined) return this.#login;
    const text = this.configPath && await this.files.read(this.configPath);
    let login: StoredLogin | null = null;
    if (text) {
      try {
        const v = JSON.parse(text);
        if (
          typeof v.api === "string" && typeof v.name === "string" &&
          typeof v.realm === "string" && typeof v.seed === "string"
        ) login = v;
      } catch { /* reported below */ }
      if (!login) {
        throw new CliError(
          `${this.configPath} is not a ucloud login; run 'ucloud login' again`,
        );
      }
    }
    this.#login = login;
    return login;
  }

  /** The login for this API; credentials never go to another one. */
  async login(): Promise<StoredLogin | null> {
    const l = await this.stored();
    return l && l.api === this.base ? l : null;
  }

  async #cached(login: StoredLogin): Promise<CachedToken | null> {
    const text = this.tokenPath && await this.files.read(this.tokenPath);
    if (!text) return null;
    try {
      const t = JSON.parse(text) as CachedToken;
      return t.api === login.api && t.name === login.name &&
          t.realm === login.realm && typeof t.token === "string"
        ? t
        : null;
    } catch {
      return null;
    }
  }

  /** Headers that authenticate a request; none without a login. */
  async headers(fresh = false): Promise<Record<string, string>> {
    const login = await this.login();
    if (!login) return {};
    const cached = await this.#cached(login);
    let t = cached;
    if (
      fresh || !t || Date.parse(t.expiresAt) - 30_000 <= this.now()
    ) t = await this.#exchange(login, cached?.step ?? -1);
    return { authorization: `Bearer ${t.token}` };
  }

  /**
   * Buys the first bearer token of a new login. The name's current step may
   * be used already (by an earlier login or another client of the same
   * name): then the next step's token, which the API also accepts.
   */
  async prime(): Promise<void> {
    const login = await this.login();
    if (!login) throw new CliError("no stored login");
    try {
      await this.#exchange(login, -1);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) throw err;
      await this.#exchange(login, totpCounter(this.now()));
    }
  }

  /** Buys a bearer token with the TOTP of a step not used before. */
  async #exchange(login: StoredLogin, lastStep: number): Promise<CachedToken> {
    const current = totpCounter(this.now());
    const step = Math.max(current, lastStep + 1);
    if (step > current + 1) {
      throw new CliError(
        "the TOTP tokens of this half minute are used up; retry in 30 s",
      );
    }
    const api = connect(this.base, this.fetchFn);
    const answer = await api<{ token: string; expiresAt: string }>(
      "POST",
      "/v1/auth/token",
      {
        headers: {
          "X-Otp-Name": login.name,
          "X-Otp-Realm": login.realm,
          "X-Otp-Token": loginToken(login.seed, step),
        },
      },
    );
    const t: CachedToken = {
      api: login.api,
      name: login.name,
      realm: login.realm,
      token: answer.token,
      expiresAt: answer.expiresAt,
      step,
    };
    if (this.tokenPath) {
      await this.files.writePrivate(this.tokenPath, JSON.stringify(t) + "\n");
    }
    return t;
  }
}

/** Reads one line from the terminal; without echo when `hidden`. */
async function readLineFromTerminal(
  question: string,
  hidden: boolean,
): Promise<string> {
  const stdin = Deno.stdin;
  const tty = stdin.isTerminal();
  Deno.stderr.writeSync(new TextEncoder().encode(question));
  if (tty && hidden) stdin.setRaw(true);
  const bytes: number[] = [];
  try {
    const buf = new Uint8Array(1);
    while (true) {
      const n = await stdin.read(buf);
      if (n === null || n === 0) break;
      const b = buf[0];
      if (b === 3) throw new CliError("cancelled");
      if (b === 10 || b === 13) break;
      if (b === 127 || b === 8) {
        bytes.pop();
        continue;
      }
      bytes.push(b);
    }
  } finally {
    if (tty && hidden) {
      stdin.setRaw(false);
      Deno.stderr.writeSync(new TextEncoder().encode("\n"));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

// ---------------------------------------------------------------- commands

interface Context extends WaitContext {
  stdout: Output;
  json: boolean;
  session: Session;
  /** All of stdin (`--password-stdin`). */
  readStdin: () => Promise<string>;
  /** Asks on the terminal; `hidden` does not echo. */
  readLine: (question: string, hidden: boolean) => Promise<string>;
}

function print(ctx: Context, text: string): void {
  ctx.stdout.write(`${text}\n`);
}

function printJson(ctx: Context, data: unknown): void {
  print(ctx, JSON.stringify(data, null, 2));
}

const GOALS = {
  "vm create": "running",
  "vm start": "running",
  "vm stop": "stopped",
  "vm delete": "deleted",
} as const;

async function operate(
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

/**
 * `ucloud vm stop` and `ucloud vm reboot`: the request with `force` and
 * `timeoutSeconds`; `--wait` follows the VM to stopped (stop) or the task
 * to its end (reboot), then says how it went from the task's result.
 */
async function power(
  args: Extract<ParsedArgs, { command: "vm stop" | "vm reboot" }>,
  ctx: Context,
): Promise<void> {
  const { api } = ctx;
  const vm = await resolve(api, VMS, args.vm);
  const body = {
    ...(args.force ? { force: true } : {}),
    ...(args.timeoutSeconds ? { timeoutSeconds: args.timeoutSeconds } : {}),
  };
  const send = () =>
    api<Operation>("POST", `${path.vm(vm.id)}/${args.command.slice(3)}`, {
      body,
    });
  if (args.command === "vm stop") {
    return operate(ctx, args.command, args.wait, send, async (done) => {
      if (!done.task) return "";
      const r = (await followTask(api, done.task.id)).result as
        | { how?: string; ms?: number }
        | undefined;
      const secs = ((r?.ms ?? 0) / 1000).toFixed(1);
      if (r?.how === "shutdown") return `: the guest shut down in ${secs}s`;
      if (r?.how !== "forced") return "";
      return args.force
        ? ": stopped hard (--force)"
        : `: stopped hard after ${secs}s, the guest did not shut down in time`;
    });
  }
  const began = Date.now();
  const accepted = await send();
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

/**
 * Polls the operation's task (followed when forwarded) until it succeeded;
 * prints a progress line on stderr at every change. Throws `CliError`
 * when it fails or time runs out.
 */
async function waitTask(
  { api, stderr, pollIntervalMs }: WaitContext,
  start: Operation,
  timeoutSeconds: number,
): Promise<Task> {
  const began = Date.now();
  const deadline = began + timeoutSeconds * 1000;
  const progress = new Progress(stderr);
  let task = start.task!;
  try {
    while (true) {
      const elapsed = `[${((Date.now() - began) / 1000).toFixed(1)}s]`;
      progress.show(describe(start.vm, task, false), elapsed);
      if (task.state === "succeeded") return task;
      if (task.state === "failed" || task.state === "cancelled") {
        throw new CliError(
          `task ${task.id} (${task.kind}) ${task.state}: ` +
            (task.error ?? "no reason given"),
        );
      }
      if (Date.now() >= deadline) {
        throw new CliError(
          `Cannot wait longer than ${timeoutSeconds}s for task ${task.id} ` +
            `(${task.kind}): it is ${task.state}. It goes on in the ` +
            `background: see 'ucloud task show ${task.id}'`,
        );
      }
      await sleep(Math.min(pollIntervalMs, deadline - Date.now()));
      task = await followTask(api, task.id);
    }
  } finally {
    progress.end();
  }
}

/**
 * `ucloud vm attach`: a new NIC in a network. A VM on a host gets it
 * hot-plugged by a `vm.nics` task, which `--wait` follows; any other VM
 * gets it when it starts.
 */
async function attach(
  args: Extract<ParsedArgs, { command: "vm attach" }>,
  ctx: Context,
): Promise<void> {
  const { api } = ctx;
  const vm = await resolve(api, VMS, args.vm);
  const net = await resolve(api, NETWORKS, args.network);
  const began = Date.now();
  const accepted = await api<Operation>("POST", `${path.vm(vm.id)}/nics`, {
    body: { network: net.id },
  });
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
async function detach(
  args: Extract<ParsedArgs, { command: "vm detach" }>,
  ctx: Context,
): Promise<void> {
  const { api } = ctx;
  const vm = await resolve(api, VMS, args.vm);
  const nics = vm.nics ?? [];
  let nic: Nic | undefined;
  let names: Map<string, string>;
  if ("network" in args.nic) {
    const net = await resolve(api, NETWORKS, args.nic.network);
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
    names = await networkNames(api);
  }
  const { slot } = nic;
  const began = Date.now();
  const accepted = await api<Operation>(
    "DELETE",
    `${path.vm(vm.id)}/nics/${slot}`,
  );
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
 * bearer token bought with the first TOTP proves it works.
 */
async function login(
  args: Extract<ParsedArgs, { command: "login" }>,
  ctx: Context,
): Promise<void> {
  const { session } = ctx;
  const configPath = session.configPath;
  if (!configPath) {
    throw new CliError(
      "cannot tell where to store the login: set HOME or XDG_CONFIG_HOME",
    );
  }
  const name = args.name ??
    (await ctx.readLine("LDAP user name: ", false)).trim();
  if (!OTP_NAME_RE.test(name)) {
    throw new UsageError(`"${name}" is not a user name`, ["login"]);
  }
  const password = args.passwordStdin
    ? (await ctx.readStdin()).replace(/\r?\n$/, "")
    : await ctx.readLine(`LDAP password of ${name}: `, true);
  if (password === "") throw new UsageError("empty password", ["login"]);
  const plain = connect(session.base, session.fetchFn);
  let answer: { name: string; realm: string; seed: string };
  try {
    answer = await plain("POST", "/v1/auth/seed", {
      body: { name, password, replace: args.replace },
    });
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      throw new CliError(
        `${name} already has a TOTP seed. 'ucloud login --replace' makes a ` +
          "new one; the old one (and every device using it) stops working.",
      );
    }
    throw err;
  }
  if (answer.realm !== args.realm) {
    throw new CliError(
      `the API keeps users in realm ${answer.realm}, not ${args.realm}; ` +
        `run 'ucloud login --replace --realm ${answer.realm}'`,
    );
  }
  const stored: StoredLogin = {
    api: session.base,
    name: answer.name,
    realm: answer.realm,
    seed: answer.seed,
  };
  await session.files.writePrivate(
    configPath,
    JSON.stringify(stored, null, 2) + "\n",
  );
  if (session.tokenPath) await session.files.remove(session.tokenPath);
  const fresh = new Session(
    session.base,
    session.fetchFn,
    session.files,
    session.dir,
    session.now,
  );
  await fresh.prime();
  const me = await connect(session.base, session.fetchFn, fresh)<
    { name: string; admin: boolean }
  >("GET", "/v1/auth/whoami");
  if (ctx.json) return printJson(ctx, { ...me, api: session.base });
  print(
    ctx,
    `logged in to ${session.base} as ${me.name}${
      me.admin ? " (admin)" : ""
    }; the seed is in ${configPath} (only you can read it)`,
  );
}

async function run(args: ParsedArgs, ctx: Context): Promise<void> {
  const { api } = ctx;
  switch (args.command) {
    case "help":
      return print(ctx, helpText(args.topic).trimEnd());
    case "vm create": {
      const { networks, ...spec } = args.input;
      const ids: string[] = [];
      for (const ref of networks ?? []) {
        ids.push((await resolve(api, NETWORKS, ref)).id);
      }
      return operate(
        ctx,
        args.command,
        args.wait,
        () =>
          api<Operation>("POST", "/v1/vms", {
            body: networks ? { ...spec, networks: ids } : spec,
            headers: args.idempotencyKey
              ? { "Idempotency-Key": args.idempotencyKey }
              : {},
          }),
      );
    }
    case "vm stop":
    case "vm reboot":
      return power(args, ctx);
    case "vm start":
    case "vm delete": {
      const vm = await resolve(api, VMS, args.vm);
      const action = args.command.slice(3);
      return operate(
        ctx,
        args.command,
        args.wait,
        () =>
          action === "delete"
            ? api<Operation>("DELETE", path.vm(vm.id))
            : api<Operation>("POST", `${path.vm(vm.id)}/${action}`),
      );
    }
    case "vm list": {
      const list = await api<{ items: Vm[] }>("GET", "/v1/vms");
      if (ctx.json) return printJson(ctx, list);
      return print(ctx, formatTable(list.items, VM_COLUMNS));
    }
    case "vm show": {
      const vm = await resolve(api, VMS, args.vm);
      if (ctx.json) return printJson(ctx, vm);
      const names = vm.nics?.length ? await networkNames(api) : new Map();
      return print(ctx, vmFields(vm, names));
    }
    case "vm attach":
      return attach(args, ctx);
    case "vm detach":
      return detach(args, ctx);
    case "network create": {
      const net = await api<Network>("POST", "/v1/networks", {
        body: args.input,
      });
      if (ctx.json) return printJson(ctx, net);
      return print(
        ctx,
        `${networkLabel(net.id, net.name)} created: ${networkSummary(net)}`,
      );
    }
    case "network list": {
      const list = await api<{ items: Network[] }>("GET", NETWORKS.list);
      if (ctx.json) return printJson(ctx, list);
      return print(ctx, formatTable(list.items, NETWORK_COLUMNS));
    }
    case "network show": {
      const net = await resolve(api, NETWORKS, args.network);
      return ctx.json ? printJson(ctx, net) : print(ctx, networkFields(net));
    }
    case "network delete": {
      const net = await resolve(api, NETWORKS, args.network);
      const r = await api<{ deleted: string }>("DELETE", path.network(net.id));
      if (ctx.json) return printJson(ctx, r);
      return print(ctx, `${networkLabel(net.id, net.name)} deleted`);
    }
    case "host list": {
      const list = await api<{ items: HostView[] }>("GET", "/v1/hosts");
      if (ctx.json) return printJson(ctx, list);
      return print(ctx, formatTable(list.items, hostColumns(list.items)));
    }
    case "host drain": {
      const began = Date.now();
      const accepted = await api<{ host: HostView; task: Task | null }>(
        "POST",
        `${path.host(args.host)}/drain`,
      );
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
      if (ctx.json) return printJson(ctx, host);
      const took = ((Date.now() - began) / 1000).toFixed(1);
      return print(ctx, `host ${host.name} is drained (${took}s)`);
    }
    case "host enable": {
      const r = await api<{ host: HostView; task: Task | null }>(
        "POST",
        `${path.host(args.host)}/enable`,
      );
      if (ctx.json) return printJson(ctx, r);
      return print(
        ctx,
        r.task
          ? `host ${r.host.name} is active: new VMs may be placed on it`
          : `host ${r.host.name} was already active`,
      );
    }
    case "host shutdown": {
      const began = Date.now();
      const accepted = await api<{ host: HostView; task: Task | null }>(
        "POST",
        `${path.host(args.host)}/shutdown`,
      );
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
      return print(
        ctx,
        `host ${host.name} is shut down (${took}s): drained, worker stopped. ` +
          `After the maintenance, start its worker and run 'ucloud host ` +
          `enable ${host.name}'`,
      );
    }
    case "host rebalance": {
      if (args.dryRun) {
        const p = await api<RebalancePlan>("GET", "/v1/maintenance/rebalance");
        if (ctx.json) return printJson(ctx, p);
        return print(ctx, planLines(p).join("\n"));
      }
      const r = await api<RebalanceResult>(
        "POST",
        "/v1/maintenance/rebalance",
      );
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
      return print(ctx, lines.join("\n"));
    }
    case "task list": {
      const { state, kind, vm, limit } = args.query;
      const query = new URLSearchParams();
      if (state) query.set("state", state);
      if (kind) query.set("kind", kind);
      // A name is resolved among current VMs; else it may be a deleted VM's id.
      if (vm) query.set("vm", (await find(api, VMS, vm))?.id ?? vm);
      if (limit) query.set("limit", String(limit));
      const qs = query.size > 0 ? `?${query}` : "";
      const list = await api<{ items: Task[] }>("GET", `/v1/tasks${qs}`);
      if (ctx.json) return printJson(ctx, list);
      return print(ctx, formatTable(list.items, TASK_COLUMNS));
    }
    case "login":
      return login(args, ctx);
    case "whoami": {
      const me = await api<{ name: string; admin: boolean }>(
        "GET",
        "/v1/auth/whoami",
      );
      if (ctx.json) return printJson(ctx, me);
      return print(ctx, `${me.name}${me.admin ? " (admin)" : ""}`);
    }
    case "logout": {
      const { configPath, tokenPath } = ctx.session;
      if (configPath) await ctx.session.files.remove(configPath);
      if (tokenPath) await ctx.session.files.remove(tokenPath);
      return print(ctx, "logged out: the stored seed and token are removed");
    }
    case "task show": {
      const task = await api<Task>("GET", path.task(args.task));
      return ctx.json ? printJson(ctx, task) : print(ctx, taskFields(task));
    }
  }
}

// ---------------------------------------------------------------- main

/** Seams of `main()`; each defaults to the real thing. */
export interface MainOptions {
  fetch?: typeof globalThis.fetch;
  stdout?: Output;
  stderr?: Output;
  /** `UCLOUD_API`, `XDG_CONFIG_HOME`, `HOME`. */
  env?: Record<string, string | undefined>;
  /** How often to poll while waiting. */
  pollIntervalMs?: number;
  files?: Files;
  readStdin?: () => Promise<string>;
  readLine?: (question: string, hidden: boolean) => Promise<string>;
  now?: () => number;
}

/** An environment variable, or undefined when unset or not permitted. */
function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function denoOutput(file: typeof Deno.stdout): Output {
  const encoder = new TextEncoder();
  return {
    write(text) {
      const data = encoder.encode(text);
      let written = 0;
      while (written < data.length) {
        written += file.writeSync(data.subarray(written));
      }
    },
    isTerminal: () => file.isTerminal(),
    columns: () => Deno.consoleSize().columns,
  };
}

/**
 * Runs one command line and returns the exit code: 0 ok, 1 API or operation
 * error, 2 usage error. Never throws for those; prints `error: ...` instead.
 *
 * @example
 * ```ts
 * const code = await main(["vm", "list"], { env: { UCLOUD_API: "http://127.0.0.1:8750" } });
 * ```
 */
export async function main(
  argv: readonly string[],
  {
    fetch = globalThis.fetch,
    stdout = denoOutput(Deno.stdout),
    stderr = denoOutput(Deno.stderr),
    env = {
      UCLOUD_API: envVar("UCLOUD_API"),
      XDG_CONFIG_HOME: envVar("XDG_CONFIG_HOME"),
      HOME: envVar("HOME"),
    },
    pollIntervalMs = 250,
    files = denoFiles,
    readStdin = () => new Response(Deno.stdin.readable).text(),
    readLine = readLineFromTerminal,
    now = Date.now,
  }: MainOptions = {},
): Promise<number> {
  try {
    const args = parseArgs(argv);
    const dir = configDir(env);
    let base = args.api ??
      (env.UCLOUD_API ? apiUrl(env.UCLOUD_API, "UCLOUD_API") : undefined);
    if (base === undefined && args.command !== "help") {
      // Without --api or UCLOUD_API: the API of the stored login.
      const stored = await new Session("", fetch, files, dir, now).stored();
      base = stored?.api;
    }
    base ??= DEFAULT_API;
    const session = new Session(base, fetch, files, dir, now);
    const api = connect(base, fetch, session);
    await run(args, {
      api,
      stdout,
      stderr,
      json: args.json,
      pollIntervalMs,
      session,
      readStdin,
      readLine,
    });
    return 0;
  } catch (err) {
    if (err instanceof UsageError && err.showHelp) {
      stderr.write(`error: ${err.message}\n\n${helpText(err.topic)}`);
    } else if (err instanceof UsageError) {
      const command = ["ucloud", ...err.topic].join(" ");
      stderr.write(
        `error: ${err.message}\nRun '${command} --help' for usage.\n`,
      );
    } else {
      const message = err instanceof Error ? err.message : String(err);
      stderr.write(`error: ${message}\n`);
    }
    return err instanceof CliError ? err.exitCode : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
