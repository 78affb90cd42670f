/**
 * Network namespaces acting as VMs for network driver tests. A "VM" is a
 * namespace `ucvm-<rand>-<name>` whose `eth0` (the given MAC, up, IPv6
 * autoconfiguration on, DAD off for speed) is a veth to a port device in a
 * host namespace; the port is left down and on no bridge for
 * `NetDriver.sync` to attach. Raw Ethernet frames are built here in
 * TypeScript (`frame.*`) and sent or captured by a few lines of python on
 * an AF_PACKET socket (`sendFrames`, `capture`), so a test can spoof any
 * header and check which frames arrived. Every namespace and process is
 * tracked by its {@linkcode VmSet} and removed by `destroy()`.
 *
 * @example
 * ```ts
 * const vms = new VmSet();
 * try {
 *   const a = await vms.create({ name: "a", hostNs: h1.ns, port: "uct000000010", mac });
 *   const cap = await capture(b);
 *   await sendFrames(a, [frame.udp6(...)]);
 *   const got = await cap.stop(); // markers of the frames b received
 * } finally {
 *   await vms.destroy();
 * }
 * ```
 */
import { run } from "../../drivers/runner.ts";
import { parseIpv4, parseIpv6 } from "../../core/netaddr.ts";
import { waitFor } from "./cluster.ts";

/** One namespace acting as a VM. */
export interface VmNs {
  name: string;
  /** The VM's namespace. */
  ns: string;
  /** The host namespace its port is in. */
  hostNs: string;
  /** Host-side device (the port the driver attaches). */
  port: string;
  mac: string;
}

/** Options of {@linkcode VmSet.create}. */
export interface VmOptions {
  name: string;
  hostNs: string;
  port: string;
  mac: string;
  /** Static IPv4 address with length, e.g. "198.51.100.10/24". */
  ipv4?: string;
  /** Bring eth0 up now (default); false: later with {@linkcode linkUp}. */
  up?: boolean;
}

/** Runs `cmd` inside namespace `ns`. */
export function nsRun(
  ns: string,
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; signal?: AbortSignal; stdin?: string } = {},
) {
  return run("ip", ["netns", "exec", ns, cmd, ...args], {
    timeoutMs: 20_000,
    ...opts,
  });
}

function randomId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(2)),
    (x) => x.toString(16).padStart(2, "0"),
  ).join("");
}

/** VM namespaces and helper processes of one test, removed together. */
export class VmSet {
  readonly id = randomId();
  readonly vms: VmNs[] = [];
  readonly children = new Set<Deno.ChildProcess>();

  /** Creates VM namespace `ucvm-<id>-<name>` wired to `port` in `hostNs`. */
  async create(opts: VmOptions): Promise<VmNs> {
    const vm: VmNs = {
      name: opts.name,
      ns: `ucvm-${this.id}-${opts.name}`,
      hostNs: opts.hostNs,
      port: opts.port,
      mac: opts.mac,
    };
    await run("ip", ["netns", "add", vm.ns]);
    this.vms.push(vm);
    await run("ip", [
      "-n",
      opts.hostNs,
      "link",
      "add",
      opts.port,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      vm.ns,
    ]);
    const ipn = (...args: string[]) => run("ip", ["-n", vm.ns, ...args]);
    await ipn("link", "set", "lo", "up");
    await ipn("link", "set", "eth0", "address", opts.mac);
    await nsRun(vm.ns, "sysctl", [
      "-q",
      "-w",
      "net.ipv6.conf.eth0.accept_dad=0",
      "net.ipv6.conf.eth0.accept_ra=1",
      "net.ipv6.conf.eth0.autoconf=1",
      "net.ipv6.conf.eth0.addr_gen_mode=0",
    ]);
    if (opts.ipv4) await ipn("addr", "add", opts.ipv4, "dev", "eth0");
    if (opts.up ?? true) await linkUp(vm);
    return vm;
  }

  /** Kills the helper processes and deletes every VM namespace. */
  async destroy(): Promise<void> {
    for (const c of this.children) {
      try {
        c.kill("SIGKILL");
      } catch { /* exited */ }
      await c.status.catch(() => {});
    }
    this.children.clear();
    for (const vm of this.vms) {
      const pids = await run("ip", ["netns", "pids", vm.ns]).then(
        (r) => r.stdout.split(/\s+/).filter(Boolean).map(Number),
        () => [],
      );
      for (const pid of pids) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await run("ip", ["netns", "del", vm.ns]).catch(() => {});
    }
    this.vms.length = 0;
  }
}

/** Brings the VM's eth0 up (the VM "boots"). */
export async function linkUp(vm: VmNs): Promise<void> {
  await run("ip", ["-n", vm.ns, "link", "set", "eth0", "up"]);
}

/** Names of VM namespaces of this process's sets that still exist. */
export async function leftoverVms(set: VmSet): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"]);
  return stdout.split("\n").map((l) => l.split(" ")[0])
    .filter((n) => n.startsWith(`ucvm-${set.id}-`));
}

/** Global IPv6 addresses on the VM's eth0. */
export async function globalAddrs(vm: VmNs): Promise<string[]> {
  const { stdout } = await run("ip", [
    "-n",
    vm.ns,
    "-j",
    "-6",
    "addr",
    "show",
    "dev",
    "eth0",
    "scope",
    "global",
  ]);
  const links = JSON.parse(stdout || "[]") as {
    addr_info?: { local?: string }[];
  }[];
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => a.local ?? ""))
    .filter(Boolean);
}

/** Waits until `addr` is configured on the VM's eth0. */
export async function waitAddress(
  vm: VmNs,
  addr: string,
  timeoutMs = 20_000,
): Promise<void> {
  const want = parseIpv6(addr);
  await waitFor(
    `${addr} on ${vm.name}`,
    async () => (await globalAddrs(vm)).some((a) => parseIpv6(a) === want),
    timeoutMs,
    20,
  );
}

/** Whether one ping from `vm` to `addr` is answered within `waitS` s. */
export async function ping(
  vm: VmNs,
  addr: string,
  { count = 1, waitS = 1 } = {},
): Promise<boolean> {
  try {
    await nsRun(vm.ns, "busybox", [
      "ping",
      addr.includes(":") ? "-6" : "-4",
      "-c",
      String(count),
      "-W",
      String(waitS),
      addr,
    ]);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------ raw frames

let pythonPath: Promise<string> | undefined;

/** The real python3 interpreter (not a pyenv shim). */
function python(): Promise<string> {
  pythonPath ??= run("python3", ["-c", "import sys; print(sys.executable)"])
    .then((r) => r.stdout.trim());
  return pythonPath;
}

const SEND_PY = `
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
repeat, gap = int(sys.argv[1]), float(sys.argv[2]) / 1000
frames = [bytes.fromhex(h) for h in sys.stdin.read().split()]
for i in range(repeat):
    for f in frames:
        s.send(f)
    if gap and i + 1 < repeat:
        time.sleep(gap)
`;

const CAPTURE_PY = `
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(65535)
    if addr[2] != socket.PACKET_OUTGOING and b"UCMARK:" in data:
        print(data.hex(), flush=True)
`;

/**
 * Sends raw Ethernet frames out of the VM's eth0: all of them, `repeat`
 * times, `gapMs` apart.
 */
export async function sendFrames(
  vm: VmNs,
  frames: Uint8Array[],
  { repeat = 1, gapMs = 0, timeoutMs = 30_000 } = {},
): Promise<void> {
  await nsRun(vm.ns, await python(), [
    "-c",
    SEND_PY,
    String(repeat),
    String(gapMs),
  ], { stdin: frames.map(toHex).join("\n"), timeoutMs });
}

/** A running capture; see {@linkcode capture}. */
export interface Capture {
  /** Stops capturing; the markers of the frames received (with repeats). */
  stop(): Promise<string[]>;
}

/**
 * Captures the frames with a marker (`marker(id)`) arriving at the VM's
 * eth0; resolves once the socket is bound.
 */
export async function capture(set: VmSet, vm: VmNs): Promise<Capture> {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", vm.ns, await python(), "-c", CAPTURE_PY],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  set.children.add(child);
  const lines: string[] = [];
  let ready!: () => void;
  const isReady = new Promise<void>((r) => ready = r);
  const reading = (async () => {
    let buf = "";
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      buf += chunk;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const line of parts) {
        if (line === "ready") ready();
        else if (line) lines.push(line);
      }
    }
  })();
  const stderr = new Response(child.stderr).text();
  const exited = child.status.then(async (s) => {
    throw new Error(
      `capture in ${vm.name} exited (${s.code}): ${await stderr}`,
    );
  });
  await Promise.race([isReady, exited]);
  exited.catch(() => {});
  return {
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await reading;
      set.children.delete(child);
      return lines.map((hex) => markerOf(fromHex(hex))).filter((m) => m !== "");
    },
  };
}

/** Bytes identifying a test frame: "UCMARK:<id>!" somewhere in it. */
export function marker(id: string): Uint8Array {
  return new TextEncoder().encode(`UCMARK:${id}!`);
}

function markerOf(frame: Uint8Array): string {
  const text = new TextDecoder("latin1").decode(frame);
  const m = text.match(/UCMARK:([^!]*)!/);
  return m ? m[1] : "";
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

/** The parts one after the other. */
export function cat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** `n` as 2 bytes, big-endian. */
export function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function u32(n: number): number[] {
  return [...u16(Math.floor(n / 65536)), ...u16(n % 65536)];
}

/** The 6 bytes of `mac`. */
export function macBytes(mac: string): number[] {
  return mac.split(":").map((x) => parseInt(x, 16));
}

/** The 16 bytes of IPv6 address `addr`. */
export function ip6Bytes(addr: string): Uint8Array {
  const n = parseIpv6(addr);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    out[i] = Number((n >> BigInt(8 * (15 - i))) & 0xffn);
  }
  return out;
}

/** The 4 bytes of IPv4 address `addr`. */
export function ip4Bytes(addr: string): number[] {
  return u32(parseIpv4(addr));
}

function checksum(data: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < data.length; i += 2) {
    sum += (data[i] << 8) + (i + 1 < data.length ? data[i + 1] : 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function l4over6(
  src: string,
  dst: string,
  nh: number,
  l4: Uint8Array,
  csumAt: number,
): Uint8Array {
  const pseudo = cat(ip6Bytes(src), ip6Bytes(dst), u32(l4.length), [
    0,
    0,
    0,
    nh,
  ], l4);
  const c = checksum(pseudo);
  l4[csumAt] = c >> 8;
  l4[csumAt + 1] = c & 0xff;
  return l4;
}

/** Ethernet frame and IP packet builders (checksums filled in). */
export const frame = {
  ether(dst: string, src: string, type: number, payload: Uint8Array) {
    return cat(macBytes(dst), macBytes(src), u16(type), payload);
  },
  /** An 802.1Q tagged frame. */
  vlan(
    dst: string,
    src: string,
    vid: number,
    type: number,
    payload: Uint8Array,
  ) {
    return cat(
      macBytes(dst),
      macBytes(src),
      u16(0x8100),
      u16(vid),
      u16(type),
      payload,
    );
  },
  ipv6(src: string, dst: string, nh: number, payload: Uint8Array, hlim = 64) {
    return cat(
      [0x60, 0, 0, 0],
      u16(payload.length),
      [nh, hlim],
      ip6Bytes(src),
      ip6Bytes(dst),
      payload,
    );
  },
  udp6(
    src: string,
    dst: string,
    sport: number,
    dport: number,
    data: Uint8Array,
  ) {
    const l4 = cat(u16(sport), u16(dport), u16(8 + data.length), [0, 0], data);
    return frame.ipv6(src, dst, 17, l4over6(src, dst, 17, l4, 6));
  },
  icmp6(
    src: string,
    dst: string,
    type: number,
    code: number,
    body: Uint8Array,
    hlim = 255,
  ) {
    const l4 = cat([type, code, 0, 0], body);
    return frame.ipv6(src, dst, 58, l4over6(src, dst, 58, l4, 2), hlim);
  },
  /** A router advertisement (router lifetime 1800) with one SLAAC prefix. */
  ra(src: string, mac: string, prefix: string, extra: Uint8Array) {
    const [addr, len] = prefix.split("/");
    const body = cat(
      [64, 0],
      u16(1800),
      u32(0),
      u32(0),
      [3, 4, Number(len), 0xc0],
      u32(86400),
      u32(14400),
      u32(0),
      ip6Bytes(addr),
      [1, 1],
      macBytes(mac),
      extra,
    );
    return frame.icmp6(src, "ff02::1", 134, 0, body);
  },
  /** An unsolicited neighbour advertisement (override) for `target`. */
  na(src: string, mac: string, target: string, extra: Uint8Array) {
    const body = cat(
      [0x20, 0, 0, 0],
      ip6Bytes(target),
      [2, 1],
      macBytes(mac),
      extra,
    );
    return frame.icmp6(src, "ff02::1", 136, 0, body);
  },
  udp4(
    src: string,
    dst: string,
    sport: number,
    dport: number,
    data: Uint8Array,
  ) {
    const udp = cat(u16(sport), u16(dport), u16(8 + data.length), [0, 0], data);
    const hdr = new Uint8Array(
      cat(
        [0x45, 0],
        u16(20 + udp.length),
        [0, 0, 0x40, 0, 64, 17, 0, 0],
        ip4Bytes(src),
        ip4Bytes(dst),
      ),
    );
    const c = checksum(hdr);
    hdr[10] = c >> 8;
    hdr[11] = c & 0xff;
    return cat(hdr, udp);
  },
  /** An ARP packet (1 request, 2 reply) followed by `trailer`. */
  arp(
    op: number,
    senderMac: string,
    senderIp: string,
    targetMac: string,
    targetIp: string,
    trailer: Uint8Array,
  ) {
    return cat(
      [0, 1, 8, 0, 6, 4],
      u16(op),
      macBytes(senderMac),
      ip4Bytes(senderIp),
      macBytes(targetMac),
      ip4Bytes(targetIp),
      trailer,
    );
  },
};

/** EtherTypes used by the tests. */
export const ETH = { ip4: 0x0800, arp: 0x0806, ip6: 0x86dd } as const;

// ------------------------------------------------------------ DHCP clients

/** A DHCPv4 lease as busybox udhcpc's event script saw it. */
export interface Dhcp4Lease {
  ip: string;
  /** Prefix length. */
  mask: number;
  /** Empty when the server sent no router option. */
  router: string;
  serverid: string;
  /** Seconds. */
  lease: number;
}

const UDHCPC_SCRIPT = `#!/bin/sh
# udhcpc event script (tests/helpers/vmns.ts): apply the lease, print it.
case "$1" in
bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  echo "lease ip=$ip mask=$mask router=$router serverid=$serverid lease=$lease"
  ;;
esac
`;

/**
 * Runs `busybox udhcpc` on the VM's eth0 until it has a lease (applied to
 * eth0) or gave up after `tries` discovers a second apart; null then.
 */
export async function dhcp4Lease(
  vm: VmNs,
  { tries = 3 } = {},
): Promise<Dhcp4Lease | null> {
  const script = await Deno.makeTempFile({ prefix: "ucvm-udhcpc-" });
  try {
    await Deno.writeTextFile(script, UDHCPC_SCRIPT);
    await Deno.chmod(script, 0o755);
    const { stdout } = await nsRun(vm.ns, "busybox", [
      "udhcpc",
      "-i",
      "eth0",
      "-f",
      "-q",
      "-n",
      "-t",
      String(tries),
      "-T",
      "1",
      "-s",
      script,
    ], { timeoutMs: (tries + 5) * 1000 }).catch((err) => {
      if (/exit 1/.test(String(err))) return { stdout: "" };
      throw err;
    });
    const line = stdout.split("\n").find((l) => l.startsWith("lease "));
    if (!line) return null;
    const f = Object.fromEntries(
      line.slice(6).split(" ").map((kv) => kv.split("=")),
    );
    return {
      ip: f.ip,
      mask: Number(f.mask),
      router: f.router ?? "",
      serverid: f.serverid,
      lease: Number(f.lease),
    };
  } finally {
    await Deno.remove(script);
  }
}

/** One DHCPv4 OFFER a VM received. */
export interface Dhcp4Offer {
  yiaddr: string;
  /** Option 54. */
  server: string;
  /** Ethernet source of the reply. */
  srcMac: string;
}

const DHCP4_PY = `
import json, os, select, socket, struct, sys, time
mac, chaddr, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth0", 0x0800))
def hexmac(m): return bytes.fromhex(m.replace(":", ""))
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t > 0xffff: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
xid = os.urandom(4)
bootp = struct.pack("!BBBB4sHH16s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
    b"\\0" * 16, hexmac(chaddr).ljust(16, b"\\0"), b"", b"")
bootp += bytes([99, 130, 83, 99, 53, 1, 1, 55, 2, 1, 3, 255])
bootp = bootp.ljust(300, b"\\0")
udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
    b"\\0" * 4, b"\\xff" * 4)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
frame = b"\\xff" * 6 + hexmac(mac) + b"\\x08\\x00" + ip + udp
start = time.time()
sends = [start, start + wait / 2]
while True:
    now = time.time()
    if sends and now >= sends[0]:
        s.send(frame)
        sends.pop(0)
    left = min([start + wait - now] + [t - now for t in sends])
    if start + wait <= now: break
    if not select.select([s], [], [], max(left, 0))[0]: continue
    data, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING: continue
    p = data[14:]
    if len(p) < 28 or p[9] != 17: continue
    u = p[(p[0] & 15) * 4:]
    if struct.unpack("!H", u[2:4])[0] != 68: continue
    b = u[8:]
    if len(b) < 240 or b[0] != 2 or b[4:8] != xid: continue
    opts, i = {}, 240
    while i < len(b) and b[i] != 255:
        if b[i] == 0:
            i += 1
            continue
        opts[b[i]] = b[i + 2:i + 2 + b[i + 1]]
        i += 2 + b[i + 1]
    if opts.get(53) != b"\\x02": continue
    print(json.dumps({"yiaddr": socket.inet_ntoa(b[16:20]),
        "server": socket.inet_ntoa(opts.get(54, b"\\0" * 4)),
        "srcMac": ":".join("%02x" % x for x in data[6:12])}), flush=True)
`;

/**
 * Broadcasts a DHCPDISCOVER (broadcast flag set) from the VM's eth0 with
 * `chaddr` as the client's hardware address (default: the VM's MAC), again
 * after `waitMs / 2`, and returns every OFFER received within `waitMs`.
 */
export async function dhcp4Offers(
  vm: VmNs,
  { chaddr = vm.mac, waitMs = 1500 } = {},
): Promise<Dhcp4Offer[]> {
  const { stdout } = await nsRun(vm.ns, await python(), [
    "-c",
    DHCP4_PY,
    vm.mac,
    chaddr,
    String(waitMs / 1000),
  ], { timeoutMs: waitMs + 10_000 });
  return stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** One DHCPv6 ADVERTISE or REPLY a VM received. */
export interface Dhcp6Answer {
  type: "advertise" | "reply";
  /** The server's (link-local) source address. */
  server: string;
  /** IA_NA addresses (and `status:<code>:<text>` entries). */
  addrs: string[];
}

const DHCP6_PY = `
import json, os, select, socket, struct, sys, time
mode, duid, wait = sys.argv[1], bytes.fromhex(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
s.bind(("::", 546))
dst = ("ff02::1:2", 547, 0, socket.if_nametoindex("eth0"))
def opt(code, data): return struct.pack("!HH", code, len(data)) + data
def parse(data):
    opts, i = {}, 4
    while i + 4 <= len(data):
        c, l = struct.unpack("!HH", data[i:i + 4])
        opts.setdefault(c, []).append(data[i + 4:i + 4 + l])
        i += 4 + l
    return opts
def addrs(opts):
    out = []
    for ia in opts.get(3, []):
        j = 12
        while j + 4 <= len(ia):
            c, l = struct.unpack("!HH", ia[j:j + 4])
            body = ia[j + 4:j + 4 + l]
            j += 4 + l
            if c == 5: out.append(socket.inet_ntop(socket.AF_INET6, body[:16]))
            if c == 13: out.append("status:%d:%s" % (struct.unpack("!H", body[:2])[0], body[2:].decode(errors="replace")))
    return out
def exchange(t, want, extra, every, until_first):
    xid = os.urandom(3)
    msg = bytes([t]) + xid + opt(1, duid) + opt(3, b"\\0\\0\\0\\1" + b"\\0" * 8) + opt(8, b"\\0\\0") + extra
    start, nxt, got = time.time(), 0, []
    while time.time() < start + wait:
        if time.time() >= nxt:
            s.sendto(msg, dst)
            nxt = time.time() + every
        if not select.select([s], [], [], 0.05)[0]: continue
        data, src = s.recvfrom(4096)
        if data[1:4] != xid or data[0] != want: continue
        opts = parse(data)
        print(json.dumps({"type": "advertise" if want == 2 else "reply",
            "server": src[0].split("%")[0], "addrs": addrs(opts)}), flush=True)
        got.append(opts)
        if until_first: break
    return got
if mode == "solicit":
    exchange(1, 2, b"", wait / 2, False)
else:
    adv = exchange(1, 2, b"", 1, True)
    if adv: exchange(3, 7, opt(2, adv[0][2][0]), 1, True)
`;

/**
 * DHCPv6 from the VM's eth0 (a small python client; busybox has no
 * udhcpc6). `solicit`: SOLICITs (again after `waitMs / 2`), every
 * ADVERTISE within `waitMs`. `lease`: SOLICIT, then REQUEST to the first
 * server that advertised: its ADVERTISE and REPLY. `duid` (hex) defaults
 * to a DUID-UUID, which carries no MAC: the server must take the MAC from
 * the link.
 */
export async function dhcp6(
  vm: VmNs,
  mode: "solicit" | "lease",
  { duid = "0004" + "11".repeat(16), waitMs = 1500 } = {},
): Promise<Dhcp6Answer[]> {
  const { stdout } = await nsRun(vm.ns, await python(), [
    "-c",
    DHCP6_PY,
    mode,
    duid,
    String(waitMs / 1000),
  ], { timeoutMs: 2 * waitMs + 10_000 });
  return stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/**
 * Pids of live processes whose program name matches `name` and one of
 * whose arguments names a file under one of `dirs` (daemons a test's
 * driver started: radvd, dnsmasq).
 */
export async function daemonsIn(
  dirs: string[],
  name: RegExp,
): Promise<number[]> {
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const args = (await Deno.readTextFile(`/proc/${e.name}/cmdline`))
        .split("\0");
      if (!name.test(args[0])) continue;
      if (dirs.some((d) => args.some((a) => a.includes(`${d}/`)))) {
        pids.push(Number(e.name));
      }
    } catch { /* exited */ }
  }
  return pids;
}
