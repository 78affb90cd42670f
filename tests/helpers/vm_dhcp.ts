/**
 * DHCP clients run inside a namespace VM ({@linkcode VmNs}): busybox
 * udhcpc for a DHCPv4 lease (`dhcp4Lease`) and small python clients that
 * report every DHCPv4 OFFER (`dhcp4Offers`) or DHCPv6 answer (`dhcp6`).
 */
import { nsRun, python, type VmNs } from "./vmns.ts";

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
  /**
   * Classless static routes (option 121) as udhcpc gives them,
   * `"<dst>/<len> <gateway> ..."` (applied to eth0); empty when none.
   */
  staticroutes: string;
}

const UDHCPC_SCRIPT = `#!/bin/sh
# udhcpc event script (tests/helpers/vm_dhcp.ts): apply the lease, print it.
case "$1" in
bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  set -- $staticroutes
  while [ $# -ge 2 ]; do
    if [ "$2" = 0.0.0.0 ]; then ip route add "$1" dev "$interface"
    else ip route add "$1" via "$2" dev "$interface"; fi
    shift 2
  done
  routes=$(echo $staticroutes | tr ' ' ,)
  echo "lease ip=$ip mask=$mask router=$router serverid=$serverid lease=$lease routes=$routes"
  ;;
esac
`;

/**
 * Runs `busybox udhcpc` on the VM's eth0 until it has a lease (applied to
 * eth0, with its classless static routes) or gave up after `tries` discovers a second apart; null then.
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
      "-O",
      "staticroutes",
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
      staticroutes: (f.routes ?? "").replaceAll(",", " "),
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
