/**
 * Tests of parseConfig() (core/config.ts): defaults, environment over file,
 * and the refusal of bad values, section by section.
 */
import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";

const none = () => undefined;

Deno.test("parseConfig() has safe defaults", () => {
  const c = parseConfig({}, none);
  assert.equal(c.worker.leaseTtlSeconds, 3);
  assert.equal(c.worker.leaseMarginMs, 1000);
  assert.equal(c.etcd.prefix, "/ucloud/v1");
  assert.equal(c.qemu.accel, "auto");
});

Deno.test("parseConfig() refuses a lease margin that leaves no time to fence", () => {
  assert.throws(
    () =>
      parseConfig({ worker: { leaseTtlSeconds: 1, leaseMarginMs: 900 } }, none),
    /worker\.leaseMarginMs: .*two thirds of the lease TTL/,
  );
  assert.throws(
    () => parseConfig({}, (n) => ({ UCLOUD_LEASE_TTL: "0" })[n]),
    /worker\.leaseTtlSeconds/,
  );
  assert.equal(
    parseConfig(
      {},
      (n) => ({ UCLOUD_LEASE_TTL: "1", UCLOUD_LEASE_MARGIN_MS: "300" })[n],
    )
      .worker.leaseMarginMs,
    300,
  );
});

Deno.test("parseConfig() names every bad field; environment wins over the file", () => {
  assert.throws(
    () => parseConfig({ api: { port: 70000 }, qemu: { accel: "xen" } }, none),
    (err: Error) =>
      /api\.port/.test(err.message) && /qemu\.accel/.test(err.message),
  );
  const c = parseConfig(
    { worker: { host: "file-host" } },
    (n) => ({ UCLOUD_HOST: "env-host" })[n],
  );
  assert.equal(c.worker.host, "env-host");
});

Deno.test("parseConfig() has rebalancer defaults and refuses bad ones", () => {
  const s = parseConfig({}, none).scheduler;
  assert.equal(s.rebalanceSchedule, "* * * * *");
  assert.equal(s.rebalanceMaxMoves, 2);
  assert.equal(s.rebalanceThreshold, 0.25);
  assert.equal(s.rebalanceRunning, false);
  const env = parseConfig({}, (n) =>
    ({
      UCLOUD_REBALANCE_SCHEDULE: "*/5 * * * *",
      UCLOUD_REBALANCE_MAX_MOVES: "0",
      UCLOUD_REBALANCE_RUNNING: "1",
    })[n]).scheduler;
  assert.equal(env.rebalanceSchedule, "*/5 * * * *");
  assert.equal(env.rebalanceMaxMoves, 0);
  assert.equal(env.rebalanceRunning, true);
  assert.throws(
    () => parseConfig({}, (n) => ({ UCLOUD_REBALANCE_RUNNING: "yes" })[n]),
    /scheduler\.rebalanceRunning/,
  );
  assert.throws(
    () =>
      parseConfig({
        scheduler: { rebalanceSchedule: "hourly", rebalanceThreshold: 2 },
      }, none),
    (err: Error) =>
      /scheduler\.rebalanceSchedule: .*5 fields/.test(err.message) &&
      /scheduler\.rebalanceThreshold/.test(err.message),
  );
});

Deno.test("parseConfig() reads the shutdown-drain flag of SIGTERM", () => {
  assert.equal(parseConfig({}, none).worker.shutdownDrain, false);
  const on = parseConfig({}, (n) => ({ UCLOUD_SHUTDOWN_DRAIN: "1" })[n]);
  assert.equal(on.worker.shutdownDrain, true);
  const off = parseConfig(
    { worker: { shutdownDrain: true } },
    (n) => ({ UCLOUD_SHUTDOWN_DRAIN: "off" })[n],
  );
  assert.equal(off.worker.shutdownDrain, false);
});

Deno.test("parseConfig() reads the host's disk and the local-disk flag", () => {
  const d = parseConfig({}, none);
  assert.equal(d.worker.diskMiB, undefined);
  assert.equal(d.worker.localDisk, true);
  const c = parseConfig(
    { worker: { localDisk: false } },
    (n) => ({ UCLOUD_HOST_DISK: "51200" })[n],
  );
  assert.equal(c.worker.diskMiB, 51200);
  assert.equal(c.worker.localDisk, false);
  assert.throws(
    () => parseConfig({}, (n) => ({ UCLOUD_HOST_DISK: "lots" })[n]),
    /worker\.diskMiB/,
  );
});

Deno.test("parseConfig() has an identity section, enabled by an LDAP URL", () => {
  const d = parseConfig({}, none);
  assert.equal(d.identity.enabled, false);
  assert.equal(d.identity.ldap.url, "ldap://127.0.0.1:389");
  assert.equal(d.identity.otp.mode, "local");
  const f = parseConfig(
    { identity: { ldap: { url: "ldap://dir:389" } } },
    none,
  );
  assert.equal(f.identity.enabled, true);
  assert.equal(f.identity.ldap.url, "ldap://dir:389");
  const env = {
    UCLOUD_LDAP_URL: "ldaps://ldap.example",
    UCLOUD_LDAP_BIND_PASSWORD: "pw",
    UCLOUD_IDENTITY_KEY_FILE: "/etc/ucloud/identity.key",
  } as Record<string, string>;
  const e = parseConfig({}, (n) => env[n]);
  assert.equal(e.identity.enabled, true);
  assert.equal(e.identity.ldap.url, "ldaps://ldap.example");
  assert.equal(e.identity.ldap.bindPassword, "pw");
  assert.equal(e.identity.keyFile, "/etc/ucloud/identity.key");
  assert.equal(
    parseConfig({ identity: { enabled: false } }, (n) => env[n]).identity
      .enabled,
    false,
  );
  assert.throws(
    () => parseConfig({ identity: { ldap: { url: "http://x" } } }, none),
    /identity\.ldap\.url/,
  );
});

Deno.test("network settings: defaults, environment, and refused values", () => {
  const d = parseConfig({}, none).network;
  assert.equal(d.pool, "fdc1:d00::/48");
  assert.equal(d.vniMin, 100);
  assert.equal(d.mode, "multicast");
  assert.equal(d.vxlanPort, 4789);
  assert.deepEqual(d.publicBridges, []);
  const env = {
    UCLOUD_NET_POOL: "fd12:3456::/56",
    UCLOUD_NET_MODE: "unicast",
    UCLOUD_UNDERLAY: "eth1",
    UCLOUD_UNDERLAY_ADDRESS: "fd12::7",
    UCLOUD_PUBLIC_BRIDGES: "br0,br1",
  } as Record<string, string>;
  const e = parseConfig({}, (n) => env[n]).network;
  assert.equal(e.pool, "fd12:3456::/56");
  assert.equal(e.mode, "unicast");
  assert.equal(e.underlayDevice, "eth1");
  assert.equal(e.underlayAddress, "fd12::7");
  assert.deepEqual(e.publicBridges, ["br0", "br1"]);
  for (const network of [{ pool: "fd00::/72" }, { pool: "nope" }]) {
    assert.throws(() => parseConfig({ network }, none), /network\.pool/);
  }
  assert.throws(
    () => parseConfig({ network: { vniMin: 500, vniMax: 100 } }, none),
    /network\.vniMin/,
  );
  assert.throws(
    () => parseConfig({ network: { mode: "broadcast" } }, none),
    /network\.mode/,
  );
});

Deno.test("parseConfig() derives worker.runDir from stateDir under /run/ucloud, one per state dir", () => {
  const a = parseConfig({ stateDir: "/srv/a/h1" }, none).worker.runDir;
  const b = parseConfig({ stateDir: "/srv/b/h1" }, none).worker.runDir;
  assert.match(a, /^\/run\/ucloud\/h1-[0-9a-f]{12}$/);
  assert.match(b, /^\/run\/ucloud\/h1-[0-9a-f]{12}$/);
  assert.notEqual(a, b);
  assert.equal(parseConfig({ stateDir: "/srv/a/h1/" }, none).worker.runDir, a);
  assert.equal(
    parseConfig({}, (n) => ({ UCLOUD_RUN_DIR: "/run/x" })[n]).worker.runDir,
    "/run/x",
  );
});

Deno.test("parseConfig() caps serial logs at 1 MiB unless told", () => {
  assert.equal(parseConfig({}, none).qemu.serialLogMaxBytes, 1048576);
  assert.equal(
    parseConfig({}, (n) => ({ UCLOUD_SERIAL_LOG_MAX: "65536" })[n]).qemu
      .serialLogMaxBytes,
    65536,
  );
  assert.throws(
    () => parseConfig({ qemu: { serialLogMaxBytes: 10 } }, none),
    /qemu\.serialLogMaxBytes/,
  );
});

Deno.test("parseConfig() reads api.trustedProxies from the file or UCLOUD_API_TRUSTED_PROXIES and refuses bad entries", () => {
  assert.deepEqual(parseConfig({}, () => undefined).api.trustedProxies, []);
  const env = { UCLOUD_API_TRUSTED_PROXIES: "10.0.0.2, 2001:db8:1::/64" };
  assert.deepEqual(
    parseConfig(
      { api: { trustedProxies: ["192.0.2.1"] } },
      (n) => (env as Record<string, string>)[n],
    ).api.trustedProxies,
    ["10.0.0.2", "2001:db8:1::/64"],
  );
  assert.throws(
    () =>
      parseConfig(
        { api: { trustedProxies: ["proxy.example"] } },
        () => undefined,
      ),
    /api\.trustedProxies\.0: must be an IPv4 or IPv6 address or CIDR/,
  );
});

Deno.test("parseConfig() worker.stopTimeoutSeconds: 60 by default, UCLOUD_STOP_TIMEOUT_SECONDS overrides, 0 is invalid", () => {
  assert.equal(parseConfig({}, () => undefined).worker.stopTimeoutSeconds, 60);
  const env = { UCLOUD_STOP_TIMEOUT_SECONDS: "5" } as Record<string, string>;
  assert.equal(
    parseConfig({ worker: { stopTimeoutSeconds: 30 } }, (n) => env[n]).worker
      .stopTimeoutSeconds,
    5,
  );
  assert.throws(
    () => parseConfig({ worker: { stopTimeoutSeconds: 0 } }, () => undefined),
    /worker\.stopTimeoutSeconds/,
  );
});

Deno.test("parseConfig() has allocation ratio and memory reserve defaults, env overrides, and refuses bad ones", () => {
  const s = parseConfig({}, none).scheduler;
  assert.equal(s.cpuAllocationRatio, 4);
  assert.equal(s.memoryAllocationRatio, 1);
  assert.equal(s.reservedMemoryMiB, 512);
  const env = parseConfig(
    { scheduler: { cpuAllocationRatio: 2, reservedMemoryMiB: 1024 } },
    (n) =>
      ({
        UCLOUD_CPU_ALLOCATION_RATIO: "8",
        UCLOUD_MEMORY_ALLOCATION_RATIO: "1.5",
        UCLOUD_RESERVED_MEMORY: "0",
      })[n],
  ).scheduler;
  assert.equal(env.cpuAllocationRatio, 8);
  assert.equal(env.memoryAllocationRatio, 1.5);
  assert.equal(env.reservedMemoryMiB, 0);
  assert.throws(
    () =>
      parseConfig({
        scheduler: {
          cpuAllocationRatio: 0,
          memoryAllocationRatio: -1,
          reservedMemoryMiB: 1.5,
        },
      }, none),
    (err: Error) =>
      /scheduler\.cpuAllocationRatio/.test(err.message) &&
      /scheduler\.memoryAllocationRatio/.test(err.message) &&
      /scheduler\.reservedMemoryMiB/.test(err.message),
  );
});

Deno.test("parseConfig() has placement back-off and pending bound defaults and env overrides", () => {
  const s = parseConfig({}, none).scheduler;
  assert.equal(s.placementRetryMaxSeconds, 60);
  assert.equal(s.maxPendingVmsPerUser, 10);
  const env = parseConfig({}, (n) =>
    ({
      UCLOUD_PLACEMENT_RETRY_MAX_SECONDS: "5",
      UCLOUD_MAX_PENDING_VMS: "0",
    })[n]).scheduler;
  assert.equal(env.placementRetryMaxSeconds, 5);
  assert.equal(env.maxPendingVmsPerUser, 0);
  assert.throws(
    () => parseConfig({ scheduler: { placementRetryMaxSeconds: 0 } }, none),
    /scheduler\.placementRetryMaxSeconds/,
  );
});
