/**
 * Tests of the QMP client (drivers/qemu/qmp.ts) against a scripted QMP server
 * on a unix socket: replies, events, concurrency, errors, timeouts and closed
 * connections.
 */
import assert from "node:assert/strict";
import { QmpClient, QmpError, queryStatus } from "./qmp.ts";

type Reply = (
  command: { execute: string; arguments?: unknown; id?: unknown },
) => unknown[];

/**
 * A QMP server on a temp unix socket speaking the protocol as qemu does: the
 * greeting, then one JSON object per line. `reply` returns the lines to send
 * for each command (events, replies, or nothing).
 */
async function withServer(
  reply: Reply,
  fn: (path: string, seen: string[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-qmp-" });
  const path = `${dir}/qmp.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const seen: string[] = [];
  const conns: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      void serve(conn, reply, seen);
    }
  })();
  try {
    await fn(path, seen);
  } finally {
    listener.close();
    await serving;
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // closed by the client
      }
    }
    await Deno.remove(dir, { recursive: true });
  }
}

async function serve(conn: Deno.Conn, reply: Reply, seen: string[]) {
  const send = (msg: unknown) =>
    conn.write(new TextEncoder().encode(JSON.stringify(msg) + "\r\n"));
  try {
    await send({ QMP: { version: {}, capabilities: ["oob"] } });
    let text = "";
    const buf = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return;
      text += new TextDecoder().decode(buf.subarray(0, n));
      let nl;
      while ((nl = text.indexOf("\n")) >= 0) {
        const command = JSON.parse(text.slice(0, nl));
        text = text.slice(nl + 1);
        seen.push(command.execute);
        for (const msg of reply(command)) await send(msg);
      }
    }
  } catch {
    // the test closed the connection
  }
}

const event = (name: string) => ({
  event: name,
  timestamp: { seconds: 1, microseconds: 2 },
});

const standard: Reply = ({ execute, arguments: args, id }) => {
  switch (execute) {
    case "qmp_capabilities":
      return [{ return: {}, id }];
    case "query-status":
      return [event("RESUME"), {
        return: { status: "running", running: true },
        id,
      }];
    case "echo":
      return [{ return: args, id }];
    case "hang":
      return [];
    default:
      return [{
        error: {
          class: "CommandNotFound",
          desc: `The command ${execute} has not been found`,
        },
        id,
      }];
  }
};

Deno.test("QmpClient negotiates capabilities and returns replies", async () => {
  await withServer(standard, async (path, seen) => {
    const qmp = await QmpClient.connect(path);
    try {
      assert.deepEqual(await qmp.execute("echo", { a: 1 }), { a: 1 });
      assert.deepEqual(seen, ["qmp_capabilities", "echo"]);
    } finally {
      await qmp.close();
    }
  });
});

Deno.test("QmpClient collects events interleaved with replies", async () => {
  await withServer(standard, async (path) => {
    const qmp = await QmpClient.connect(path);
    try {
      const status = await qmp.execute<{ status: string }>("query-status");
      assert.equal(status.status, "running");
      assert.deepEqual(qmp.events.map((e) => e.event), ["RESUME"]);
    } finally {
      await qmp.close();
    }
  });
});

Deno.test("QmpClient matches concurrent replies by id", async () => {
  await withServer(standard, async (path) => {
    const qmp = await QmpClient.connect(path);
    try {
      const results = await Promise.all(
        [1, 2, 3].map((n) => qmp.execute("echo", { n })),
      );
      assert.deepEqual(results, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    } finally {
      await qmp.close();
    }
  });
});

Deno.test("QmpClient throws QmpError on an error reply", async () => {
  await withServer(standard, async (path) => {
    const qmp = await QmpClient.connect(path);
    try {
      const err = await qmp.execute("nope").catch((e) => e);
      assert.ok(err instanceof QmpError);
      assert.equal(err.errorClass, "CommandNotFound");
      assert.equal(
        err.message,
        "Cannot run QMP command nope: CommandNotFound: The command nope has not been found",
      );
      assert.deepEqual(await qmp.execute("echo", {}), {});
    } finally {
      await qmp.close();
    }
  });
});

Deno.test("QmpClient times out and aborts a command without a reply", async () => {
  await withServer(standard, async (path) => {
    const qmp = await QmpClient.connect(path);
    try {
      await assert.rejects(() => qmp.execute("hang", {}, { timeoutMs: 50 }), {
        name: "TimeoutError",
        message: "Cannot run QMP command hang: timed out after 50 ms",
      });
      const reason = new Error("stop");
      const controller = new AbortController();
      setTimeout(() => controller.abort(reason), 20);
      const err = await qmp.execute("hang", {}, { signal: controller.signal })
        .catch((e) => e);
      assert.equal(err, reason);
    } finally {
      await qmp.close();
    }
  });
});

Deno.test("QmpClient rejects pending commands when the connection closes", async () => {
  await withServer(standard, async (path) => {
    const qmp = await QmpClient.connect(path);
    const pending = assert.rejects(
      qmp.execute("hang"),
      /Cannot run QMP command hang: connection closed/,
    );
    await qmp.close();
    await pending;
    await assert.rejects(() => qmp.execute("echo"), /connection closed/);
  });
});

Deno.test("QmpClient.connect() fails clearly without a server", async () => {
  await assert.rejects(
    () => QmpClient.connect("/nonexistent/qmp.sock"),
    /^Error: Cannot connect to QMP at \/nonexistent\/qmp.sock: /,
  );
});

Deno.test("QmpClient.connect() times out when capabilities get no reply", async () => {
  await withServer(() => [], async (path) => {
    await assert.rejects(() => QmpClient.connect(path, { timeoutMs: 100 }), {
      name: "TimeoutError",
    });
  });
});

Deno.test("queryStatus() returns the run state", async () => {
  await withServer(standard, async (path, seen) => {
    assert.equal(await queryStatus(path), "running");
    assert.deepEqual(seen, ["qmp_capabilities", "query-status"]);
  });
});
