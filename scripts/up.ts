/**
 * `deno task up`: an all-in-one cloud on this machine. Starts an embedded
 * etcd (data in `<stateDir>/etcd`) unless `UCLOUD_ETCD` names one, builds the
 * tiny test guest, serves the API on loopback and runs one worker process for
 * this host. With `images.store` `rbd` and `images.rbd.cephConf` set to
 * `<stateDir>/ceph/ceph.conf` it also runs a one-node Ceph there
 * (scripts/ceph_fixture.sh; created at the first start, kept after).
 * With `prometheus.enabled` (the default) it runs Debian's Prometheus on
 * `prometheus.listen`:`prometheus.port` (scripts/up_prometheus.ts), which
 * finds the API and the worker through `GET /v1/monitoring/targets`; one
 * left running by an `up` that was killed is reused.
 * Ctrl-C stops the API, the worker, Prometheus, Ceph and etcd; the host's
 * fencer stops the VMs at the lease deadline, and the next start runs them
 * again.
 */
import { ApiAnnouncement, metricsUrl } from "../api/announce.ts";
import { createApp } from "../api/app.ts";
import { createIdentity } from "../api/identity.ts";
import { MonitoringTargets } from "../api/monitoring_targets.ts";
import { loadConfig } from "../core/config.ts";
import { type EtcdServer, startEtcd } from "../core/etcd_server.ts";
import { logger } from "../core/log.ts";
import { PlacementCache } from "../scheduler/cache.ts";
import { startSftp } from "./sftp/service.ts";
import { startUpPrometheus, upWorkerMetricsEnv } from "./up_prometheus.ts";
import { Store } from "../core/store.ts";

const root = new URL("../", import.meta.url).pathname;
const log = logger({ component: "up" });
const config = await loadConfig();
await Deno.mkdir(config.stateDir, { recursive: true });

let etcd: EtcdServer | undefined;
if (!Deno.env.get("UCLOUD_ETCD")) {
  const port = Number(new URL(config.etcd.endpoints[0]).port);
  const e = config.maintenance.embeddedEtcd;
  etcd = await startEtcd({
    dataDir: `${config.stateDir}/etcd`,
    port,
    compaction: { mode: e.compactionMode, retention: e.compactionRetention },
    quotaBytes: e.quotaBytes,
  });
  log.info("embedded etcd started", {
    endpoint: etcd.endpoint,
    data: etcd.dataDir,
  });
}

const cephDir = `${config.stateDir}/ceph`;
const localCeph = config.images.store === "rbd" &&
  config.images.rbd.cephConf === `${cephDir}/ceph.conf`;
const cephFixture = (action: "start" | "stop") =>
  new Deno.Command("bash", {
    args: [`${root}scripts/ceph_fixture.sh`, action, cephDir],
    stdout: "null",
    stderr: "inherit",
  }).output();
if (localCeph) {
  if (!(await cephFixture("start")).success) {
    throw new Error(`Cannot start the one-node Ceph in ${cephDir}`);
  }
  log.info("one-node ceph started", { conf: `${cephDir}/ceph.conf` });
}

const guest = await new Deno.Command("bash", {
  args: [`${root}scripts/build_guest.sh`],
  env: { UCLOUD_STATE: config.stateDir },
  stdout: "null",
  stderr: "inherit",
}).output();
if (!guest.success) {
  log.warn("test guest could not be built; image tiny is missing");
}

const store = Store.connect(config.etcd);
const placement = PlacementCache.start(store, { log });
const identity = config.identity.enabled
  ? await createIdentity({ store, config })
  : undefined;
if (!identity) {
  log.warn(
    "authentication is OFF: every caller is the local admin; set identity.ldap.url (UCLOUD_LDAP_URL) to require TOTP",
  );
}
// SFTP uploads need LDAP users; a failure to start leaves the rest usable.
const sftp = identity && config.sftp.enabled
  ? await startSftp(config, { store, log }).catch((err) => {
    log.warn("SFTP upload service not started", { error: String(err) });
    return undefined;
  })
  : undefined;
const sftpLine = sftp
  ? `port ${sftp.port}, uploads into ${config.images.uploadDir}/<user>/upload/`
  : "off (needs identity and sftp.enabled)";
const monitoringTargets = MonitoringTargets.start(store, { log });
const app = createApp({ store, config, identity, monitoringTargets });
const server = Deno.serve({
  hostname: config.api.listen,
  port: config.api.port,
  onListen: () => {},
}, app.fetch);
const apiUrl = `http://${
  config.api.listen.includes(":") ? `[${config.api.listen}]` : config.api.listen
}:${config.api.port}`;
// The web pages need the login (LDAP password and TOTP): no identity, none.
const webLine = identity
  ? `${apiUrl}/web/login  (your LDAP password and TOTP token)`
  : "no web pages: they need identity (set identity.ldap.url / UCLOUD_LDAP_URL)";
// Prometheus finds this API through apimetrics/ (api/announce.ts).
const announcement = ApiAnnouncement.start(
  store,
  metricsUrl(config.api.listen, config.api.port),
  { log },
);
// Like SFTP: a Prometheus that cannot start leaves the cloud usable.
let prometheusError = "";
const prometheus = config.prometheus.enabled
  ? await startUpPrometheus(config, apiUrl).catch((err) => {
    prometheusError = String(err);
    log.warn("Prometheus not started", { error: prometheusError });
    return undefined;
  })
  : undefined;
const prometheusLine = prometheus
  ? `${prometheus.url}  (alerts: ${prometheus.url}/alerts, targets: ${prometheus.url}/targets${
    prometheus.adopted ? "; was running, reconfigured" : ""
  })`
  : config.prometheus.enabled
  ? `not started: ${prometheusError.split("\n")[0]}`
  : "off (prometheus.enabled)";

const worker = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", "--unstable-cron", `${root}workers/main.ts`],
  env: {
    UCLOUD_STATE: config.stateDir,
    UCLOUD_ETCD: config.etcd.endpoints.join(","),
    // Its Prometheus scrapes it from this host's address.
    ...upWorkerMetricsEnv(config),
  },
  stdin: "null",
}).spawn();

console.log(`
ucloud is up.
  API:    ${apiUrl}  (OpenAPI: ${apiUrl}/v1/openapi.json, metrics: ${apiUrl}/metrics)
  etcd:   ${config.etcd.endpoints.join(",")}
  sftp:   ${sftpLine}
  prometheus: ${prometheusLine}
  state:  ${config.stateDir}
  host:   ${config.worker.host}

In a browser: ${webLine}

Or use the CLI from another terminal:
  export PATH="${root}bin:$PATH"
  ucloud vm create --name web1 --cpus 1 --memory 128
  ucloud network create --name lan
  ucloud vm create --name web2 --cpus 1 --memory 128 --network lan
  ucloud vm show web2      # its NIC: MAC and the IPv6 address it takes
  ucloud vm list
  ucloud host list
  ucloud task list
  ucloud --help

Ctrl-C stops the cloud; VMs stop at the lease deadline and start again at the next up.
`);

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  log.info("stopping");
  try {
    worker.kill("SIGTERM");
  } catch { /* already gone */ }
  await worker.status;
  await server.shutdown();
  await prometheus?.stop();
  await announcement.close();
  await monitoringTargets.close();
  await sftp?.stop();
  await placement.close();
  store.close();
  if (localCeph) await cephFixture("stop");
  await etcd?.stop();
  log.info("stopped");
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);
const status = await worker.status;
if (!stopping) {
  log.error("worker exited; stopping", { code: status.code });
  await shutdown();
}
