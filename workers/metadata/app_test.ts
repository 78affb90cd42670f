import assert from "node:assert/strict";
import { eui64, linkLocal } from "../../core/netaddr.ts";
import { logger } from "../../core/log.ts";
import type { VmMetadata } from "../../resources/vms/metadata.ts";
import { createMetadataApp } from "./app.ts";
import { type ListenerKind, type MetadataPort, PortTable } from "./identity.ts";
import { Tokens } from "./token.ts";

const PREFIX = "fdc1:d00:0:5::/64";
const port = (vm: string, n: number, extra: Partial<MetadataPort> = {}) => {
  const mac = `02:c1:0d:00:00:${n.toString(16).padStart(2, "0")}`;
  return {
    name: `uct${n}`,
    vm,
    slot: 0,
    network: "net-1",
    bridge: "ucb5",
    mac,
    ipv6: eui64(PREFIX, mac),
    prefix: PREFIX,
    ...extra,
  };
};
const A = port("vm-a", 0x11, { ipv4: "192.0.2.10", subnet: "192.0.2.0/24" });
const B = port("vm-b", 0x12);
const META: Record<string, VmMetadata> = {
  "vm-a": {
    instanceId: "vm-a",
    hostname: "alpha",
    keys: ["ssh-ed25519 AAAA1 a@x", "ssh-ed25519 AAAA2 b@y"],
    keyNames: ["laptop", "desk"],
    userData: '#cloud-config\nruncmd: ["echo ü"]\n',
  },
  "vm-b": { instanceId: "vm-b", hostname: "beta", keys: [], keyNames: [] },
};

async function setup(requireToken = false) {
  const table = new PortTable([A, B]);
  const tokens = await Tokens.create();
  const app = createMetadataApp({
    identify: (l, r) => table.identify(l, r),
    data: (vm) => Promise.resolve(META[vm] ?? null),
    tokens,
    requireToken,
    log: logger({ test: "metadata-app" }),
  });
  const req = (
    path: string,
    remote: string,
    init: RequestInit = {},
    listener: ListenerKind = { kind: "ipv6" },
  ) => app.request(path, init, { listener, remote });
  return { app, req };
}

Deno.test("metadata app answers each VM about itself by its source address, on each listener", async () => {
  const { req } = await setup();
  const get = async (path: string, remote: string, l?: ListenerKind) => {
    const r = await req(path, remote, {}, l);
    return [r.status, await r.text()];
  };
  assert.deepEqual(await get("/latest/meta-data/instance-id", A.ipv6), [
    200,
    "vm-a",
  ]);
  assert.deepEqual(await get("/latest/meta-data/instance-id", B.ipv6), [
    200,
    "vm-b",
  ]);
  const ll = { kind: "link-local", bridge: "ucb5" } as const;
  assert.deepEqual(
    await get("/2009-04-04/meta-data/hostname", linkLocal(A.mac), ll),
    [200, "alpha"],
  );
  assert.deepEqual(
    await get("/latest/meta-data/local-hostname", "192.0.2.10", {
      kind: "ipv4",
    }),
    [200, "alpha"],
  );
  // A link-local source names no link on the global listener; another bridge is another link.
  assert.equal((await req("/latest/", linkLocal(A.mac))).status, 403);
  assert.equal(
    (await req("/latest/", linkLocal(A.mac), {}, {
      kind: "link-local",
      bridge: "ucb6",
    })).status,
    403,
  );
  assert.deepEqual(await get("/latest/meta-data/", A.ipv6), [
    200,
    "hostname\ninstance-id\nlocal-hostname\npublic-keys/",
  ]);
  assert.deepEqual(await get("/latest/meta-data/public-keys", A.ipv6), [
    200,
    "0=laptop\n1=desk",
  ]);
  assert.deepEqual(await get("/latest/meta-data/public-keys/1/", A.ipv6), [
    200,
    "openssh-key",
  ]);
  assert.deepEqual(
    await get("/latest/meta-data/public-keys/1/openssh-key", A.ipv6),
    [200, "ssh-ed25519 AAAA2 b@y\n"],
  );
  assert.equal(
    (await req("/latest/meta-data/public-keys/2/openssh-key", A.ipv6)).status,
    404,
  );
  assert.equal(
    (await req("/latest/meta-data/public-keys/0/openssh-key", B.ipv6)).status,
    404,
  );
  assert.equal((await req("/latest/user-data", B.ipv6)).status, 404);
  assert.equal((await req("/openstack/latest/user_data", B.ipv6)).status, 404);
  assert.deepEqual(await get("/nocloud/user-data", B.ipv6), [200, ""]);
  const ud = await req("/latest/user-data", A.ipv6);
  assert.deepEqual(
    new Uint8Array(await ud.arrayBuffer()),
    new TextEncoder().encode(META["vm-a"].userData),
  );
  const os = await (await req("/openstack/2012-08-10/meta_data.json", A.ipv6))
    .json();
  assert.deepEqual(os.public_keys, {
    "laptop": "ssh-ed25519 AAAA1 a@x",
    "desk": "ssh-ed25519 AAAA2 b@y",
  });
  assert.equal(os.uuid, "vm-a");
  assert.equal(
    (await req("/openstack/2099-01-01/meta_data.json", A.ipv6)).status,
    404,
  );
  const nd = await (await req("/openstack/latest/network_data.json", A.ipv6))
    .json();
  assert.deepEqual(nd.networks.map((n: { type: string }) => n.type), [
    "ipv6_slaac",
    "ipv4",
  ]);
  assert.equal(nd.networks[1].netmask, "255.255.255.0");
  assert.equal(nd.links[0].ethernet_mac_address, A.mac);
  assert.deepEqual(
    await (await req("/openstack/latest/vendor_data.json", A.ipv6)).json(),
    {},
  );
  assert.match(
    await (await req("/nocloud/network-config", A.ipv6)).text(),
    /addresses: \["192\.0\.2\.10\/24"\]/,
  );
});

Deno.test("metadata app refuses forwarded requests, unknown and ambiguous addresses, and other methods", async () => {
  const { req } = await setup();
  for (
    const h of [
      "X-Forwarded-For",
      "Forwarded",
      "X-Real-IP",
      "Via",
      "X-Forwarded-Host",
    ]
  ) {
    const r = await req("/latest/meta-data/instance-id", A.ipv6, {
      headers: { [h]: "1.2.3.4" },
    });
    assert.equal(r.status, 403, h);
    assert.doesNotMatch(await r.text(), /vm-a/);
  }
  assert.equal((await req("/latest/", "fdc1:d00:0:5::1")).status, 403);
  assert.equal((await req("/latest/", "::1")).status, 403);
  assert.equal(
    (await req("/latest/", "192.0.2.10")).status,
    403,
    "IPv4 on the IPv6 listener",
  );
  assert.equal((await req("/latest/", "not an address")).status, 403);
  assert.equal(
    (await req("/latest/meta-data/", A.ipv6, { method: "POST" })).status,
    405,
  );
  const table = new PortTable([
    A,
    port("vm-c", 0x13, {
      ipv4: "192.0.2.10",
      subnet: "192.0.2.0/24",
      network: "net-2",
    }),
  ]);
  assert.deepEqual(table.identify({ kind: "ipv4" }, "192.0.2.10"), {
    refused: "ambiguous address",
  });
});

Deno.test("metadata app IMDSv2: PUT gives a token of the caller's VM; a token of another VM is 401; requireToken makes it mandatory", async () => {
  for (const requireToken of [false, true]) {
    const { req } = await setup(requireToken);
    const put = (remote: string, ttl?: string) =>
      req("/latest/api/token", remote, {
        method: "PUT",
        headers: ttl ? { "X-aws-ec2-metadata-token-ttl-seconds": ttl } : {},
      });
    assert.equal((await put(A.ipv6)).status, 400);
    assert.equal((await put(A.ipv6, "0")).status, 400);
    assert.equal((await put(A.ipv6, "21601")).status, 400);
    const res = await put(A.ipv6, "21600");
    assert.equal(res.status, 200);
    const ta = await res.text();
    const tb = await (await put(B.ipv6, "60")).text();
    const get = (remote: string, token?: string) =>
      req("/latest/meta-data/instance-id", remote, {
        headers: token ? { "X-aws-ec2-metadata-token": token } : {},
      });
    assert.equal((await get(A.ipv6, ta)).status, 200);
    assert.equal((await get(A.ipv6, tb)).status, 401, "B's token for A");
    assert.equal((await get(A.ipv6, ta + "x")).status, 401);
    assert.equal((await get(A.ipv6)).status, requireToken ? 401 : 200);
    assert.equal(
      (await req("/nocloud/meta-data", A.ipv6)).status,
      requireToken ? 401 : 200,
    );
  }
});

Deno.test("Tokens.valid() is false once the TTL has passed", async () => {
  let now = 0;
  const tokens = await Tokens.create({ now: () => now });
  const t = await tokens.issue("vm-a", 2);
  assert.equal(await tokens.valid(t, "vm-a"), true);
  now = 1999;
  assert.equal(await tokens.valid(t, "vm-a"), true);
  now = 2000;
  assert.equal(await tokens.valid(t, "vm-a"), false);
  assert.equal(await tokens.valid("", "vm-a"), false);
  assert.equal(await tokens.valid("a.b.c", "vm-a"), false);
});

Deno.test("metadata app logs a refusal once per source address and reason per minute, not per request", async () => {
  const lines: string[] = [];
  let now = 0;
  const log = {
    ...logger(),
    info: (msg: string) => lines.push(msg),
  };
  const table = new PortTable([A]);
  const app = createMetadataApp({
    identify: (l, r) => table.identify(l, r),
    data: (vm) => Promise.resolve(META[vm] ?? null),
    tokens: await Tokens.create(),
    log,
    now: () => now,
  });
  const fwd = () =>
    app.request("/latest/", { headers: { "X-Forwarded-For": "x" } }, {
      listener: { kind: "ipv6" },
      remote: A.ipv6,
    });
  for (let i = 0; i < 100; i++) assert.equal((await fwd()).status, 403);
  assert.equal(lines.length, 1);
  await app.request("/latest/", {}, {
    listener: { kind: "ipv6" },
    remote: "::1",
  });
  assert.equal(lines.length, 2, "another address and reason is logged");
  now = 60_001;
  await fwd();
  assert.equal(lines.length, 3, "logged again after a minute");
});

Deno.test("metadata app answers 503 when the VM's metadata is not read within dataTimeoutMs (etcd away at start), instead of holding the request", async () => {
  const table = new PortTable([A]);
  const app = createMetadataApp({
    identify: (l, r) => table.identify(l, r),
    data: () => new Promise(() => {}),
    tokens: await Tokens.create(),
    log: logger(),
    dataTimeoutMs: 50,
  });
  const t0 = performance.now();
  const res = await app.request("/latest/meta-data/instance-id", {}, {
    listener: { kind: "ipv6" },
    remote: A.ipv6,
  });
  assert.equal(res.status, 503);
  assert.match(await res.text(), /not available/);
  assert.ok(performance.now() - t0 < 5_000);
});
