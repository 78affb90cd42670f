/**
 * Helpers of the metadata networking tests (tests/net_metadata_test.ts):
 * a TCP listener in a host namespace on the metadata addresses (Deno, like
 * the worker's service), a client in a VM namespace, and what a namespace's
 * addresses and routes are, and what of the metadata service's a VM
 * receives (`sniff`).
 */
import assert from "node:assert/strict";
import { METADATA } from "../../drivers/net/host_input.ts";
import { run } from "../../drivers/runner.ts";
import { nsRun, python, type VmNs, type VmSet } from "./vmns.ts";

const LISTENER = `
const tag = Deno.env.get("TAG") ? Deno.env.get("TAG") + " " : "";
const ls = JSON.parse(Deno.env.get("ADDRS")).map((hostname) =>
  Deno.listen({ hostname, port: Number(Deno.env.get("PORT")) })
);
console.log("ready");
for (const l of ls) {
  (async () => {
    for await (const c of l) {
      const line = tag + l.addr.hostname + " " + c.remoteAddr.hostname + "\\n";
      await c.write(new TextEncoder().encode(line)).catch(() => {});
      c.close();
    }
  })();
}
`;

/**
 * Listens in namespace `ns` on `[addr]:80` for each of `addrs` (scoped
 * link-local addresses as `fe80::...%<bridge>`); every connection gets one
 * line `[<tag> ]<listening address> <peer address>` and is closed.
 * Resolves when it listens; the result stops it.
 */
export async function metadataListener(
  ns: string,
  addrs: string[],
  tag = "",
): Promise<() => Promise<void>> {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns, Deno.execPath(), "eval", LISTENER],
    env: {
      ADDRS: JSON.stringify(addrs),
      PORT: String(METADATA.port),
      TAG: tag,
    },
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
 * Connects from the VM to `[addr]:80` (link-local through eth0) within 3 s,
 * from source address `from` when given (it must be on eth0), and returns
 * the line the listener sent, or null when it could not.
 */
export async function fetchLine(
  vm: Pick<VmNs, "ns">,
  addr: string,
  from = "",
): Promise<string | null> {
  const py = `
import socket, sys
scoped = lambda a: a + ("%eth0" if a.startswith("fe80:") else "")
host = scoped(sys.argv[1])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(3)
try:
    if sys.argv[3]:
        s.bind(socket.getaddrinfo(scoped(sys.argv[3]), 0, fam)[0][4])
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
    from,
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

/** The routes of `table` in `ns` as `<dst> <dev> <protocol>` lines. */
export async function routesOf(
  ns: string,
  family: "-4" | "-6",
  table: "main" | number = "main",
) {
  const { stdout } = await run("ip", [
    "-n",
    ns,
    "-j",
    family,
    "route",
    "show",
    "table",
    "all",
  ]);
  return (JSON.parse(stdout || "[]") as {
    dst: string;
    dev: string;
    protocol?: string;
    table?: string;
  }[]).filter((r) => (r.table ?? "main") === String(table)).map((r) =>
    `${r.dst} ${r.dev} ${r.protocol ?? "boot"}`
  );
}

/** A frame of the metadata service's that a VM received. */
export interface MetadataFrame {
  /**
   * `na`: a neighbour advertisement for a metadata address; `arp`: an ARP
   * reply from 169.254.169.254; `tcp6`/`tcp4`: TCP from a metadata address.
   */
  kind: "na" | "arp" | "tcp6" | "tcp4";
  /** Source MAC. */
  mac: string;
  /** TCP: the hop limit (IPv6) or TTL (IPv4) it arrived with. */
  hop?: number;
}

const SNIFF_PY = `
import ipaddress, json, socket, sys
META6 = {ipaddress.ip_address(a).packed for a in sys.argv[1].split(",")}
META4 = socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
print("ready", flush=True)
while True:
    d, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    et, p, out = d[12:14], d[14:], None
    if et == b"\\x86\\xdd" and len(p) >= 40:
        if p[6] == 58 and len(p) >= 64 and p[40] == 136 and p[48:64] in META6:
            out = {"kind": "na"}
        elif p[6] == 6 and p[8:24] in META6:
            out = {"kind": "tcp6", "hop": p[7]}
    elif et == b"\\x08\\x06" and len(p) >= 28 and p[6:8] == b"\\x00\\x02" and p[14:18] == META4:
        out = {"kind": "arp"}
    elif et == b"\\x08\\x00" and len(p) >= 20 and p[9] == 6 and p[12:16] == META4:
        out = {"kind": "tcp4", "hop": p[8]}
    if out:
        out["mac"] = d[6:12].hex(":")
        print(json.dumps(out), flush=True)
`;

/**
 * Records what of the metadata service's arrives at the VM's eth0 (see
 * {@linkcode MetadataFrame}); resolves once the socket is bound. The
 * process belongs to `set` (killed with it).
 */
export async function sniff(
  set: VmSet,
  vm: VmNs,
): Promise<{ stop(): Promise<MetadataFrame[]> }> {
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      vm.ns,
      await python(),
      "-c",
      SNIFF_PY,
      METADATA.ipv6.join(","),
      METADATA.ipv4,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  set.children.add(child);
  const lines = child.stdout.pipeThrough(new TextDecoderStream());
  const got: MetadataFrame[] = [];
  let ready!: () => void;
  const isReady = new Promise<void>((r) => ready = r);
  const reading = (async () => {
    let buf = "";
    for await (const chunk of lines) {
      buf += chunk;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const l of parts) {
        if (l === "ready") ready();
        else if (l) got.push(JSON.parse(l));
      }
    }
  })();
  await Promise.race([
    isReady,
    child.status.then((s) => assert.fail(`sniffer exited (${s.code})`)),
  ]);
  return {
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await reading;
      set.children.delete(child);
      return got;
    },
  };
}

/**
 * `ip route get <args>` in `ns` (host's own traffic): the device and
 * source address it picks, or the error when there is no route.
 */
export async function routeGet(
  ns: string,
  args: string[],
): Promise<{ dev?: string; prefsrc?: string; error?: string }> {
  try {
    const { stdout } = await run("ip", [
      "-n",
      ns,
      "-j",
      "route",
      "get",
      ...args,
    ]);
    const [r] = JSON.parse(stdout) as { dev?: string; prefsrc?: string }[];
    return { dev: r.dev, prefsrc: r.prefsrc };
  } catch (e) {
    return { error: String(e) };
  }
}

/** The `from <src> lookup <table>` rules in `ns` as `<src> <table>` lines. */
export async function rulesOf(ns: string, family: "-4" | "-6") {
  const { stdout } = await run("ip", ["-n", ns, "-j", family, "rule", "show"]);
  return (JSON.parse(stdout) as { src?: string; table?: string }[])
    .filter((r) => r.src && r.src !== "all")
    .map((r) => `${r.src} ${r.table}`);
}
