import assert from "node:assert/strict";
import { frame, SseStream } from "./sse_stream.ts";

const dec = new TextDecoder();

// The test sanitizers fail a test that leaves a timer behind.
Deno.test("SseStream stops its heartbeat and says why when the client goes away", async () => {
  const closed: string[] = [];
  const sse = new SseStream({
    signal: new AbortController().signal,
    heartbeatMs: 20,
    onClose: (why) => closed.push(why),
  });
  sse.send(frame("vm", { id: "vm-1" }, "7"));
  const reader = sse.body.getReader();
  let text = "";
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += dec.decode(value);
    }
  })();
  await new Promise((r) => setTimeout(r, 70));
  await reader.cancel();
  await reading;
  assert.match(
    text,
    /^id: 7\nevent: vm\ndata: {"id":"vm-1"}\n\n(: ping\n\n)+$/,
  );
  assert.deepEqual(closed, ["client gone"]);
  assert.equal(sse.send(frame("vm", {})), false);
});

Deno.test("SseStream ends on an aborted request signal", () => {
  const ctl = new AbortController();
  const closed: string[] = [];
  const sse = new SseStream({
    signal: ctl.signal,
    onClose: (why) => closed.push(why),
  });
  ctl.abort();
  assert.equal(sse.open, false);
  assert.deepEqual(closed, ["client gone"]);
});

Deno.test("SseStream replaces a full buffer with one reset and ends", async () => {
  const closed: string[] = [];
  const sse = new SseStream({
    signal: new AbortController().signal,
    maxBufferBytes: 100,
    onClose: (why) => closed.push(why),
  });
  assert.equal(sse.send(frame("vm", { pad: "x".repeat(40) })), true);
  assert.equal(sse.send(frame("vm", { pad: "x".repeat(40) })), false);
  assert.equal(
    await new Response(sse.body).text(),
    'event: reset\ndata: {"reason":"buffer full"}\n\n',
  );
  assert.deepEqual(closed, ["buffer full"]);
});

Deno.test("SseStream ends with the reason check() gives at a heartbeat", async () => {
  let revoked = false;
  const sse = new SseStream({
    signal: new AbortController().signal,
    heartbeatMs: 10,
    check: () => Promise.resolve(revoked ? "revoked" : null),
    onClose: () => {},
  });
  const text = new Response(sse.body).text();
  await new Promise((r) => setTimeout(r, 30));
  revoked = true;
  assert.match(
    await text,
    /^(: ping\n\n)+event: end\ndata: {"reason":"revoked"}\n\n$/,
  );
});
