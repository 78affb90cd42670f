/**
 * Upload by SFTP to a running VM, as the first test asks: an LDAP
 * user adds a key through the API, uploads the disk guest over SFTP, makes
 * an image of the file, and a VM boots from it; another user cannot name
 * the file; with the key deleted through the API the upload login is
 * refused. Real slapd, etcd, sshd, nslcd, worker, qemu-img and qemu.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { ConfigSchema, parseConfig } from "../core/config.ts";
import { freePort } from "../core/etcd_server.ts";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import { startSftp } from "../scripts/sftp/service.ts";
import { headerAuth, noSanitize } from "./helpers/api.ts";
import { waitFor, withCluster } from "./helpers/cluster.ts";
import { ensureDiskGuest } from "./helpers/disk_guest.ts";
import { ldapConfig } from "./helpers/identity_fixtures.ts";
import { makeKey, posixUserLdif, sftpBatch } from "./helpers/sftp_env.ts";
import { startSlapd } from "./helpers/slapd.ts";

Deno.test({
  name:
    "sftp to VM: a key added through the API uploads a disk over SFTP, an image of that file boots a VM; bob cannot name it; the deleted key is refused",
  ...noSanitize,
  fn: async () => {
    const base = await ensureDiskGuest();
    // sshd wants every directory above a chroot root-owned, not /tmp.
    const dir = await Deno.makeTempDir({
      dir: "/var/lib",
      prefix: "ucloud-sftp-e2e-",
    });
    await Deno.chmod(dir, 0o755);
    const slapd = await startSlapd();
    try {
      await slapd.add(
        [posixUserLdif("alice", 20011), posixUserLdif("bob", 20012)].join("\n"),
      );
      await withCluster(async (c) => {
        const images = {
          uploadDir: `${dir}/www`,
          fileStoreDir: `${dir}/store`,
        };
        const config = parseConfig({
          stateDir: `${dir}/state`,
          etcd: { endpoints: c.config.etcd.endpoints, prefix: "/test" },
          images,
          identity: { ldap: ldapConfig(slapd) },
          sftp: { port: freePort(), listen: ["127.0.0.1"] },
        }, () => undefined);
        const sftp = await startSftp(config, { store: c.store });
        try {
          const configFile = `${dir}/worker.json`;
          await Deno.writeTextFile(configFile, JSON.stringify({ images }));
          await c.addWorker({ name: "h1", env: { UCLOUD_CONFIG: configFile } });
          const app = createApp({
            store: c.store,
            auth: headerAuth,
            config: {
              tasks: ConfigSchema.shape.tasks.parse(undefined),
              images: config.images,
            },
          });
          const call = async (
            user: string,
            method: string,
            path: string,
            body?: unknown,
          ) => {
            const r = await app.request(path, {
              method,
              headers: { "x-user": user, "content-type": "application/json" },
              ...(body ? { body: JSON.stringify(body) } : {}),
            });
            return { status: r.status, body: await r.json() };
          };
          const key = await makeKey(dir, "alice-key");
          let r = await call("alice", "POST", "/v1/keys", {
            name: "laptop",
            publicKey: key.publicKey,
          });
          assert.equal(r.status, 201, JSON.stringify(r.body));
          const upload = `${images.uploadDir}/alice/upload`;
          await waitFor(
            "alice's upload dir",
            () => Deno.stat(upload).then(() => true, () => false),
          );
          const put = await sftpBatch({ dir, sftp }, "alice", key.path, [
            `put ${base} /upload/tiny.qcow2`,
          ]);
          assert.equal(put.code, 0, put.stderr);

          r = await call("bob", "POST", "/v1/images", {
            name: "stolen",
            file: "tiny.qcow2",
          });
          assert.equal(r.status, 400, JSON.stringify(r.body));
          assert.match(JSON.stringify(r.body), /file/);

          r = await call("alice", "POST", "/v1/images", {
            name: "tiny-disk",
            file: "tiny.qcow2",
          });
          assert.equal(r.status, 201, JSON.stringify(r.body));
          const img = await waitFor("image ready", async () => {
            const d = (await c.store.get(keys.image("alice/tiny-disk"), Image))
              ?.value;
            return d && d.state !== "importing" && d;
          }, 120_000);
          assert.equal(img.state, "ready", img.reason ?? "");

          r = await call("alice", "POST", "/v1/vms", {
            name: "fromsftp",
            cpus: 1,
            memory: 128,
            image: "tiny-disk",
          });
          assert.equal(r.status, 201, JSON.stringify(r.body));
          const id = r.body.vm.id as string;
          const vm = await waitFor("vm running", async () => {
            const v = (await c.store.get(keys.vm(id), Vm))?.value;
            return v?.status.phase === "running" && v;
          }, 120_000);
          const serial = (vm.status.handle as { serial: string }).serial;
          await waitFor(
            "booted from the uploaded disk",
            async () =>
              (await Deno.readTextFile(serial).catch(() => "")).includes(
                "UCLOUD-GUEST-READY",
              ),
            180_000,
          );

          r = await call("alice", "DELETE", "/v1/keys/laptop");
          assert.equal(r.status, 200, JSON.stringify(r.body));
          const again = await sftpBatch({ dir, sftp }, "alice", key.path, [
            "ls /upload",
          ]);
          assert.notEqual(again.code, 0, "the deleted key still logs in");
        } finally {
          await sftp.stop();
        }
      });
    } finally {
      await slapd.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
