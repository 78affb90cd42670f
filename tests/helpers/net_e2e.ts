/**
 * What the networks end-to-end test (tests/network_e2e_test.ts) looks at:
 * `api()` calls the in-process app, `inHost()` runs a command in a host's
 * namespace, and the host's ucloud links, bridge ports, nft table, radvd,
 * VM documents, finished tasks and a guest's SLAAC address; `printNet()`
 * dumps each host's network when a step fails.
 */
import assert from "node:assert/strict";
import type { createApp } from "../../api/app.ts";
import { keys } from "../../core/keys.ts";
import { Task, Vm } from "../../core/schemas.ts";
import { run } from "../../drivers/runner.ts";
import { NFT_TABLE } from "../../drivers/net/mod.ts";
import { type Cluster, waitFor } from "./cluster.ts";
import { guestRun } from "./console.ts";
import type { HostNet } from "./netns.ts";

export type App = ReturnType<typeof createApp>;

export async function api(
  app: App,
  method: string,
  path: string,
  json?: unknown,
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; body: any }> {
  const res = await app.request(path, {
    method,
    headers: json === undefined ? {} : { "content-type": "application/json" },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  return { status: res.status, body: await res.json() };
}

/** Runs a command in host `name`'s namespace; its stdout. */
export async function inHost(net: HostNet, name: string, ...cmd: string[]) {
  return (await run("ip", ["netns", "exec", net.host(name).ns, ...cmd], {
    timeoutMs: 10_000,
  })).stdout;
}

/** Link names in a host whose names ucloud's network driver makes. */
export async function ucloudLinks(
  net: HostNet,
  name: string,
): Promise<string[]> {
  const links = JSON.parse(await inHost(net, name, "ip", "-j", "link")) as {
    ifname: string;
  }[];
  return links.map((l) => l.ifname).filter((n) => /^uc[bvt]/.test(n)).sort();
}

/** Names of the ports of `bridge` in host `name`. */
export async function portsOf(net: HostNet, name: string, bridge: string) {
  const out = await inHost(
    net,
    name,
    "ip",
    "-j",
    "link",
    "show",
    "master",
    bridge,
  );
  return (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname);
}

/** The host's nft table as JSON items (chains, rules, maps), or []. */
export async function nftItems(net: HostNet, name: string) {
  try {
    const out = await inHost(
      net,
      name,
      "nft",
      "-j",
      "list",
      "table",
      "bridge",
      NFT_TABLE,
    );
    // deno-lint-ignore no-explicit-any
    return (JSON.parse(out).nftables as any[]).filter((i) => !i.metainfo);
  } catch {
    return [];
  }
}

export async function radvdRuns(net: HostNet, name: string): Promise<boolean> {
  for (const pid of await net.pids(name)) {
    const cmd = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
    if (cmd.startsWith("radvd") || cmd.includes("/radvd\0")) return true;
  }
  return false;
}

/** Prints each host's VXLAN devices, FDB, multicast groups and nft table. */
export async function printNet(net: HostNet): Promise<void> {
  for (const h of net.hosts.keys()) {
    for (
      const cmd of [
        ["ip", "-d", "link", "show"],
        ["bridge", "fdb", "show"],
        ["ip", "-6", "maddr", "show"],
        ["ip", "-6", "addr", "show"],
        ["nft", "list", "ruleset"],
      ]
    ) {
      const out = await inHost(net, h, ...cmd).catch((e) => String(e));
      console.error(`--- ${h}: ${cmd.join(" ")}\n${out}`);
    }
  }
}

export async function vmDoc(c: Cluster, id: string): Promise<Vm | null> {
  return (await c.store.get(keys.vm(id), Vm))?.value ?? null;
}

export async function taskDone(c: Cluster, id: string, timeoutMs = 60_000) {
  const t = await waitFor(`task ${id} finished`, async () => {
    const t = (await c.store.get(keys.task(id), Task))?.value;
    return t && (t.state === "succeeded" || t.state === "failed") ? t : null;
  }, timeoutMs);
  assert.equal(t.state, "succeeded", JSON.stringify(t));
  return t;
}

/** Waits until the guest's `dev` has global IPv6 `addr` (SLAAC done, no DAD). */
export async function waitGuestAddr(sock: string, dev: string, addr: string) {
  await waitFor(
    `guest ${dev} has ${addr}`,
    async () => {
      const r = await guestRun(
        sock,
        `ip -6 addr show dev ${dev} scope global`,
        { timeoutMs: 10_000 },
      ).catch(() => null);
      return r !== null && r.includes(`${addr}/64`) &&
        !r.includes("tentative");
    },
    60_000,
    500,
  );
}
