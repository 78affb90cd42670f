/**
 * Runs the API server: `deno run -A api/main.ts`. Reads the configuration
 * (core/config.ts), connects to etcd, serves on `api.listen`:`api.port`,
 * and shuts down cleanly on SIGINT or SIGTERM.
 *
 * @example
 * ```sh
 * UCLOUD_API_PORT=8750 deno run -A api/main.ts
 * ```
 */
import { loadConfig } from "../core/config.ts";
import { timeEtcdRequests } from "../core/etcd_metrics.ts";
import { logger } from "../core/log.ts";
import { PlacementCache } from "../scheduler/cache.ts";
import { Store } from "../core/store.ts";
import { ApiAnnouncement, metricsUrl } from "./announce.ts";
import { createApp } from "./app.ts";
import { EtcdSize } from "./etcd_size.ts";
import { EventHub } from "./event_hub.ts";
import { createIdentity } from "./identity.ts";
import { MonitoringTargets } from "./monitoring_targets.ts";
import { TaskCounts } from "./task_counts.ts";
import { VmPlacements } from "./vm_placements.ts";

const log = logger({ component: "api" });

/** Serves the API until SIGINT or SIGTERM. */
export async function main(): Promise<void> {
  const config = await loadConfig();
  const store = Store.connect(config.etcd);
  // Lets POST /v1/vms place VMs in the same transaction that creates them.
  const placement = PlacementCache.start(store, { log });
  // What /metrics reports about tasks, kept from watches.
  const taskCounts = TaskCounts.start(store, { log });
  const placements = VmPlacements.start(store, { log });
  const etcdSize = EtcdSize.start(store, {
    quotaBytes: config.maintenance.embeddedEtcd.quotaBytes,
    log,
  });
  // What GET /v1/monitoring/targets answers Prometheus, kept from watches.
  const monitoringTargets = MonitoringTargets.start(store, { log });
  const identity = config.identity.enabled
    ? await createIdentity({ store, config })
    : undefined;
  if (identity) {
    log.info("authentication on", {
      ldap: config.identity.ldap.url,
      otp: config.identity.otp.mode,
    });
  } else {
    log.warn(
      "authentication is OFF: every caller is the local admin; set identity.ldap.url (UCLOUD_LDAP_URL) to require TOTP",
    );
  }
  // The watches of /v1/events; closed at shutdown, or its streams keep the
  // server from finishing.
  const hub = new EventHub(store, { log });
  const app = createApp({
    store,
    config,
    identity,
    taskCounts,
    metrics: [
      ...placements.metrics,
      ...timeEtcdRequests(store),
      ...etcdSize.metrics,
    ],
    monitoringTargets,
    events: { hub },
  });
  let announcement: ApiAnnouncement | undefined;
  const server = Deno.serve({
    hostname: config.api.listen,
    port: config.api.port,
    onListen: ({ hostname, port }) => {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      log.info("api listening", {
        url: `http://${host}:${port}`,
        etcd: config.etcd.endpoints,
        prefix: config.etcd.prefix,
      });
      // Prometheus finds this replica through apimetrics/ (api/announce.ts).
      announcement = ApiAnnouncement.start(store, metricsUrl(hostname, port), {
        log,
      });
    },
  }, app.fetch);
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const stop = () => {
    log.info("api stopping");
    for (const s of signals) Deno.removeSignalListener(s, stop);
    // Out of discovery first: Prometheus stops scraping a replica that goes.
    // Then no new connections, and the event streams end (reset).
    const leave = announcement?.close() ?? Promise.resolve();
    leave.finally(() => {
      server.shutdown();
      hub.close();
    });
  };
  for (const s of signals) Deno.addSignalListener(s, stop);
  await server.finished;
  await announcement?.close();
  await monitoringTargets.close();
  await placement.close();
  await taskCounts.close();
  await placements.close();
  await etcdSize.close();
  store.close();
  log.info("api stopped");
}

if (import.meta.main) await main();
