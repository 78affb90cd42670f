/**
 * `deno task sftp`: runs the SFTP upload service (scripts/sftp/service.ts)
 * for the configuration (file and environment, core/config.ts) until SIGINT
 * or SIGTERM, which stop sshd, nslcd and their namespaces. `up` starts the
 * same service itself when identity is enabled.
 */
import { loadConfig } from "../../core/config.ts";
import { logger } from "../../core/log.ts";
import { Store } from "../../core/store.ts";
import { startSftp } from "./service.ts";

const log = logger({ component: "sftp" });
const config = await loadConfig();
const store = Store.connect(config.etcd);
const sftp = await startSftp(config, { store, log });

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await sftp.stop();
  store.close();
  log.info("SFTP service stopped");
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
const status = await sftp.exited;
if (!stopping) {
  store.close();
  Deno.exit(status.code || 1);
}
