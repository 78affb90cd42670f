/**
 * Helpers of the host input policy tests (tests/net_host_input_test.ts):
 * the host table's counters and handles, a device's link-local address
 * and FDB, VXLAN packets, TCP listeners and connects in namespaces.
 */
import assert from "node:assert/strict";
import { HOST_TABLE, METADATA } from "../../drivers/net/host_input.ts";
import { run } from "../../drivers/runner.ts";
import { nsRun, type VmNs } from "./vmns.ts";

/** A device's MAC and own link-local address in a host namespace. */
export async function linkAddrs(
  ns: string,
  dev: string,
): Promise<{ mac: string; ll: string }> {
  const { stdout } = await run("ip", ["-n", ns, "-j", "addr", "show", dev]);
  const [l] = JSON.parse(stdout) as {
    address: string;
    addr_info: { family: string; scope: string; local: string }[];
  }[];
  // The device's own, not the metadata service's (drivers/net/bridge_addrs.ts).
  const ll = l.addr_info.find((a) =>
    a.family === "inet6" && a.scope === "link" &&
    !(METADATA.ipv6 as readonly string[]).includes(a.local)
  );
  assert.ok(ll, `no link-local address on ${dev}`);
  return { mac: l.address, ll: ll.local };
}

/** MACs the VXLAN device's FDB holds (learned or static). */
export async function fdbMacs(ns: string, dev: string): Promise<string[]> {
  const { stdout } = await run("bridge", [
    "-n",
    ns,
    "-j",
    "fdb",
    "show",
    "dev",
    dev,
  ]);
  return (JSON.parse(stdout) as { mac: string }[]).map((e) => e.mac).sort();
}

/** The host table's rules: packets per comment, and every rule handle. */
export async function hostTable(
  ns: string,
): Promise<{ counts: Map<string, number>; handles: number[] } | null> {
  let stdout: string;
  try {
    ({ stdout } = await run("ip", [
      "netns",
      "exec",
      ns,
      "nft",
      "-j",
      "list",
      "table",
      "inet",
      HOST_TABLE,
    ]));
  } catch (err) {
    if (/No such file/.test(String(err))) return null;
    throw err;
  }
  interface Rule {
    handle: number;
    comment?: string;
    expr: { counter?: { packets: number } }[];
  }
  const items = JSON.parse(stdout).nftables as { rule?: Rule }[];
  const counts = new Map<string, number>();
  const handles: number[] = [];
  for (const { rule: r } of items) {
    if (!r) continue;
    handles.push(r.handle);
    const n = r.expr.find((e) => e.counter)?.counter?.packets ?? 0;
    const c = (r.comment ?? "").split(" ")[0];
    counts.set(c, (counts.get(c) ?? 0) + n);
  }
  return { counts, handles };
}

/** Packets the host table's rules with `comment` counted. */
export async function counted(ns: string, comment: string): Promise<number> {
  return (await hostTable(ns))?.counts.get(comment) ?? 0;
}

/** A VXLAN packet's UDP payload: header with `vni`, then `inner`. */
export function vxlan(vni: number, inner: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + inner.length);
  out.set([
    0x08,
    0,
    0,
    0,
    (vni >> 16) & 0xff,
    (vni >> 8) & 0xff,
    vni & 0xff,
    0,
  ]);
  out.set(inner, 8);
  return out;
}

/** Whether a TCP connect from the VM to `[addr%eth0]:port` succeeds in 2 s. */
export async function tcpConnects(
  vm: VmNs,
  addr: string,
  port: number,
): Promise<boolean> {
  const py = `
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2]), 0, socket.if_nametoindex("eth0")))
    print("connected")
except OSError as e:
    print("failed", e)
`;
  const { stdout } = await nsRun(vm.ns, "python3", [
    "-c",
    py,
    addr,
    String(port),
  ]);
  return stdout.startsWith("connected");
}

/** A TCP listener on [::]:`port` in namespace `ns`; resolves when it listens. */
export async function listener(
  ns: string,
  port: number,
): Promise<() => Promise<void>> {
  const py = `
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
`;
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns, "python3", "-c", py, String(port)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  assert.match(value ?? "", /ready/, "listener did not start");
  return async () => {
    child.kill("SIGKILL");
    await reader.cancel();
    await child.status;
  };
}
