/**
 * An IPv6-only network for one qemu VM, set up the way a ucloud host sets
 * up a private network for cloud-init (issue 12): a namespace `ucmd-<rand>`
 * with a bridge holding `fd00:ec2::254/128 nodad` (the metadata address)
 * and a route to the VM's /64, a tap on it, radvd announcing the /64
 * (on-link, autonomous, no default route) and `fd00:ec2::/64` (on-link
 * only), and an HTTP server on `[fd00:ec2::254]:80` serving a NoCloud seed
 * under `/nocloud/`. qemu runs in the namespace through `qemuBinary`.
 *
 * @example
 * ```ts
 * const lan = await NocloudLan.create(dir, { "meta-data": "instance-id: i-1\n" });
 * try {
 *   const driver = new QemuDriver({ stateDir, qemuBinary: lan.qemuBinary });
 *   // boot with nics: [{ slot: 0, tap: lan.tap, mac }] ...
 *   await lan.run("ssh", [...]);
 * } finally {
 *   await lan.close();
 * }
 * ```
 */
import { run, type RunResult } from "../../drivers/runner.ts";
import { METADATA } from "../../drivers/net/host_input.ts";
import { waitFor } from "./cluster.ts";

/** The NoCloud seed's files by name (`meta-data`, `user-data`, ...). */
export type NocloudFiles = Record<string, string>;

/** One request the seed's HTTP server answered. */
export interface SeedRequest {
  /** ms since the epoch. */
  at: number;
  path: string;
  /** The client's address. */
  from: string;
  status: number;
}

const SERVER = `
const [addr, json] = Deno.args;
const files = JSON.parse(json);
Deno.serve({ hostname: addr, port: ${METADATA.port}, onListen() {
  console.log(JSON.stringify({ listening: true }));
} }, (req, info) => {
  const path = new URL(req.url).pathname;
  const name = path.startsWith("/nocloud/") ? path.slice(9) : undefined;
  const status = name !== undefined && name in files ? 200 : 404;
  console.log(JSON.stringify({
    at: Date.now(), path, from: info.remoteAddr.hostname, status,
  }));
  return new Response(status === 200 ? files[name] : "not found\\n", { status });
});`;

/** The network; see the module doc. */
export class NocloudLan {
  /** The VM's prefix. */
  readonly prefix = "fd42:ec2:1::/64";
  readonly bridge = "br0";
  readonly tap = "tap0";
  /** Every request the seed server answered, in order. */
  readonly requests: SeedRequest[] = [];
  #children: Deno.ChildProcess[] = [];

  private constructor(
    readonly ns: string,
    /** Runs qemu-system-x86_64 in the namespace (a script in the dir). */
    readonly qemuBinary: string,
  ) {}

  /** Sets the network up in `dir` (a temp dir the caller removes). */
  static async create(dir: string, files: NocloudFiles): Promise<NocloudLan> {
    const id = crypto.randomUUID().slice(0, 8);
    const lan = new NocloudLan(`ucmd-${id}`, `${dir}/qemu-in-netns`);
    try {
      await lan.#setUp(dir, files);
    } catch (err) {
      await lan.close();
      throw err;
    }
    return lan;
  }

  async #setUp(dir: string, files: NocloudFiles): Promise<void> {
    const ip = (...args: string[]) => run("ip", ["-n", this.ns, ...args]);
    const metadata = METADATA.ipv6[1];
    await run("ip", ["netns", "add", this.ns]);
    await ip("link", "set", "lo", "up");
    await ip("link", "add", this.bridge, "type", "bridge");
    await ip("tuntap", "add", "dev", this.tap, "mode", "tap");
    // The host side takes no address from its own advertisements.
    await this.run("sysctl", [
      "-q",
      "-w",
      `net.ipv6.conf.${this.bridge}.accept_ra=0`,
      `net.ipv6.conf.${this.tap}.disable_ipv6=1`,
    ]);
    await ip("link", "set", this.tap, "master", this.bridge, "up");
    await ip("link", "set", this.bridge, "up");
    await ip("addr", "add", `${metadata}/128`, "dev", this.bridge, "nodad");
    await ip("route", "add", this.prefix, "dev", this.bridge);
    await Deno.writeTextFile(
      this.qemuBinary,
      `#!/bin/sh\nexec ip netns exec ${this.ns} qemu-system-x86_64 "$@"\n`,
    );
    await Deno.chmod(this.qemuBinary, 0o755);
    await Deno.writeTextFile(
      `${dir}/radvd.conf`,
      `interface ${this.bridge} {
  AdvSendAdvert on;
  MinRtrAdvInterval 3;
  MaxRtrAdvInterval 10;
  AdvDefaultLifetime 0;
  prefix ${this.prefix} { AdvOnLink on; AdvAutonomous on; };
  prefix fd00:ec2::/64 { AdvOnLink on; AdvAutonomous off; };
};
`,
    );
    this.#spawn([
      "radvd",
      "--nodaemon",
      "-C",
      `${dir}/radvd.conf`,
      "-p",
      `${dir}/radvd.pid`,
      "-m",
      "stderr",
    ], () => {});
    let listening = false;
    this.#spawn([
      Deno.execPath(),
      "eval",
      SERVER,
      metadata,
      JSON.stringify(files),
    ], (line) => {
      const msg = JSON.parse(line);
      if (msg.listening) listening = true;
      else this.requests.push(msg);
    });
    await waitFor("the NoCloud seed server", () => listening, 30_000);
  }

  /** Runs `cmd` in the network's namespace (the host side). */
  run(
    cmd: string,
    args: string[],
    opts: { timeoutMs?: number } = {},
  ): Promise<RunResult> {
    return run("ip", ["netns", "exec", this.ns, cmd, ...args], {
      timeoutMs: 30_000,
      ...opts,
    });
  }

  /** Starts `argv` in the namespace; `onLine` gets each stdout line. */
  #spawn(argv: string[], onLine: (line: string) => void): void {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.ns, ...argv],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#children.push(child);
    (async () => {
      let rest = "";
      for await (
        const chunk of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        const lines = (rest + chunk).split("\n");
        rest = lines.pop()!;
        lines.filter(Boolean).forEach(onLine);
      }
    })().catch(() => {});
  }

  /**
   * Kills radvd and the seed server and deletes the namespace (bridge and
   * tap with it). Kill the VM's qemu first.
   */
  async close(): Promise<void> {
    for (const child of this.#children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited
      }
      await child.status;
    }
    this.#children = [];
    await run("ip", ["netns", "del", this.ns]).catch(() => {});
  }
}
