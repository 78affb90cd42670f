import assert from "node:assert/strict";
import { eventLine, parseEvents } from "./events.ts";

Deno.test("parseEvents() keeps an event still coming and drops comments", () => {
  const { events, rest } = parseEvents(
    ': ping\n\nid: 7\nevent: vm-deleted\ndata: {"id":"vm-1"}\n\nevent: ta',
  );
  assert.deepEqual(events, [
    { event: "vm-deleted", id: "7", data: { id: "vm-1" } },
  ]);
  assert.equal(rest, "event: ta");
});

Deno.test("eventLine() prints a VM's phase, host and addresses and a task's state", () => {
  assert.equal(
    eventLine({
      event: "vm",
      data: {
        id: "vm-1",
        spec: { name: "web1" },
        status: { phase: "running", host: "h1" },
        nics: [{ ipv6: "2001:db8::1", ipv4: "10.0.0.2" }],
      },
    }),
    "vm vm-1 web1 running h1 2001:db8::1,10.0.0.2",
  );
  assert.equal(
    eventLine({
      event: "task",
      data: {
        id: "t-1",
        kind: "vm.start",
        state: "running",
        payload: { vm: "vm-1" },
        progress: "booting",
      },
    }),
    "task t-1 vm.start running vm-1 booting",
  );
  assert.equal(eventLine({ event: "synced", data: { revision: "9" } }), null);
});
