/**
 * The environment of the SFTP upload tests: a real slapd whose users are
 * posixAccounts (uidNumber, gidNumber: what NSS needs), a real etcd, the
 * upload service (sshd and nslcd in their own namespaces) on a free port,
 * and OpenSSH's clients. Temp files live under /var/lib, not /tmp: sshd wants
 * every directory above a chroot root-owned and not world-writable.
 * `close()` stops the service, slapd and etcd and removes the temp dir.
 */
import { createHash } from "node:crypto";
import { type Config, parseConfig } from "../../core/config.ts";
import {
  type EtcdServer,
  freePort,
  startEtcd,
} from "../../core/etcd_server.ts";
import type { SshKey } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import { Store } from "../../core/store.ts";
import { type SftpService, startSftp } from "../../scripts/sftp/service.ts";
import { ldapConfig } from "./identity_fixtures.ts";
import { BASE_DN, type Slapd, startSlapd } from "./slapd.ts";

/**
 * LDIF of a user that is also a posixAccount with uid = gid = `uid`, with a
 * real login shell: the service, not the directory, must keep shells away.
 */
export function posixUserLdif(name: string, uid: number): string {
  return `dn: uid=${name},ou=users,${BASE_DN}
objectClass: inetOrgPerson
objectClass: posixAccount
uid: ${name}
cn: ${name}
sn: ${name}
uidNumber: ${uid}
gidNumber: ${uid}
homeDirectory: /upload
loginShell: /bin/sh
userPassword: ${name}-pw
`;
}

/** What a test gets from `startSftpEnv()`. */
export interface SftpEnv {
  dir: string;
  uploadDir: string;
  config: Config;
  store: Store;
  sftp: SftpService;
  slapd: Slapd;
  etcd: EtcdServer;
  close(): Promise<void>;
}

/** Starts slapd (with `users`), etcd and the upload service. */
export async function startSftpEnv(
  users: Record<string, number>,
): Promise<SftpEnv> {
  const dir = await Deno.makeTempDir({
    dir: "/var/lib",
    prefix: "ucloud-sftp-test-",
  });
  await Deno.chmod(dir, 0o755);
  const closers: (() => Promise<void> | void)[] = [
    () => Deno.remove(dir, { recursive: true }),
  ];
  const close = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    const slapd = await startSlapd();
    closers.push(() => slapd.close());
    await slapd.add(
      Object.entries(users).map(([n, uid]) => posixUserLdif(n, uid)).join(
        "\n",
      ),
    );
    const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
    closers.push(() => etcd.stop());
    const uploadDir = `${dir}/www`;
    const config = parseConfig({
      stateDir: `${dir}/state`,
      etcd: { endpoints: [etcd.endpoint], prefix: "/sftp-test" },
      images: { uploadDir },
      identity: { ldap: ldapConfig(slapd) },
      sftp: { port: freePort(), listen: ["127.0.0.1"] },
    }, () => undefined);
    const store = Store.connect(config.etcd);
    closers.push(() => store.close());
    const sftp = await startSftp(config, { store });
    closers.push(() => sftp.stop());
    return { dir, uploadDir, config, store, sftp, slapd, etcd, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A new ed25519 key pair in `dir`; returns the private key's path and the public line. */
export async function makeKey(
  dir: string,
  name: string,
): Promise<{ path: string; publicKey: string }> {
  const path = `${dir}/${name}`;
  const out = await new Deno.Command("ssh-keygen", {
    args: ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path],
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return { path, publicKey: (await Deno.readTextFile(`${path}.pub`)).trim() };
}

/** Writes an SshKey document as the keys API would (core/image_schemas.ts). */
export async function putKey(
  store: Store,
  owner: string,
  name: string,
  publicKey: string,
): Promise<void> {
  const [type, blob, comment] = publicKey.split(/\s+/);
  const digest = createHash("sha256").update(atob(blob), "latin1").digest(
    "base64",
  );
  const doc: SshKey = {
    name,
    owner,
    type,
    publicKey,
    fingerprint: `SHA256:${digest.replace(/=+$/, "")}`,
    comment,
    createdAt: new Date().toISOString(),
  };
  await store.txn().put(keys.sshKey(owner, name), doc).commit();
}

/** Deletes a key document. */
export async function deleteKey(
  store: Store,
  owner: string,
  name: string,
): Promise<void> {
  await store.txn().delete(keys.sshKey(owner, name)).commit();
}

/** The result of an OpenSSH client run. */
export interface ClientResult {
  code: number;
  stdout: string;
  stderr: string;
}

const CLIENT_OPTS = [
  "-o",
  "StrictHostKeyChecking=no",
  "-o",
  "UserKnownHostsFile=/dev/null",
  "-o",
  "BatchMode=yes",
  "-o",
  "IdentitiesOnly=yes",
  "-o",
  "ConnectTimeout=20",
  "-o",
  "LogLevel=ERROR",
];

async function client(cmd: string, args: string[]): Promise<ClientResult> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

/** Runs `sftp -b` with a batch of commands as `user` with `key`. */
export async function sftpBatch(
  env: Pick<SftpEnv, "dir" | "sftp">,
  user: string,
  key: string,
  commands: string[],
): Promise<ClientResult> {
  const batch = `${env.dir}/batch-${crypto.randomUUID()}`;
  await Deno.writeTextFile(batch, commands.join("\n") + "\n");
  try {
    return await client("sftp", [
      ...CLIENT_OPTS,
      "-i",
      key,
      "-P",
      String(env.sftp.port),
      "-b",
      batch,
      `${user}@127.0.0.1`,
    ]);
  } finally {
    await Deno.remove(batch);
  }
}

/** Runs `ssh` as `user` with `key` and more arguments. */
export function ssh(
  env: SftpEnv,
  user: string,
  key: string,
  args: string[],
): Promise<ClientResult> {
  return client("ssh", [
    ...CLIENT_OPTS,
    "-i",
    key,
    "-p",
    String(env.sftp.port),
    "-l",
    user,
    ...args,
  ]);
}
