/**
 * Raw Ethernet frames in and out of a namespace VM ({@linkcode VmNs}): a
 * few lines of python on an AF_PACKET socket send frames (`sendFrames`) or
 * capture the ones carrying a test marker (`capture`, `marker`), so a test
 * can spoof any header and check which frames arrived.
 *
 * @example
 * ```ts
 * const cap = await capture(vms, b);
 * await sendFrames(a, [frame.udp6(...)]);
 * const got = await cap.stop(); // markers of the frames b received
 * ```
 */
import { nsRun, python, type VmNs, type VmSet } from "./vmns.ts";

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
