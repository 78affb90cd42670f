/**
 * A throwaway OpenLDAP directory for tests: its own slapd.conf, mdb database
 * and pid file in a temp dir, a random loopback port, base `dc=ucloud,dc=test`.
 * The package's own configuration in /etc/ldap is never read or changed.
 * `stop()` kills the process by pid; `start()` again serves the same data on
 * the same port (for "directory down, then back" tests); `close()` stops it and
 * removes the temp dir.
 *
 * @example
 * ```ts
 * const slapd = await startSlapd();
 * try {
 *   await slapd.add(userLdif("alice", "alice-pw"));
 * } finally {
 *   await slapd.close();
 * }
 * ```
 */
import { freePort } from "../../core/etcd_server.ts";

export const BASE_DN = "dc=ucloud,dc=test";
export const ROOT_DN = `cn=admin,${BASE_DN}`;
export const ROOT_PW = "root-secret";
/** The bind DN ucloud uses to search (a plain entry, not the root DN). */
export const SERVICE_DN = `cn=ucloud,${BASE_DN}`;
export const SERVICE_PW = "service-secret";

const SCHEMAS = ["core", "cosine", "inetorgperson", "nis"];

function slapdConf(dir: string): string {
  return [
    ...SCHEMAS.map((s) => `include /etc/ldap/schema/${s}.schema`),
    "modulepath /usr/lib/ldap",
    "moduleload back_mdb",
    `pidfile ${dir}/slapd.pid`,
    `argsfile ${dir}/slapd.args`,
    "database mdb",
    "maxsize 67108864",
    `suffix "${BASE_DN}"`,
    `rootdn "${ROOT_DN}"`,
    `rootpw ${ROOT_PW}`,
    `directory ${dir}/db`,
    "access to attrs=userPassword by self write by anonymous auth by * none",
    "access to * by users read by anonymous auth by * none",
    "",
  ].join("\n");
}

/** The tree every test directory starts with: ou=users, ou=groups, the service entry. */
const BASE_LDIF = `dn: ${BASE_DN}
objectClass: dcObject
objectClass: organization
o: ucloud test
dc: ucloud

dn: ou=users,${BASE_DN}
objectClass: organizationalUnit
ou: users

dn: ou=groups,${BASE_DN}
objectClass: organizationalUnit
ou: groups

dn: ${SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: ucloud
userPassword: ${SERVICE_PW}
`;

/** LDIF of a user under ou=users. */
export function userLdif(name: string, password: string): string {
  return `dn: uid=${name},ou=users,${BASE_DN}
objectClass: inetOrgPerson
uid: ${name}
cn: ${name}
sn: ${name}
userPassword: ${password}
`;
}

/** LDIF of a groupOfNames under ou=groups with the given member uids. */
export function groupLdif(name: string, members: string[]): string {
  return [
    `dn: cn=${name},ou=groups,${BASE_DN}`,
    "objectClass: groupOfNames",
    `cn: ${name}`,
    ...members.map((m) => `member: uid=${m},ou=users,${BASE_DN}`),
    "",
  ].join("\n");
}

export interface Slapd {
  url: string;
  port: number;
  dir: string;
  /** The running process's pid, 0 while stopped. */
  readonly pid: number;
  /** Adds entries with ldapadd as the root DN. */
  add(ldif: string): Promise<void>;
  /** Starts slapd again on the same port and data (after `stop()`). */
  start(): Promise<void>;
  /** Kills slapd by pid and waits for it to exit; the data stays. */
  stop(): Promise<void>;
  /** Stops slapd and removes its temp dir. */
  close(): Promise<void>;
}

async function run(cmd: string, args: string[], stdin?: string) {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(
      `${cmd} failed (exit ${out.code}): ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
}

async function listening(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Starts a new directory with the base tree (about 50 ms on these machines). */
export async function startSlapd(): Promise<Slapd> {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-slapd-" });
  const port = freePort();
  const url = `ldap://127.0.0.1:${port}`;
  await Deno.mkdir(`${dir}/db`);
  await Deno.writeTextFile(`${dir}/slapd.conf`, slapdConf(dir));
  let child: Deno.ChildProcess | undefined;

  const stop = async () => {
    const c = child;
    if (!c) return;
    child = undefined;
    try {
      c.kill("SIGKILL");
    } catch { /* already gone */ }
    await c.status;
  };

  const start = async () => {
    if (child) return;
    // -d keeps slapd in the foreground and `exec` makes the child's pid
    // slapd's own; its log goes to a file so no pipe can fill up.
    const c = new Deno.Command("bash", {
      args: [
        "-c",
        'exec slapd -f "$1/slapd.conf" -h "$2/" -d 0 2>>"$1/slapd.log"',
        "slapd",
        dir,
        url,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child = c;
    const deadline = Date.now() + 10_000;
    let exited = false;
    c.status.then(() => exited = true);
    while (!(await listening(port))) {
      if (exited || Date.now() > deadline) {
        const err = await Deno.readTextFile(`${dir}/slapd.log`).catch(() => "");
        child = undefined;
        try {
          c.kill("SIGKILL");
        } catch { /* gone */ }
        await c.status;
        throw new Error(
          `Cannot start slapd on ${url}: ${err.trim().split("\n").slice(-5)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  const add = (ldif: string) =>
    run("ldapadd", ["-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PW], ldif);

  const slapd: Slapd = {
    url,
    port,
    dir,
    get pid() {
      return child?.pid ?? 0;
    },
    add,
    start,
    stop,
    close: async () => {
      await stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    await start();
    await add(BASE_LDIF);
  } catch (err) {
    await slapd.close();
    throw err;
  }
  return slapd;
}
