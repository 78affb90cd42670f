/**
 * A running qemu's disk counters over QMP (`query-blockstats`): bytes and
 * requests read and written per drive, for the worker's `/metrics`.
 * One connection per call, closed after the answer; the limits cover the
 * handshake and the command, so one slow qemu costs at most `timeoutMs`.
 *
 * @example
 * ```ts
 * const stats = await blockStats(handle.qmp, { timeoutMs: 1000 });
 * stats[0]; // { device: "disk0", readBytes: 1234, writeBytes: 0, ... }
 * ```
 *
 * @module
 */
import { type QmpCallOptions, QmpClient } from "./qmp.ts";

/** One drive's counters since qemu started. */
export interface BlockStats {
  /** The drive id (`disk0`), else the qdev path or node name. */
  device: string;
  readBytes: number;
  writeBytes: number;
  readRequests: number;
  writeRequests: number;
}

/** The answer of `query-blockstats` as far as it is read here. */
interface QmpBlockStats {
  device?: string;
  qdev?: string;
  "node-name"?: string;
  stats?: Record<string, unknown>;
}

/** Parses the `return` of `query-blockstats`. */
export function parseBlockStats(ret: unknown): BlockStats[] {
  if (!Array.isArray(ret)) return [];
  return (ret as QmpBlockStats[]).flatMap((b) => {
    const device = b.device || b.qdev || b["node-name"];
    if (!device || !b.stats) return [];
    const n = (k: string) => Number(b.stats?.[k] ?? 0);
    return [{
      device,
      readBytes: n("rd_bytes"),
      writeBytes: n("wr_bytes"),
      readRequests: n("rd_operations"),
      writeRequests: n("wr_operations"),
    }];
  });
}

/** Connects to `qmpPath`, asks `query-blockstats` and closes. */
export async function blockStats(
  qmpPath: string,
  opts: QmpCallOptions = {},
): Promise<BlockStats[]> {
  const qmp = await QmpClient.connect(qmpPath, opts);
  try {
    return parseBlockStats(
      await qmp.execute("query-blockstats", undefined, opts),
    );
  } finally {
    await qmp.close();
  }
}
