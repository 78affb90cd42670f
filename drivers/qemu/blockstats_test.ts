/** Tests of drivers/qemu/blockstats.ts: the answer of `query-blockstats`. */
import assert from "node:assert/strict";
import { parseBlockStats } from "./blockstats.ts";

Deno.test("parseBlockStats() reads bytes and requests per drive, naming it by device, qdev or node", () => {
  const stats = (rd: number) => ({
    rd_bytes: rd,
    wr_bytes: 2,
    rd_operations: 3,
    wr_operations: 4,
    flush_operations: 5,
  });
  assert.deepEqual(
    parseBlockStats([
      {
        device: "disk0",
        qdev: "/machine/peripheral-anon/device[1]",
        stats: stats(1),
      },
      { device: "", qdev: "vd1", stats: stats(10) },
      { device: "", "node-name": "#block123", stats: stats(20) },
      { device: "", stats: stats(30) },
      { device: "nostats" },
    ]),
    [
      {
        device: "disk0",
        readBytes: 1,
        writeBytes: 2,
        readRequests: 3,
        writeRequests: 4,
      },
      {
        device: "vd1",
        readBytes: 10,
        writeBytes: 2,
        readRequests: 3,
        writeRequests: 4,
      },
      {
        device: "#block123",
        readBytes: 20,
        writeBytes: 2,
        readRequests: 3,
        writeRequests: 4,
      },
    ],
  );
  assert.deepEqual(parseBlockStats(null), []);
});
