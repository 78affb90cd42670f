/**
 * The fixture of the metadata service tests on loopback: a throwaway etcd
 * (cluster.ts), VMs with SSH keys and user data made by the resource
 * functions, and a `MetadataService` listening on loopback addresses
 * (`::1` and `127.0.0.1`, any free port) instead of the metadata
 * addresses; "VMs" are source addresses `127.0.0.<n>` that `curl
 * --interface` sends from, the host itself is `127.0.0.1`.
 *
 * @example
 * ```ts
 * await withMetadata({}, async (env) => {
 *   const vm = await env.vm("web", { keys: ["k1"] });
 *   await env.serve([{ vm, ipv4: "127.0.0.2" }]);
 *   const r = await env.get("127.0.0.2", "/latest/meta-data/instance-id");
 * });
 * ```
 */
import { logger } from "../../core/log.ts";
import { VmCreateInput } from "../../core/schemas.ts";
import { run } from "../../drivers/runner.ts";
import { sshKeygen } from "../../resources/keys/_keygen.ts";
import { createKey } from "../../resources/keys/create.ts";
import { createVm } from "../../resources/vms/create.ts";
import type { Store } from "../../core/store.ts";
import { MetadataService } from "../../workers/metadata/service.ts";
import { startCluster } from "./cluster.ts";

export const ALICE = { name: "alice", admin: false };

/** A reply as curl saw it: status, headers (lower case) and body bytes. */
export interface CurlReply {
  status: number;
  body: Uint8Array;
  text: string;
}

/** What a metadata test works with. */
export interface MetadataEnv {
  store: Store;
  service: MetadataService;
  /** Adds key `name` for alice; returns its authorized_keys line. */
  key(name: string): Promise<string>;
  /** Creates a VM of alice's; returns its id. */
  vm(name: string, more?: Partial<VmCreateInput>): Promise<string>;
  /** Serves these VMs, each at its IPv4 source address. */
  serve(vms: { vm: string; ipv4: string }[]): Promise<void>;
  /** A request from source address `from` to the listener of its family. */
  curl(
    from: string,
    path: string,
    opts?: { method?: string; headers?: Record<string, string> },
  ): Promise<CurlReply>;
}

/** Runs `f` with a fresh etcd and service; everything stops afterwards. */
export async function withMetadata(
  opts: { requireToken?: boolean },
  f: (env: MetadataEnv) => Promise<void>,
): Promise<void> {
  const cluster = await startCluster({ guest: false });
  const dir = await Deno.makeTempDir({ prefix: "ucloud-meta-" });
  const { store } = cluster;
  const deps = { store, config: cluster.config };
  const service = await MetadataService.start({
    store,
    log: logger({ test: "metadata" }),
    port: 0,
    addresses: { linkLocal: "fe80::a9fe:a9fe", ipv6: "::1", ipv4: "127.0.0.1" },
    requireToken: opts.requireToken,
  });
  const portOf = (family: "ipv4" | "ipv6") => {
    const a = service.addresses().find((a) => a.spec.listener.kind === family);
    if (!a) throw new Error(`no ${family} listener open`);
    return a.port;
  };
  let n = 0;
  const env: MetadataEnv = {
    store,
    service,
    async key(name) {
      const publicKey = (await sshKeygen(dir, "ed25519", undefined, name)).line;
      return (await createKey(store, ALICE, { name, publicKey })).publicKey;
    },
    async vm(name, more = {}) {
      const input = VmCreateInput.parse({
        name,
        cpus: 1,
        memory: 128,
        ...more,
      });
      return (await createVm(deps, ALICE, input)).vm.id;
    },
    async serve(vms) {
      const ports = vms.map(({ vm, ipv4 }, i) => ({
        name: `uct-test${i}`,
        network: "lo-net",
        mac: `02:c1:0d:00:ee:${(++n).toString(16).padStart(2, "0")}`,
        ipv6: `fdc1:d00:ee::${n}`,
        ipv4,
        vm,
      }));
      await service.update({
        networks: [{
          id: "lo-net",
          kind: "public",
          bridge: "lo",
          prefix: "fdc1:d00:ee::/64",
          ipv4: "127.0.0.0/8",
          ra: false,
          dhcp: { v6: false, v4: false },
        }],
        ports,
        peers: {},
      }, new Map(ports.map((p) => [p.name, { vm: p.vm, slot: 0 }])));
    },
    async curl(from, path, { method = "GET", headers = {} } = {}) {
      const v6 = from.includes(":");
      const host = v6
        ? `[::1]:${portOf("ipv6")}`
        : `127.0.0.1:${portOf("ipv4")}`;
      const out = `${dir}/body-${crypto.randomUUID()}`;
      const { stdout } = await run("curl", [
        "-sS",
        "--noproxy",
        "*",
        "--interface",
        from,
        "-X",
        method,
        ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
        "-o",
        out,
        "-w",
        "%{http_code}",
        `http://${host}${path}`,
      ], { timeoutMs: 10_000 });
      const body = await Deno.readFile(out);
      await Deno.remove(out);
      return {
        status: Number(stdout),
        body,
        text: new TextDecoder().decode(body),
      };
    },
  };
  try {
    await f(env);
  } finally {
    await service.close();
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** `text` parsed by a real YAML parser (python3's yaml.safe_load). */
export async function parseYaml(text: string): Promise<unknown> {
  const { stdout } = await run("python3", [
    "-c",
    "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
  ], { stdin: text, timeoutMs: 10_000 });
  return JSON.parse(stdout);
}
