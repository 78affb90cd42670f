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

function cat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function u32(n: number): number[] {
  return [...u16(Math.floor(n / 65536)), ...u16(n % 65536)];
}

function macBytes(mac: string): number[] {
  return mac.split(":").map((x) => parseInt(x, 16));
}

function ip6Bytes(addr: string): Uint8Array {
  const n = parseIpv6(addr);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    out[i] = Number((n >> BigInt(8 * (15 - i))) & 0xffn);
  }
  return out;
}

function ip4Bytes(addr: string): number[] {
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
