/**
 * A one-host ucloud for the Debian image (scripts/build_debian_image.sh),
 * used as a user uses it: real etcd, one host namespace with a worker (qemu
 * driver under TCG, host networking with the metadata service, the file
 * image store), the API in process with `X-User` authentication, the
 * Debian image uploaded through the image API as `debian`, and a private
 * network `lan` with an {@linkcode SshClient} on its bridge in the host.
 * For tests/metadata_debian_e2e_test.ts and the `debian-boot` bench phase.
 *
 * @example
 * ```ts
 * await withDebianCloud(async (cloud) => {
 *   const key = await cloud.addKey("k1");
 *   const vm = await cloud.createVm({ name: "web", keys: ["k1"] });
 *   await cloud.waitRunning(vm.id);
 * });
 * ```
 */
import assert from "node:assert/strict";
import { createApp } from "../../api/app.ts";
import { ConfigSchema } from "../../core/config.ts";
import { ImagesConfig } from "../../core/config_images.ts";
import { Image } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import { type Network, Vm } from "../../core/schemas.ts";
import { bridgeOf } from "../../drivers/net/mod.ts";
import { type GeneratedKey, sshKeygen } from "../../resources/keys/_keygen.ts";
import { networkSpec } from "../../workers/net.ts";
import { type App, call, headerAuth, type Reply } from "./api.ts";
import { type Cluster, startCluster, waitFor } from "./cluster.ts";
import { ensureDebianImage } from "./debian_image.ts";
import { createHostNet, type HostNet } from "./netns.ts";
import { deleteResources, serveEtcdOn, startWorkerIn } from "./ns_worker.ts";
import { SshClient } from "./ssh_client.ts";

/** The one host's name. */
export const HOST = "h1";
/** The user everything is done as. */
export const USER = { "x-user": "alice" };

/** A generated key pair, added through the API. */
export interface UserKey extends GeneratedKey {
  name: string;
  /** The private key file, for `ssh -i`. */
  privateFile: string;
}

/** What {@linkcode withDebianCloud} hands its callback. */
export interface DebianCloud {
  c: Cluster;
  net: HostNet;
  app: App;
  /** A temp dir for keys and such (removed at the end). */
  dir: string;
  /** The private network `lan`. */
  network: Network;
  /**
   * The client on `lan`'s bridge in the host, made by `waitRunning` and
   * removed by `deleteVm`.
   */
  client: SshClient;
  /** Makes a key pair and adds it through `POST /v1/keys`. */
  addKey(name: string): Promise<UserKey>;
  /** `POST /v1/vms` from image `debian` on `lan`; the created VM. */
  createVm(fields: Record<string, unknown>): Promise<Vm>;
  /** Waits until the VM's phase is `running`; its document. */
  waitRunning(id: string): Promise<Vm>;
  /** `DELETE /v1/vms/{id}`, then waits until its document is gone. */
  deleteVm(id: string): Promise<void>;
  /** Stops and removes everything (idempotent). */
  close(): Promise<void>;
}

/** TCG boots of the Debian image are slow: a worker's lease must outlive load. */
const LEASE_TTL_S = 10;

/**
 * Runs `fn` on a fresh one-host cloud ({@linkcode startDebianCloud});
 * prints the worker's log when `fn` throws; removes everything it made.
 */
export async function withDebianCloud<T>(
  fn: (cloud: DebianCloud) => Promise<T>,
): Promise<T> {
  const cloud = await startDebianCloud();
  try {
    return await fn(cloud);
  } catch (err) {
    await cloud.c.printLogs(8000);
    throw err;
  } finally {
    await cloud.close();
  }
}

/**
 * Starts the one-host cloud of the module doc, with the image uploaded and
 * the network made; `close()` removes everything (also when this throws).
 */
export async function startDebianCloud(): Promise<DebianCloud> {
  const disk = await ensureDebianImage();
  const c = await startCluster({ leaseTtlSeconds: LEASE_TTL_S, guest: false });
  const dir = await Deno.makeTempDir({ prefix: "uc-debcloud-" });
  let net: HostNet | undefined;
  let client: SshClient | undefined;
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      await client?.close().catch(() => {});
      if (net) await deleteResources(c, net);
      await c.stop();
      await net?.destroy();
      await Deno.remove(dir, { recursive: true });
    })();
  try {
    net = await createHostNet([HOST]);
    const hostNet = net;
    await serveEtcdOn(c, net);
    const images = ImagesConfig.parse({
      uploadDir: `${c.dir}/www`,
      fileStoreDir: `${c.dir}/store`,
    });
    const configFile = `${c.dir}/images.json`;
    await Deno.writeTextFile(configFile, JSON.stringify({ images }));
    await startWorkerIn(c, net, {
      name: HOST,
      cpus: 2,
      memoryMiB: 2048,
      env: { UCLOUD_CONFIG: configFile },
    });
    const app = createApp({
      store: c.store,
      auth: headerAuth,
      config: { tasks: ConfigSchema.shape.tasks.parse(undefined), images },
    });
    await uploadImage(app, c, disk);
    const made = await api(app, "POST", "/v1/networks", { name: "lan" });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const network = made.body as Network;
    return {
      c,
      net,
      app,
      dir,
      network,
      close,
      get client() {
        if (!client) throw new Error("no client: no VM on lan is running");
        return client;
      },
      async addKey(name) {
        const key = await sshKeygen(dir, "ed25519", undefined, name);
        const r = await api(app, "POST", "/v1/keys", {
          name,
          publicKey: key.line,
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        return { ...key, name, privateFile: key.file.replace(/\.pub$/, "") };
      },
      async createVm(fields) {
        const r = await api(app, "POST", "/v1/vms", {
          cpus: 1,
          memory: 512,
          image: "debian",
          networks: [network.id],
          ...fields,
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        return r.body.vm as Vm;
      },
      async waitRunning(id) {
        const vm = await waitFor(
          `${id} running`,
          async () => {
            const v = (await c.store.get(keys.vm(id), Vm))?.value;
            if (v?.status.phase === "failed") {
              throw new Error(`${id} failed: ${JSON.stringify(v.status)}`);
            }
            return v?.status.phase === "running" && v;
          },
          300_000,
          500,
        );
        // The bridge exists once a VM on the network runs on the host.
        client ??= await SshClient.create(
          hostNet.host(HOST).ns,
          bridgeOf(networkSpec(network)),
          network.prefix,
        );
        return vm;
      },
      async deleteVm(id) {
        // The bridge goes with the network's last VM on the host, and a new
        // one would not have the client's port: the next VM gets a client.
        await client?.close();
        client = undefined;
        const r = await api(app, "DELETE", `/v1/vms/${id}`);
        assert.equal(r.status, 202, JSON.stringify(r.body));
        await waitFor(
          `${id} deleted`,
          async () => !(await c.store.get(keys.vm(id), Vm)),
          120_000,
          500,
        );
      },
    };
  } catch (err) {
    await c.printLogs(8000);
    await close();
    throw err;
  }
}

/** An API call as {@linkcode USER} with a JSON body. */
export function api(
  app: App,
  method: string,
  path: string,
  json?: unknown,
): Promise<Reply> {
  return call(app, method, path, { headers: USER, json });
}

/**
 * Uploads `disk` (qcow2) as image `debian` through `POST /v1/images` and
 * `PUT /v1/images/debian/upload`, and waits until the worker has imported
 * it (`ready`).
 */
async function uploadImage(app: App, c: Cluster, disk: string) {
  const made = await api(app, "POST", "/v1/images", { name: "debian" });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const size = (await Deno.stat(disk)).size;
  const file = await Deno.open(disk);
  const r = await app.request("/v1/images/debian/upload", {
    method: "PUT",
    headers: {
      ...USER,
      "content-type": "application/octet-stream",
      "content-range": `bytes 0-${size - 1}/${size}`,
    },
    body: file.readable,
  });
  assert.equal(r.status, 200, await r.text());
  const img = await waitFor(
    "image debian imported",
    async () => {
      const d = (await c.store.get(keys.image("alice/debian"), Image))?.value;
      return d && d.state !== "uploading" && d.state !== "importing" && d;
    },
    600_000,
    500,
  );
  assert.equal(img.state, "ready", img.reason ?? "");
}
