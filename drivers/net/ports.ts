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
import type { NftTable } from "./nft.ts";
import type { PortPlan } from "./plan.ts";

/** Leaves a port out of this sync with why; `retry`: the next sync tries again. */
export type LeaveOut = (x: PortPlan, reason: string, retry?: boolean) => void;

/** Makes the taps of `ports` that `links` lacks; returns their names. */
export async function createTaps(
  ports: Map<string, PortPlan>,
  links: Map<string, Link>,
  step: Step,
  leaveOut: LeaveOut,
  signal?: AbortSignal,
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
