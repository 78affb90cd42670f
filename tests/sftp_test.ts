/**
 * The SFTP upload service end to end: real slapd (posixAccount users), etcd,
 * nslcd and OpenSSH's sshd in their own namespaces, and OpenSSH's sftp and
 * ssh clients. Keys are SshKey documents written straight into etcd, as the
 * keys API stores them.
 */
import assert from "node:assert/strict";
import { noSanitize } from "./helpers/api.ts";
import {
  deleteKey,
  makeKey,
  putKey,
  sftpBatch,
  type SftpEnv,
  ssh,
  startSftpEnv,
} from "./helpers/sftp_env.ts";
import { userLdif } from "./helpers/slapd.ts";

const ALICE = 20001;
const BOB = 20002;

async function waitFor(
  what: string,
  ok: () => Promise<boolean>,
  ms = 30_000,
): Promise<number> {
  const start = performance.now();
  while (!(await ok())) {
    if (performance.now() - start > ms) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return performance.now() - start;
}

const exists = (p: string) => Deno.lstat(p).then(() => true, () => false);

/** Pids of the processes in the service's mount namespace. */
async function namespacePids(nsPid: number): Promise<number[]> {
  const ns = await Deno.readLink(`/proc/${nsPid}/ns/mnt`).catch(() => null);
  if (!ns) return [];
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const link = await Deno.readLink(`/proc/${e.name}/ns/mnt`).catch(() =>
      null
    );
    if (link === ns) pids.push(Number(e.name));
  }
  return pids;
}

async function hostGetent(name: string): Promise<number> {
  const out = await new Deno.Command("getent", {
    args: ["passwd", name],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.code;
}

Deno.test({
  name:
    "sftp: an LDAP user uploads with a key from etcd into <uploadDir>/<user>/upload/, chrooted, without shell or forwarding, refused once the key is deleted",
  ...noSanitize,
  fn: async (t) => {
    const nsswitch = await Deno.readTextFile("/etc/nsswitch.conf");
    const nslcdConf = await Deno.readTextFile("/etc/nslcd.conf");
    const env: SftpEnv = await startSftpEnv({ alice: ALICE, bob: BOB });
    const { uploadDir, store } = env;
    let nsPids: number[] = [];
    try {
      nsPids = await namespacePids(env.sftp.nsPid);
      const alice = await makeKey(env.dir, "alice-key");
      const bob = await makeKey(env.dir, "bob-key");
      const src = `${env.dir}/disk.qcow2`;
      await Deno.writeTextFile(src, "not really a qcow2\n");

      await t.step({
        name: "alice's first key makes her upload dirs; her upload lands there",
        ...noSanitize,
        fn: async () => {
          await putKey(store, "alice", "k1", alice.publicKey);
          const ms = await waitFor(
            "alice's upload dir",
            () => exists(`${uploadDir}/alice/upload`),
          );
          console.log(`upload dir made ${Math.round(ms)} ms after the key`);
          const home = await Deno.stat(`${uploadDir}/alice`);
          assert.equal(home.uid, 0);
          assert.equal(home.mode! & 0o7777, 0o755);
          const up = await Deno.stat(`${uploadDir}/alice/upload`);
          assert.equal(up.uid, ALICE);
          assert.equal(up.gid, ALICE);
          assert.equal(up.mode! & 0o7777, 0o700);

          const r = await sftpBatch(env, "alice", alice.path, [
            `put ${src} /upload/disk.qcow2`,
            "ls /upload",
          ]);
          assert.equal(r.code, 0, r.stderr);
          const landed = `${uploadDir}/alice/upload/disk.qcow2`;
          assert.equal(await Deno.readTextFile(landed), "not really a qcow2\n");
          assert.equal((await Deno.stat(landed)).uid, ALICE);
          assert.equal((await Deno.stat(landed)).mode! & 0o777, 0o600);

          // No links: one in an upload could lead a root reader to host files.
          for (
            const cmd of [
              "ln -s /etc/shadow /upload/evil",
              "ln /upload/disk.qcow2 /upload/hard",
            ]
          ) {
            const r = await sftpBatch(env, "alice", alice.path, [cmd]);
            assert.equal(r.code, 1, `${cmd}: ${r.stderr}`);
          }
          assert.equal(await exists(`${uploadDir}/alice/upload/evil`), false);
          assert.equal(await exists(`${uploadDir}/alice/upload/hard`), false);
        },
      });

      await t.step({
        name:
          "bob can neither read nor list alice's files, nor log in as alice",
        ...noSanitize,
        fn: async () => {
          await putKey(store, "bob", "k1", bob.publicKey);
          await waitFor(
            "bob's upload dir",
            () => exists(`${uploadDir}/bob/upload`),
          );
          const ls = await sftpBatch(env, "bob", bob.path, ["ls -a /"]);
          assert.equal(ls.code, 0, ls.stderr);
          assert.doesNotMatch(ls.stdout, /alice|disk\.qcow2/);
          assert.match(ls.stdout, /upload/);
          const got = `${env.dir}/stolen`;
          for (
            const cmd of [
              `get /alice/upload/disk.qcow2 ${got}`,
              `get ../alice/upload/disk.qcow2 ${got}`,
              `get /../../alice/upload/disk.qcow2 ${got}`,
              "ls /../alice/upload",
              `ls ${uploadDir}/alice/upload`,
            ]
          ) {
            const r = await sftpBatch(env, "bob", bob.path, [cmd]);
            // 1: bob is logged in and the command failed (255: no login).
            assert.equal(r.code, 1, `${cmd}: ${r.stdout} ${r.stderr}`);
            assert.doesNotMatch(r.stdout, /disk\.qcow2\s*$/m, cmd);
            assert.equal(await exists(got), false, cmd);
          }
          const asAlice = await sftpBatch(env, "alice", bob.path, ["ls"]);
          assert.equal(asAlice.code, 255);
          assert.match(asAlice.stderr, /Permission denied/);
        },
      });

      await t.step({
        name: "a user without posixAccount attributes gets no dir and no login",
        ...noSanitize,
        fn: async () => {
          await env.slapd.add(userLdif("carol", "carol-pw"));
          const carol = await makeKey(env.dir, "carol-key");
          await putKey(store, "carol", "k1", carol.publicKey);
          assert.equal(await env.sftp.lookup("carol"), null);
          const r = await sftpBatch(env, "carol", carol.path, ["ls"]);
          assert.equal(r.code, 255);
          assert.equal(await exists(`${uploadDir}/carol`), false);
        },
      });

      await t.step({
        name: "no shell: a command or a TTY runs nothing",
        ...noSanitize,
        fn: async () => {
          const cases: [string[], RegExp][] = [
            [[], /This service allows sftp connections only/],
            [["-tt"], /PTY allocation request failed/],
          ];
          for (const [tty, says] of cases) {
            const r = await ssh(env, "alice", alice.path, [
              ...tty,
              "127.0.0.1",
              "echo ran-$((6*7)); id",
            ]);
            assert.doesNotMatch(r.stdout + r.stderr, /ran-42|uid=/);
            assert.match(r.stdout + r.stderr, says);
          }
        },
      });

      await t.step({
        name: "no forwarding: -L channels and -R listeners are refused",
        ...noSanitize,
        fn: async () => {
          const lport = 20000 + Math.floor(Math.random() * 20000);
          const fwd = new Deno.Command("ssh", {
            args: [
              "-o",
              "StrictHostKeyChecking=no",
              "-o",
              "UserKnownHostsFile=/dev/null",
              "-o",
              "BatchMode=yes",
              "-N",
              "-L",
              `127.0.0.1:${lport}:127.0.0.1:${env.etcd.port}`,
              "-i",
              alice.path,
              "-p",
              String(env.sftp.port),
              "alice@127.0.0.1",
            ],
            stdin: "null",
            stdout: "null",
            stderr: "piped",
          }).spawn();
          try {
            await waitFor("the -L listener", async () => {
              try {
                (await Deno.connect({ port: lport })).close();
                return true;
              } catch {
                return false;
              }
            });
            const conn = await Deno.connect({ port: lport });
            await conn.write(
              new TextEncoder().encode("GET /health HTTP/1.0\r\n\r\n"),
            );
            const buf = new Uint8Array(1024);
            const n = await conn.read(buf).catch(() => null);
            conn.close();
            assert.ok(!n, "etcd answered through the forward");
          } finally {
            fwd.kill("SIGTERM");
          }
          const err = new TextDecoder().decode((await fwd.output()).stderr);
          assert.match(err, /administratively prohibited/);

          const r = await ssh(env, "alice", alice.path, [
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            `127.0.0.1:${lport}:127.0.0.1:${env.etcd.port}`,
            "127.0.0.1",
          ]);
          assert.notEqual(r.code, 0);
          assert.match(r.stderr, /remote port forwarding failed/);
        },
      });

      await t.step({
        name: "a deleted key document is refused at the next login",
        ...noSanitize,
        fn: async () => {
          await deleteKey(store, "alice", "k1");
          const start = performance.now();
          const r = await sftpBatch(env, "alice", alice.path, ["ls"]);
          const ms = Math.round(performance.now() - start);
          assert.equal(r.code, 255, r.stdout);
          assert.match(r.stderr, /Permission denied/);
          console.log(`refused ${ms} ms after the delete (one login attempt)`);
          // Her files stay for the import; bob still logs in.
          assert.ok(await exists(`${uploadDir}/alice/upload/disk.qcow2`));
          assert.equal(
            (await sftpBatch(env, "bob", bob.path, ["ls"])).code,
            0,
          );
        },
      });

      await t.step({
        name: "the machine's NSS sees no LDAP user; its files are unchanged",
        ...noSanitize,
        fn: async () => {
          assert.ok(await env.sftp.lookup("alice"));
          assert.equal(await hostGetent("alice"), 2);
          assert.equal(await Deno.readTextFile("/etc/nsswitch.conf"), nsswitch);
          assert.equal(await Deno.readTextFile("/etc/nslcd.conf"), nslcdConf);
        },
      });
    } finally {
      await env.close();
    }
    assert.ok(nsPids.length >= 3, `namespace pids ${nsPids}`);
    for (const pid of nsPids) {
      assert.equal(await exists(`/proc/${pid}`), false, `pid ${pid} left`);
    }
    assert.equal(await exists(env.dir), false);
    assert.equal(await Deno.readTextFile("/etc/nsswitch.conf"), nsswitch);
  },
});
