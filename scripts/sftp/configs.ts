/**
 * The files of the SFTP upload service, built without I/O: sshd's config
 * (publickey only, keys from etcd through `AuthorizedKeysCommand`, chrooted
 * `internal-sftp`, no TTY, no forwarding), nslcd's config (LDAP users with
 * posixAccount attributes as NSS users) and the nsswitch.conf of the
 * service's mount namespace (the machine's, with `ldap` for passwd and group).
 *
 * @example
 * ```ts
 * const text = sshdConfig({ port: 2222, listen: ["::"], ...paths });
 * ```
 */
import type { LdapConfig } from "../../core/ldap.ts";

/** Everything sshd's config names. */
export interface SshdOptions {
  port: number;
  listen: string[];
  hostKey: string;
  pidFile: string;
  /** `<uploadDir>`: a user is chrooted into `<uploadDir>/<user>`. */
  uploadDir: string;
  /** The AuthorizedKeysCommand as argv, `%u` for the user. */
  keysCommand: string[];
  keysCommandUser: string;
  /** Names that may never log in here (the machine's own accounts). */
  denyUsers: string[];
}

/** One sshd_config argument: `%` escaped, quoted when it holds spaces. */
function arg(value: string, tokens = false): string {
  if (/["\n\r\0]/.test(value)) {
    throw new TypeError(`Cannot put ${JSON.stringify(value)} in sshd_config`);
  }
  const v = tokens ? value : value.replaceAll("%", "%%");
  return /\s/.test(v) ? `"${v}"` : v;
}

/**
 * The one program a session runs: files only, no symlinks or hard links
 * (a link in an upload could point a root reader at a host file), created
 * for the user alone.
 */
const SFTP = "internal-sftp -d /upload -P symlink,hardlink -u 0077";

/** sshd_config of the upload service. */
export function sshdConfig(o: SshdOptions): string {
  const deny = o.denyUsers.filter((u) => /^[A-Za-z0-9._-]+$/.test(u));
  return [
    "# ucloud SFTP upload service (scripts/sftp): written at every start.",
    `Port ${o.port}`,
    ...o.listen.map((a) => `ListenAddress ${arg(a)}`),
    `HostKey ${arg(o.hostKey)}`,
    `PidFile ${arg(o.pidFile)}`,
    "LogLevel VERBOSE",
    "UseDNS no",
    "UsePAM no",
    "StrictModes yes",
    "PermitRootLogin no",
    ...(deny.length ? [`DenyUsers ${deny.join(" ")}`] : []),
    "AuthenticationMethods publickey",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "HostbasedAuthentication no",
    "PermitEmptyPasswords no",
    "AuthorizedKeysFile none",
    `AuthorizedKeysCommand ${
      o.keysCommand.map((a) => arg(a, a === "%u")).join(" ")
    }`,
    `AuthorizedKeysCommandUser ${arg(o.keysCommandUser)}`,
    `ChrootDirectory ${arg(o.uploadDir.replace(/\/+$/, ""))}/%u`,
    `ForceCommand ${SFTP}`,
    `Subsystem sftp ${SFTP}`,
    "PermitTTY no",
    "PermitUserRC no",
    "PermitUserEnvironment no",
    "DisableForwarding yes",
    "AllowTcpForwarding no",
    "AllowStreamLocalForwarding no",
    "AllowAgentForwarding no",
    "X11Forwarding no",
    "PermitTunnel no",
    "GatewayPorts no",
    "PermitListen none",
    "PermitOpen none",
    "PrintMotd no",
    "PrintLastLog no",
    "LoginGraceTime 30",
    "",
  ].join("\n");
}

/** The AuthorizedKeysCommand: scripts/sftp/authorized_keys.ts under Deno. */
export function keysCommand(o: {
  deno: string;
  script: string;
  endpoints: string[];
  prefix: string;
  timeoutMs: number;
}): string[] {
  const hosts = o.endpoints.map((e) => new URL(e).host);
  return [
    "/usr/bin/env",
    "-i",
    "HOME=/nonexistent",
    "NO_COLOR=1",
    "DENO_NO_UPDATE_CHECK=1",
    o.deno,
    "run",
    "--quiet",
    "--no-config",
    "--no-lock",
    "--no-prompt",
    `--allow-net=${hosts.join(",")}`,
    o.script,
    o.endpoints.join(","),
    o.prefix,
    String(o.timeoutMs),
    "%u",
  ];
}

function line(key: string, value: string): string {
  if (/[\n\r\0]/.test(value) || value.trim() !== value || value === "") {
    throw new TypeError(
      `Cannot put ${key} ${JSON.stringify(value)} in nslcd.conf`,
    );
  }
  return `${key} ${value}`;
}

const join = (rdn: string, base: string) => rdn ? `${rdn},${base}` : base;

/**
 * nslcd.conf for the configured directory: users are the entries of the
 * user filter that are also posixAccount (uidNumber, gidNumber), named by
 * the user attribute, with uidNumber >= `minUid`.
 */
export function nslcdConfig(
  ldap: LdapConfig,
  o: { minUid: number; logFile: string },
): string {
  const seconds = Math.max(1, Math.ceil(ldap.timeoutMs / 1000));
  return [
    "# ucloud SFTP upload service (scripts/sftp): written at every start.",
    "uid nslcd",
    "gid nslcd",
    line("log", `${o.logFile} info`),
    line("uri", ldap.url),
    line("base", ldap.baseDn),
    ...(ldap.bindDn
      ? [line("binddn", ldap.bindDn), line("bindpw", ldap.bindPassword)]
      : []),
    line("base passwd", join(ldap.userBase, ldap.baseDn)),
    line("filter passwd", `(&(objectClass=posixAccount)${ldap.userFilter})`),
    line("map passwd uid", ldap.userAttribute),
    line("base group", join(ldap.groupBase, ldap.baseDn)),
    "filter group (objectClass=posixGroup)",
    `nss_min_uid ${o.minUid}`,
    "nss_initgroups_ignoreusers ALLLOCAL",
    `timelimit ${seconds}`,
    `bind_timelimit ${seconds}`,
    "tls_cacertfile /etc/ssl/certs/ca-certificates.crt",
    "",
  ].join("\n");
}

/** The machine's nsswitch.conf with `ldap` last for passwd and group. */
export function nsswitchWithLdap(machine: string): string {
  const lines = machine.split("\n");
  for (const db of ["passwd", "group"]) {
    const re = new RegExp(`^\\s*${db}\\s*:`);
    const i = lines.findIndex((l) => re.test(l));
    if (i < 0) lines.push(`${db}: files ldap`);
    else if (!/\sldap(\s|$)/.test(lines[i])) {
      lines[i] = `${lines[i].replace(/\s+$/, "")} ldap`;
    }
  }
  return lines.join("\n");
}

/** The names in an /etc/passwd text. */
export function passwdNames(text: string): string[] {
  return text.split("\n").map((l) => l.split(":")[0].trim())
    .filter((n) => n && !n.startsWith("#") && !n.startsWith("+"));
}
