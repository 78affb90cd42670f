import assert from "node:assert/strict";
import { logger } from "../../core/log.ts";
import type { ListenerKind } from "./identity.ts";
import { Listeners, type ListenSpec } from "./listeners.ts";

const v4 = (id: string, hostname = "127.0.0.1"): ListenSpec => ({
  id,
  hostname,
  port: 0,
  listener: { kind: "ipv4" },
});

Deno.test("Listeners.want() opens wanted listeners, closes the others and tries a failed bind again later", async () => {
  const seen: [ListenerKind, string][] = [];
  const ls = new Listeners({
    handler: (_req, listener, remote) => {
      seen.push([listener, remote]);
      return new Response("hi");
    },
    log: logger({ test: "listeners" }),
    closeWaitMs: 200,
  });
  try {
    // 192.0.2.1 is on no interface here: that bind fails, the other opens.
    await ls.want([v4("a"), v4("b", "192.0.2.1")]);
    assert.deepEqual(ls.addresses().map((a) => a.spec.id), ["a"]);
    const port = ls.addresses()[0].port;
    const r = await fetch(`http://127.0.0.1:${port}/x`);
    assert.equal(await r.text(), "hi");
    assert.deepEqual(seen, [[{ kind: "ipv4" }, "127.0.0.1"]]);
    // Wanted again: the open one stays (same port), the failed one is tried.
    await ls.want([v4("a"), v4("b", "192.0.2.1")]);
    assert.deepEqual(ls.addresses().map((a) => [a.spec.id, a.port]), [[
      "a",
      port,
    ]]);
    // A new id is a new socket; the old one is closed.
    await ls.want([v4("c")]);
    assert.deepEqual(ls.addresses().map((a) => a.spec.id), ["c"]);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/x`));
    await ls.want([]);
    assert.deepEqual(ls.addresses(), []);
  } finally {
    await ls.close();
  }
});
