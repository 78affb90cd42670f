/** formatTable(): the tables of every listing. */
import assert from "node:assert/strict";
import { formatTable } from "./output.ts";

Deno.test("formatTable() pads columns, aligns right on demand and trims line ends", () => {
  const rows = [{ id: "vm-1", name: "web1", cpus: 2 }, {
    id: "vm-22",
    name: "db",
    cpus: 16,
  }];
  const table = formatTable(rows, [
    { header: "ID", value: (r) => r.id },
    { header: "CPUS", value: (r) => r.cpus, align: "right" },
    { header: "NAME", value: (r) => r.name },
  ]);
  assert.equal(
    table,
    [
      "ID     CPUS  NAME",
      "vm-1      2  web1",
      "vm-22    16  db",
    ].join("\n"),
  );
});

Deno.test("formatTable() prints only the header when there are no rows", () => {
  assert.equal(
    formatTable([], [{ header: "ID", value: String }, {
      header: "NAME",
      value: String,
    }]),
    "ID  NAME",
  );
});
