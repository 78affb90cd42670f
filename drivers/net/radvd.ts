/**
 * Router advertisements for private networks: one radvd per host serves
 * every bridge that wants them. `radvdConfig` builds the config text (pure);
 * `Radvd` keeps the daemon in line with it: starts it when needed (radvd
 * daemonizes itself, so it outlives the worker and VMs keep their addresses
 * across a worker restart), SIGHUPs it when the config changed, stops it and
 * removes its files when no bridge needs it. The daemon is found by its
 * pidfile and checked against `/proc/<pid>/cmdline` before any signal, as
 * pids get reused.
 *
 * @example
 * ```ts
 * const radvd = new Radvd({ dir: "/var/lib/ucloud/net", exec: run });
 * await radvd.apply([{ bridge: "ucb5", prefix: "fd00:1:2:3::/64", mtu: 1430, managed: false }]);
 * await radvd.apply([]); // stops it
 * ```
 *
 * @module
 */
import type { Logger } from "../../core/log.ts";
import { canonicalPrefix6, formatIpv6, parseIpv6 } from "../../core/netaddr.ts";
import { METADATA } from "./host_input.ts";
import { checkDeviceName } from "./names.ts";
import type { Exec } from "./types.ts";

/** The /64 of the metadata service's `fd00:ec2::254`, announced on-link. */
export const METADATA_PREFIX = `${
  formatIpv6(parseIpv6(METADATA.ipv6[1]) & ~((1n << 64n) - 1n))
}/64`;

/** One bridge radvd advertises on. */
export interface RadvdInterface {
  bridge: string;
  /** The /64 guests configure by SLAAC. */
  prefix: string;
  /** Advertised link MTU (AdvLinkMTU); omitted: not advertised. */
  mtu?: number;
  /** Set the managed and other-config flags (a DHCPv6 server runs). */
  managed: boolean;
  /**
   * The bridge's own link-local address (the EUI-64 of its MAC), the only
   * source of its RAs (AdvRASrcAddress): never the metadata service's
   * `fe80::a9fe:a9fe` the bridge also holds, which the kernel may list
   * first and which the port firewall keeps off every port but taps.
   */
  source: string;
}

/**
 * The radvd.conf text for `ifaces`. Every bridge: RAs every 3 to 10 s, no
 * default route (router lifetime 0: a private network has no router), the
 * prefix on-link and autonomous, `IgnoreIfMissing` so radvd keeps running
 * while a bridge is being made or removed. Also {@linkcode METADATA_PREFIX}
 * on-link and not autonomous: the VM reaches the metadata service's
 * `fd00:ec2::254` directly (a Route Information Option alone would be
 * ignored: Linux's `accept_ra_rt_info_max_plen` is 0 by default). RAs
 * go out only from the interface's `source`, which must be a link-local
 * address other than the metadata one (radvd sends none while the bridge
 * lacks it).
 */
export function radvdConfig(ifaces: RadvdInterface[]): string {
  const out = [
    "# Written by ucloud (drivers/net/radvd.ts); changes are overwritten.",
  ];
  for (const i of [...ifaces].sort((a, b) => a.bridge < b.bridge ? -1 : 1)) {
    checkDeviceName(i.bridge);
    const prefix = canonicalPrefix6(i.prefix);
    if (i.mtu !== undefined && (!Number.isInteger(i.mtu) || i.mtu < 1280)) {
      throw new RangeError(`Bridge ${i.bridge}: IPv6 needs an MTU >= 1280`);
    }
    const source = raSource(i);
    out.push(
      `interface ${i.bridge} {`,
      "\tAdvSendAdvert on;",
      "\tIgnoreIfMissing on;",
      "\tMinRtrAdvInterval 3;",
      "\tMaxRtrAdvInterval 10;",
      "\tAdvDefaultLifetime 0;",
      ...(i.managed
        ? ["\tAdvManagedFlag on;", "\tAdvOtherConfigFlag on;"]
        : []),
      ...(i.mtu !== undefined ? [`\tAdvLinkMTU ${i.mtu};`] : []),
      "\tAdvRASrcAddress {",
      `\t\t${source};`,
      "\t};",
      `\tprefix ${prefix} {`,
      "\t\tAdvOnLink on;",
      "\t\tAdvAutonomous on;",
      "\t};",
      `\tprefix ${METADATA_PREFIX} {`,
      "\t\tAdvOnLink on;",
      "\t\tAdvAutonomous off;",
      "\t};",
      "};",
    );
  }
  return out.join("\n") + "\n";
}

/** `i.source` in canonical form; throws unless it is fit (see above). */
function raSource(i: RadvdInterface): string {
  let a: bigint;
  try {
    a = parseIpv6(i.source);
  } catch (err) {
    throw new RangeError(`Bridge ${i.bridge}: bad RA source ${i.source}`, {
      cause: err,
    });
  }
  if (a >> 64n !== 0xfe80n << 48n || a === parseIpv6(METADATA.ipv6[0])) {
    throw new RangeError(
      `Bridge ${i.bridge}: RA source ${i.source} is not the bridge's own link-local address`,
    );
  }
  return formatIpv6(a);
}

/** What {@linkcode Radvd.apply} did. */
export type RadvdChange =
  | "started"
  | "reloaded"
  | "unchanged"
  | "stopped"
  | "absent";

/** Options of {@linkcode Radvd}. */
export interface RadvdOptions {
  /** Directory of radvd.conf, radvd.pid and radvd.log (created). */
  dir: string;
  exec: Exec;
  log?: Logger;
}

/** The host's radvd, found by the pidfile in `dir`. */
export class Radvd {
  readonly conf: string;
  readonly pidfile: string;
  readonly logfile: string;
  #dir: string;
  #exec: Exec;
  #log?: Logger;

  constructor({ dir, exec, log }: RadvdOptions) {
    this.#dir = dir;
    this.conf = `${dir}/radvd.conf`;
    this.pidfile = `${dir}/radvd.pid`;
    this.logfile = `${dir}/radvd.log`;
    this.#exec = exec;
    this.#log = log;
  }

  /**
   * Makes radvd advertise on exactly `ifaces`: none stops it. Throws when
   * the config is refused (`radvd --configtest`) or radvd does not start,
   * naming the file and radvd's stderr.
   */
  async apply(
    ifaces: RadvdInterface[],
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<RadvdChange> {
    if (ifaces.length === 0) return await this.stop() ? "stopped" : "absent";
    const text = radvdConfig(ifaces);
    const pid = await this.pid();
    const old = await Deno.readTextFile(this.conf).catch(() => null);
    if (pid !== null && old === text) return "unchanged";

    await Deno.mkdir(this.#dir, { recursive: true });
    const tmp = `${this.conf}.new`;
    await Deno.writeTextFile(tmp, text, { mode: 0o644 });
    await Deno.chmod(tmp, 0o644);
    try {
      await this.#exec("radvd", ["--configtest", "-C", tmp], {
        signal,
        timeoutMs: 10_000,
      });
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      throw new Error(
        `Cannot use radvd config for ${ifaces.map((i) => i.bridge).join(" ")}`,
        {
          cause: err,
        },
      );
    }
    await Deno.rename(tmp, this.conf);
    if (pid !== null) {
      Deno.kill(pid, "SIGHUP");
      this.#log?.info("radvd reloaded", { pid, bridges: ifaces.length });
      return "reloaded";
    }
    await Deno.remove(this.pidfile).catch(() => {});
    await this.#exec("radvd", [
      "-C",
      this.conf,
      "-p",
      this.pidfile,
      "-m",
      "logfile",
      "-l",
      this.logfile,
    ], { signal, timeoutMs: 10_000 });
    const end = Date.now() + 5_000;
    while (true) {
      const started = await this.pid();
      if (started !== null) {
        this.#log?.info("radvd started", { pid: started, conf: this.conf });
        return "started";
      }
      if (Date.now() > end) {
        const tail = await Deno.readTextFile(this.logfile).catch(() => "");
        throw new Error(
          `radvd did not start (no live pid in ${this.pidfile}): ${
            tail.trim().split("\n").slice(-3).join("; ")
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * The pid of the radvd running with this config file, or null: the
   * pidfile's pid must be alive and its command line must be radvd with
   * `-C <conf>`.
   */
  async pid(): Promise<number | null> {
    const text = await Deno.readTextFile(this.pidfile).catch(() => "");
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0) return null;
    return isRadvdOf(pid, this.conf) ? pid : null;
  }

  /** Stops radvd (TERM, then KILL after 3 s) and removes its files. */
  async stop(): Promise<boolean> {
    const pid = await this.pid();
    if (pid !== null) {
      Deno.kill(pid, "SIGTERM");
      const end = Date.now() + 3_000;
      while (isRadvdOf(pid, this.conf)) {
        if (Date.now() > end) {
          Deno.kill(pid, "SIGKILL");
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      this.#log?.info("radvd stopped", { pid });
    }
    for (const f of [this.conf, this.pidfile, this.logfile]) {
      await Deno.remove(f).catch(() => {});
    }
    return pid !== null;
  }
}

/** Whether `pid` is a live (not zombie) radvd run with `-C conf`. */
function isRadvdOf(pid: number, conf: string): boolean {
  try {
    const args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    const i = args.indexOf("-C");
    return /(^|\/)radvd$/.test(args[0]) && i >= 0 && args[i + 1] === conf;
  } catch {
    return false;
  }
}
