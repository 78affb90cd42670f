/**
 * Helpers of the metadata networking tests (tests/net_metadata_test.ts):
 * a TCP listener in a host namespace on the metadata addresses (Deno, like
 * the worker's service), a client in a VM namespace, and what a namespace's
 * addresses and routes are.
 */
import assert from "node:assert/strict";
import { METADATA } from "../../drivers/net/host_input.ts";
import { run } from "../../drivers/runner.ts";
import { nsRun, type VmNs } from "./vmns.ts";

const LISTENER = `
const ls = JSON.parse(Deno.env.get("ADDRS")).map((hostname) =>
  Deno.listen({ hostname, port: Number(Deno.env.get("PORT")) })
);
console.log("ready");
for (const l of ls) {
  (async () => {
    for await (const c of l) {
      const line = l.addr.hostname + " " + c.remoteAddr.hostname + "\\n";
      await c.write(new TextEncoder().encode(line)).catch(() => {});
      c.close();
    }
  })();
}
`;

/**
 * Listens in namespace `ns` on `[addr]:80` for each of `addrs` (scoped
 * link-local addresses as `fe80::...%<bridge>`); every connection gets one
 * line `<listening address> <peer address>` and is closed. Resolves when
 * it listens; the result stops it.
 */
export async function metadataListener(
  ns: string,
  addrs: string[],
): Promise<() => Promise<void>> {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns, Deno.execPath(), "eval", LISTENER],
    env: { ADDRS: JSON.stringify(addrs), PORT: String(METADATA.port) },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  if (!/ready/.test(value ?? "")) {
    child.kill("SIGKILL");
    await child.status;
    assert.fail(`metadata listener did not start in ${ns}`);
  }
  return async () => {
    child.kill("SIGKILL");
    await reader.cancel();
    await child.status;
  };
}

/**
 * Connects from the VM to `[addr]:80` (link-local through eth0) within 3 s
 * and returns the line the listener sent, or null when it could not.
 */
export async function fetchLine(
  vm: VmNs,
  addr: string,
): Promise<string | null> {
  const py = `
import socket, sys
host = sys.argv[1] + ("%eth0" if sys.argv[1].startswith("fe80:") else "")
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(3)
try:
    s.connect(socket.getaddrinfo(host, int(sys.argv[2]), fam)[0][4])
    print("got", s.recv(200).decode().strip())
except OSError as e:
    print("failed", e)
`;
  const { stdout } = await nsRun(vm.ns, "python3", [
    "-c",
    py,
    addr,
    String(METADATA.port),
  ]);
  return stdout.startsWith("got ") ? stdout.slice(4).trim() : null;
}

/** `<address>/<length>` of every address on `dev` in namespace `ns`. */
export async function addrsOf(ns: string, dev: string): Promise<string[]> {
  const { stdout } = await run("ip", ["-n", ns, "-j", "addr", "show", dev]);
  const [l] = JSON.parse(stdout) as {
    addr_info: { local: string; prefixlen: number }[];
  }[];
  return l.addr_info.map((a) => `${a.local}/${a.prefixlen}`).sort();
}

/** The main table's routes in `ns` as `<dst> <dev> <protocol>` lines. */
export async function routesOf(ns: string, family: "-4" | "-6") {
  const { stdout } = await run("ip", [
    "-n",
    ns,
    "-j",
    family,
    "route",
    "show",
  ]);
  return (JSON.parse(stdout || "[]") as {
    dst: string;
    dev: string;
    protocol?: string;
  }[]).map((r) => `${r.dst} ${r.dev} ${r.protocol ?? "boot"}`);
}
