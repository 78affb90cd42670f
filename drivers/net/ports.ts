/**
 * The ports (VM taps and other devices) on the bridges of a sync: missing
 * taps made (down, on no bridge, labelled ucloud's), ports no longer wanted
 * taken off their bridge (our taps deleted), and ports joined to their
 * bridge and brought up once their rules are in place. A port whose
 * command fails is left out through `leaveOut` (retried next sync); the
 * others go on.
 *
 * @example
 * ```ts
 * report.added.push(...await createTaps(ports, links, step, leaveOut, signal));
 * await attachPorts(ports, links, step, leaveOut, signal);
 * ```
 *
 * @module
 */
import type { Step } from "./exec.ts";
import { isOurTap, type Link } from "./host_state.ts";
import { DEVICE_ALIAS } from "./names.ts";
import { ipv6Sysctl } from "./sysctl.ts";
import type { NftTable } from "./nft.ts";
import type { PortPlan } from "./plan.ts";
import type { HostNetState, PortSpec } from "./types.ts";

/** Leaves a port out of this sync with why; `retry`: the next sync tries again. */
export type LeaveOut = (x: PortPlan, reason: string, retry?: boolean) => void;

/**
 * Renames our tap of each port that still has its `formerName` (a name of
 * an older release) to the port's name, unless a device has that name
 * already or another port claims the same former name (then neither is
 * renamed: the tap is held, see {@linkcode claimedFormerNames}). A tap
 * must be down to be renamed: it is taken down, renamed, and brought up
 * again with its rules (`attachPorts`); qemu keeps its open tap whatever
 * its name. Returns the renamed ports as `<former>><name>`; `links` must be
 * listed again afterwards.
 */
export async function renameFormerTaps(
  ports: Map<string, PortPlan>,
  links: Map<string, Link>,
  claims: Map<string, number>,
  step: Step,
  leaveOut: LeaveOut,
  signal?: AbortSignal,
): Promise<string[]> {
  const renamed: string[] = [];
  for (const x of [...ports.values()]) {
    const { name, formerName } = x.port;
    if (!formerName || formerName === name || claims.get(formerName) !== 1) {
      continue;
    }
    const l = links.get(formerName);
    if (!l || !isOurTap(l) || links.has(name)) continue;
    try {
      await step(`take down tap ${formerName}`, "ip", [
        "link",
        "set",
        formerName,
        "down",
      ], signal);
      await step(`rename tap ${formerName} to ${name}`, "ip", [
        "link",
        "set",
        formerName,
        "name",
        name,
      ], signal);
    } catch (err) {
      signal?.throwIfAborted();
      leaveOut(x, message(err), true);
      continue;
    }
    renamed.push(`${formerName}>${name}`);
  }
  return renamed;
}

/**
 * How many ports of a state claim each former name. One claimed by two
 * ports (VMs whose old hashed names collided) is never renamed nor
 * removed: which VM holds it cannot be told, and removing it would cut
 * that VM off.
 */
export function claimedFormerNames(
  ports: Iterable<PortSpec>,
): Map<string, number> {
  const claims = new Map<string, number>();
  for (const port of ports) {
    if (port.formerName && port.formerName !== port.name) {
      claims.set(port.formerName, (claims.get(port.formerName) ?? 0) + 1);
    }
  }
  return claims;
}

/**
 * The ports a sync leaves as they are (device, rules, bridge): those of
 * `state.keep` and `leftOut`, with the former tap names of those, and the
 * former names two ports claim (see {@linkcode claimedFormerNames}).
 */
export function heldPorts(
  state: HostNetState,
  leftOut: string[],
): Set<string> {
  const formerOf = new Map(
    state.ports.flatMap((p) => p.formerName ? [[p.name, p.formerName]] : []),
  );
  const names = [...state.keep ?? [], ...leftOut];
  return new Set([
    ...names,
    ...names.flatMap((n) => formerOf.get(n) ?? []),
    ...[...claimedFormerNames(state.ports)].flatMap(([name, n]) =>
      n > 1 ? [name] : []
    ),
  ]);
}

/**
 * Makes the taps of `ports` that `links` lacks, owned by `user` when
 * given; returns their names.
 */
export async function createTaps(
  ports: Map<string, PortPlan>,
  links: Map<string, Link>,
  step: Step,
  leaveOut: LeaveOut,
  { user, signal }: { user?: string; signal?: AbortSignal } = {},
): Promise<string[]> {
  const added: string[] = [];
  for (const x of [...ports.values()]) {
    const { port } = x;
    if (links.has(port.name)) continue;
    try {
      await step(`create tap ${port.name}`, "ip", [
        "tuntap",
        "add",
        "dev",
        port.name,
        "mode",
        "tap",
        ...(user ? ["user", user] : []),
      ], signal);
      await step(`label tap ${port.name}`, "ip", [
        "link",
        "set",
        port.name,
        "alias",
        DEVICE_ALIAS,
      ], signal);
    } catch (err) {
      signal?.throwIfAborted();
      leaveOut(x, message(err), true);
      continue;
    }
    added.push(port.name);
  }
  return added;
}

/**
 * Sets `hostSysctls` (bridges, VXLANs) and IPv6 off on every port, in one
 * `sysctl` run. When that fails, the host's are set alone (their failure
 * is the host's) and each port's on its own: a port whose sysctl fails (a
 * device without IPv6) is left out, the others go on.
 */
export async function setSysctls(
  hostSysctls: string[],
  ports: Map<string, PortPlan>,
  step: Step,
  leaveOut: LeaveOut,
  signal?: AbortSignal,
): Promise<void> {
  const sysctl = (what: string, settings: string[]) =>
    step(what, "sysctl", ["-q", "-w", ...settings], signal);
  const own = (x: PortPlan) => ipv6Sysctl(x.port.name, "disable_ipv6", 1);
  const all = [...hostSysctls, ...[...ports.values()].map(own)];
  if (!all.length) return;
  try {
    await sysctl("set sysctls", all);
    return;
  } catch (err) {
    signal?.throwIfAborted();
    if (!ports.size) throw err;
  }
  if (hostSysctls.length) await sysctl("set sysctls", hostSysctls);
  for (const x of [...ports.values()]) {
    try {
      await sysctl(`set the sysctls of port ${x.port.name}`, [own(x)]);
    } catch (err) {
      signal?.throwIfAborted();
      leaveOut(x, message(err), true);
    }
  }
}

/** The ports we have: those in our table's ports map and our taps. */
export function ourPorts(
  table: NftTable | null,
  links: Map<string, Link>,
): Set<string> {
  const out = new Set([...table?.ports.keys() ?? []]);
  for (const l of links.values()) if (isOurTap(l)) out.add(l.name);
  return out;
}

/**
 * Takes each of `names` off its bridge (see `dropPort`); returns those
 * something was done to.
 */
export async function dropPorts(
  names: Iterable<string>,
  links: Map<string, Link>,
  step: Step,
  signal?: AbortSignal,
): Promise<string[]> {
  const out: string[] = [];
  for (const name of names) {
    if (await dropPort(name, links, step, signal)) out.push(name);
  }
  return out;
}

/**
 * Joins each port to its network's bridge with the network's MTU and
 * brings it up, unless it is so already.
 */
export async function attachPorts(
  ports: Map<string, PortPlan>,
  links: Map<string, Link>,
  step: Step,
  leaveOut: LeaveOut,
  signal?: AbortSignal,
): Promise<void> {
  for (const x of [...ports.values()]) {
    const { port, net } = x;
    const l = links.get(port.name);
    if (l && l.master === net.bridge && l.up && l.mtu === net.mtu) continue;
    try {
      await step(
        `attach port ${port.name} to bridge ${net.bridge}`,
        "ip",
        [
          "link",
          "set",
          port.name,
          "master",
          net.bridge,
          "mtu",
          String(net.mtu),
          "up",
        ],
        signal,
      );
    } catch (err) {
      signal?.throwIfAborted();
      leaveOut(x, message(err), true);
    }
  }
}

/**
 * Takes a port off its bridge: our taps are deleted, other devices only
 * leave the bridge and go down. True when something was done.
 */
async function dropPort(
  name: string,
  links: Map<string, Link>,
  step: Step,
  signal?: AbortSignal,
): Promise<boolean> {
  const l = links.get(name);
  if (!l) return false;
  if (isOurTap(l)) {
    await step(
      `delete tap ${name}`,
      "ip",
      ["link", "del", name],
      signal,
    );
    return true;
  }
  if (!l.master) return false;
  await step(`detach port ${name}`, "ip", [
    "link",
    "set",
    name,
    "nomaster",
    "down",
  ], signal);
  return true;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
