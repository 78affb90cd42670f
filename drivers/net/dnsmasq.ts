/**
 * The dnsmasq daemon of one DHCP server: `runDnsmasq` starts it in the
 * server's namespace with the wanted config (checked by `dnsmasq --test`
 * first) or restarts it when its config changed; dnsmasq daemonizes, so it
 * outlives the worker. A daemon is found by its pidfile and checked
 * against `/proc/<pid>/cmdline` before any signal (`dnsmasqPid`,
 * `stopDnsmasq`, `stopStrays`).
 *
 * @example
 * ```ts
 * await runDnsmasq(server, { dir, under, exec, ns, root, signal });
 * const pid = await dnsmasqPid(dir);
 * if (pid !== null) await stopDnsmasq(pid, dhcpFiles(dir).conf);
 * ```
 *
 * @module
 */
import type { Logger } from "../../core/log.ts";
import type { DhcpServer } from "./dhcp_server.ts";
import { dhcpFiles, dnsmasqConfig } from "./dnsmasq_config.ts";
import type { Exec } from "./types.ts";

/**
 * The pid of the dnsmasq whose files are in `dir`, or null: the pidfile's
 * pid must be alive and its command line must be dnsmasq with this config.
 */
export async function dnsmasqPid(dir: string): Promise<number | null> {
  const f = dhcpFiles(dir);
  const text = await Deno.readTextFile(f.pid).catch(() => "");
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return isDnsmasqOf(pid, f.conf) ? pid : null;
}

/**
 * Starts or restarts the dnsmasq of `s` (files in `dir`) unless it runs
 * with the wanted config; "started" when it did.
 */
export async function runDnsmasq(
  s: DhcpServer,
  { dir, under, exec, ns, root, log, signal }: {
    /** The server's directory. */
    dir: string;
    /** The directory of all servers' directories (see `stopStrays`). */
    under: string;
    /** Runs commands in the host's namespace. */
    exec: Exec;
    /** Runs commands in the server's namespace. */
    ns: Exec;
    /** Runs commands in the root namespace. */
    root: Exec;
    log?: Logger;
    signal?: AbortSignal;
  },
): Promise<"started" | "unchanged"> {
  const f = dhcpFiles(dir);
  const conf = dnsmasqConfig(s, dir);
  const pid = await dnsmasqPid(dir);
  const read = (p: string) => Deno.readTextFile(p).catch(() => null);
  if (pid !== null && await read(f.conf) === conf) return "unchanged";

  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${f.conf}.new`;
  await Deno.writeTextFile(tmp, conf, { mode: 0o600 });
  await Deno.chmod(tmp, 0o600);
  try {
    await exec("dnsmasq", ["--test", `--conf-file=${tmp}`], {
      signal,
      timeoutMs: 10_000,
    });
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`dnsmasq refuses config ${tmp}`, { cause: err });
  }
  await Deno.rename(tmp, f.conf);
  if (pid !== null) await stopDnsmasq(pid, f.conf);
  await stopStrays(root, s.netns, under);
  await Deno.remove(f.pid).catch(() => {});
  await ns("dnsmasq", [`--conf-file=${f.conf}`], {
    signal,
    timeoutMs: 10_000,
  });
  const end = Date.now() + 5_000;
  while (true) {
    const started = await dnsmasqPid(dir);
    if (started !== null) {
      log?.info(
        pid === null ? "dnsmasq started" : "dnsmasq restarted",
        {
          network: s.network,
          pid: started,
          netns: s.netns,
          hosts: s.hosts.length,
        },
      );
      return "started";
    }
    if (Date.now() > end) {
      const tail = await read(f.log) ?? "";
      throw new Error(
        `dnsmasq did not start (no live pid in ${f.pid}): ${
          tail.trim().split("\n").slice(-3).join("; ")
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Stops every dnsmasq in `netns` whose config is under `under` (e.g. one
 * whose pidfile is gone).
 */
export async function stopStrays(
  root: Exec,
  netns: string,
  under: string,
): Promise<void> {
  const { stdout } = await root("ip", ["netns", "pids", netns], {
    timeoutMs: 10_000,
  });
  for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
    const conf = confOf(pid);
    if (conf?.startsWith(`${under}/`)) await stopDnsmasq(pid, conf);
  }
}

/** The `--conf-file` of live dnsmasq `pid`; null when it is not one. */
function confOf(pid: number): string | null {
  try {
    const args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    if (!/(^|\/)dnsmasq$/.test(args[0])) return null;
    const conf = args.find((a) => a.startsWith("--conf-file="));
    return conf ? conf.slice("--conf-file=".length) : null;
  } catch {
    return null;
  }
}

/** Whether `pid` is a live dnsmasq run with `--conf-file=<conf>`. */
function isDnsmasqOf(pid: number, conf: string): boolean {
  return confOf(pid) === conf;
}

/** SIGTERM, then SIGKILL after 3 s; only while `pid` is that dnsmasq. */
export async function stopDnsmasq(pid: number, conf: string): Promise<void> {
  if (!isDnsmasqOf(pid, conf)) return;
  Deno.kill(pid, "SIGTERM");
  const end = Date.now() + 3_000;
  while (isDnsmasqOf(pid, conf)) {
    if (Date.now() > end) {
      Deno.kill(pid, "SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
