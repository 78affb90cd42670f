/**
 * The SFTP upload service: OpenSSH's sshd (own config, port and host key)
 * and an nslcd for the configured LDAP directory, both in their own mount
 * and pid namespaces (scripts/sftp/namespace.sh), so LDAP users are visible
 * to this sshd only and the machine's own logins stay as they are. Users log
 * in with the SSH keys they added through the API (read from etcd at every
 * attempt by scripts/sftp/authorized_keys.ts) and are chrooted into
 * `<images.uploadDir>/<user>/`, whose directories `syncUploadDirs()` makes.
 *
 * Requires the Debian packages of scripts/install_sftp.sh and root.
 *
 * @example
 * ```ts
 * const sftp = await startSftp(config, { store, log });
 * await sftp.stop();
 * ```
 */
import { fileURLToPath } from "node:url";
import type { Config } from "../../core/config.ts";
import { type Logger, logger } from "../../core/log.ts";
import type { Store } from "../../core/store.ts";
import { sleep } from "../../core/watch.ts";
import {
  keysCommand,
  nslcdConfig,
  nsswitchWithLdap,
  passwdNames,
  sshdConfig,
} from "./configs.ts";
import { type PosixUser, syncUploadDirs } from "./upload_dirs.ts";

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const NEEDED = [
  "/usr/sbin/sshd",
  "/usr/sbin/nslcd",
  "/etc/nslcd.conf",
  "/usr/bin/unshare",
  "/usr/bin/nsenter",
  "/usr/bin/setpriv",
];

/** A running upload service. */
export interface SftpService {
  port: number;
  /** sshd's and nslcd's files and logs. */
  dir: string;
  /** The `unshare` process (this machine's pid namespace). */
  pid: number;
  /** PID 1 of the service's namespaces, as this machine's pids name it. */
  nsPid: number;
  /** Looks a user up through the service's NSS (`getent passwd`). */
  lookup(name: string): Promise<PosixUser | null>;
  /** Resolves when the namespace's processes are gone. */
  exited: Promise<Deno.CommandStatus>;
  /** Ends sshd, nslcd and the namespaces; resolves when they are gone. */
  stop(): Promise<void>;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.slice(0, 3).join(" ")} failed (exit ${out.code}): ${
        text.decode(out.stderr).trim()
      }`,
    );
  }
  return text.decode(out.stdout);
}

/** uid and gid of a user of the machine. */
async function ids(user: string): Promise<PosixUser> {
  const [uid, gid] = await Promise.all([
    run("id", ["-u", user]),
    run("id", ["-g", user]),
  ]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** sshd refuses a chroot whose path is not root-owned and unwritable by others. */
async function checkChrootParents(path: string): Promise<void> {
  const parts = path.split("/").filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = "/" + parts.slice(0, i).join("/");
    const st = await Deno.stat(p);
    if (st.uid !== 0 || ((st.mode ?? 0) & 0o022)) {
      throw new Error(
        `Cannot chroot users under ${path}: ${p} must be owned by root and not group or world writable (sshd ChrootDirectory)`,
      );
    }
  }
}

async function tail(path: string): Promise<string> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.trim().split("\n").slice(-5).join(" | ");
}

async function listening(hostname: string, port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname, port })).close();
    return true;
  } catch {
    return false;
  }
}

/** The address to reach a listen address from this machine. */
function reachable(listen: string): string {
  return listen === "::" ? "::1" : listen === "0.0.0.0" ? "127.0.0.1" : listen;
}

/** Writes sshd's and nslcd's files; returns the AuthorizedKeysCommand. */
async function prepare(config: Config, dir: string): Promise<string[]> {
  const uploadDir = config.images.uploadDir;
  await Deno.mkdir(uploadDir, { recursive: true, mode: 0o755 });
  await checkChrootParents(uploadDir);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await Deno.chmod(dir, 0o700);
  const hostKey = `${dir}/ssh_host_ed25519_key`;
  if (!(await Deno.stat(hostKey).catch(() => null))) {
    await run("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "ucloud-sftp",
      "-f",
      hostKey,
    ]);
  }
  await Deno.remove(`${dir}/nslcd`, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${dir}/nslcd`, { mode: 0o755 });
  const nslcd = await ids("nslcd");
  await Deno.chown(`${dir}/nslcd`, nslcd.uid, nslcd.gid);
  const write = (name: string, text: string, mode: number) =>
    Deno.writeTextFile(`${dir}/${name}`, text, { mode }).then(() =>
      Deno.chmod(`${dir}/${name}`, mode)
    );
  await write(
    "nsswitch.conf",
    nsswitchWithLdap(await Deno.readTextFile("/etc/nsswitch.conf")),
    0o644,
  );
  await write(
    "nslcd.conf",
    nslcdConfig(config.identity.ldap, {
      minUid: config.sftp.minUid,
      logFile: `${dir}/nslcd.log`,
    }),
    0o600,
  );
  const command = keysCommand({
    deno: Deno.execPath(),
    script: here("./authorized_keys.ts"),
    endpoints: config.etcd.endpoints,
    prefix: config.etcd.prefix,
    timeoutMs: config.etcd.timeoutMs,
  });
  await write(
    "sshd_config",
    sshdConfig({
      port: config.sftp.port,
      listen: config.sftp.listen,
      hostKey,
      pidFile: `${dir}/sshd.pid`,
      uploadDir,
      keysCommand: command,
      keysCommandUser: config.sftp.keysCommandUser,
      denyUsers: passwdNames(await Deno.readTextFile("/etc/passwd")),
    }),
    0o600,
  );
  // sshd's privilege separation directory, as Debian's ssh service makes it.
  await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  await run("/usr/sbin/sshd", ["-t", "-f", `${dir}/sshd_config`]);
  return command;
}

/** Runs the AuthorizedKeysCommand once as its user: it must start and reach etcd. */
async function probeKeysCommand(config: Config, command: string[]) {
  const who = await ids(config.sftp.keysCommandUser);
  await run("setpriv", [
    `--reuid=${who.uid}`,
    `--regid=${who.gid}`,
    "--clear-groups",
    "--",
    ...command.map((a) => a === "%u" ? "ucloud-probe" : a),
  ]).catch((err) => {
    throw new Error(
      `Cannot start the SFTP service: its AuthorizedKeysCommand fails as ${config.sftp.keysCommandUser} (it must read Deno and this checkout, and reach etcd): ${err.message}`,
    );
  });
}

async function childOf(pid: number, deadline: number): Promise<number> {
  while (Date.now() < deadline) {
    const text = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`)
      .catch(() => "");
    const child = Number(text.trim().split(/\s+/)[0]);
    if (child) return child;
    await sleep(10);
  }
  throw new Error(`Cannot find the namespace of unshare ${pid}`);
}

/** Starts the service; resolves once sshd accepts connections. */
export async function startSftp(
  config: Config,
  opts: { store: Store; log?: Logger },
): Promise<SftpService> {
  const log = opts.log ?? logger({ component: "sftp" });
  for (const p of NEEDED) {
    if (!(await Deno.stat(p).catch(() => null))) {
      throw new Error(
        `Cannot start the SFTP service: ${p} is missing; run scripts/install_sftp.sh`,
      );
    }
  }
  const dir = config.sftp.dir ?? `${config.stateDir}/sftp`;
  const command = await prepare(config, dir);
  await probeKeysCommand(config, command);

  const child = new Deno.Command("bash", {
    args: [
      "-c",
      'exec unshare --mount --propagation private --pid --fork --kill-child "$0" "$1" >>"$1/namespace.log" 2>&1',
      here("./namespace.sh"),
      dir,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const exited = child.status;
  let gone = false;
  exited.then(() => gone = true);
  const deadline = Date.now() + 15_000;
  const fail = async (why: string): Promise<never> => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await exited;
    const logs = await Promise.all(
      ["namespace.log", "nslcd.log", "sshd.log"].map(async (f) =>
        `${f}: ${await tail(`${dir}/${f}`)}`
      ),
    );
    throw new Error(
      `Cannot start the SFTP service: ${why}; ${logs.join("; ")}`,
    );
  };

  let nsPid = 0;
  try {
    nsPid = await childOf(child.pid, deadline);
  } catch (err) {
    await fail((err as Error).message);
  }
  const host = reachable(config.sftp.listen[0]);
  while (
    !(await listening(host, config.sftp.port)) ||
    !(await Deno.stat(`${dir}/nslcd/socket`).catch(() => null))
  ) {
    if (gone) await fail("the namespace exited");
    if (Date.now() > deadline) {
      await fail("sshd or nslcd did not come up in 15 s");
    }
    await sleep(20);
  }

  const lookup = async (name: string): Promise<PosixUser | null> => {
    const out = await new Deno.Command("nsenter", {
      args: [`--target=${nsPid}`, "--mount", "--", "getent", "passwd", name],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code === 2) return null;
    if (!out.success) {
      throw new Error(
        `Cannot look up ${name}: getent: ${
          new TextDecoder().decode(out.stderr)
        }`,
      );
    }
    const f = new TextDecoder().decode(out.stdout).trim().split(":");
    return { uid: Number(f[2]), gid: Number(f[3]) };
  };

  const ac = new AbortController();
  const sync = syncUploadDirs(opts.store, {
    uploadDir: config.images.uploadDir,
    lookup,
    minUid: config.sftp.minUid,
    signal: ac.signal,
    log,
  }).catch((err) =>
    log.error("upload dir sync stopped", { error: String(err) })
  );
  exited.then((s) => {
    if (!ac.signal.aborted) {
      log.error("SFTP service exited", { code: s.code, dir });
    }
  });
  log.info("SFTP service started", { port: config.sftp.port, dir });

  return {
    port: config.sftp.port,
    dir,
    pid: child.pid,
    nsPid,
    lookup,
    exited,
    stop: async () => {
      ac.abort();
      // PID 1 of the pid namespace: its end takes every process in it,
      // and unshare exits once they are all gone.
      try {
        Deno.kill(nsPid, "SIGKILL");
      } catch { /* gone */ }
      await exited;
      await sync;
    },
  };
}
