/**
 * The etcd lines of `ucloud host list`: each etcd member's database size
 * (file and in use), revision and alarms, from `GET /v1/maintenance/etcd`.
 *
 * @example
 * ```ts
 * const etcd = await etcdStatus(ctx.client);
 * print(ctx, etcdLines(etcd).join("\n"));
 * ```
 *
 * @module
 */
import { type Client, type EtcdStatus, orNull } from "./client.ts";

/**
 * The etcd status, or null from an API that does not serve it yet (an
 * older release answers 404).
 */
export async function etcdStatus(client: Client): Promise<EtcdStatus | null> {
  return await orNull(client.maintenance.etcd());
}

/** Bytes as MiB with one decimal. */
function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/**
 * One line per member, e.g. `etcd ucloud: revision 5012, db 24.0 MiB
 * (3.1 MiB in use), leader`.
 */
export function etcdLines(status: EtcdStatus | null): string[] {
  return (status?.members ?? []).map((m) => {
    if (m.error) return `etcd ${m.name}: not answering: ${m.error}`;
    const alarms = m.alarms.length ? `, ALARM ${m.alarms.join(" ")}` : "";
    return `etcd ${m.name}: revision ${m.revision}, db ${mib(m.dbSize)} ` +
      `(${mib(m.dbSizeInUse)} in use)${m.leader ? ", leader" : ""}${alarms}`;
  });
}
