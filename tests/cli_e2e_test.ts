/**
 * The CLI (`bin/ucloud`) against the real API over HTTP, a worker and qemu.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { qemuPids, ROOT, startCluster } from "./helpers/cluster.ts";

async function ucloud(api: string, ...args: string[]) {
  const out = await new Deno.Command(`${ROOT}bin/ucloud`, {
    args,
    env: { UCLOUD_API: api },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("ucloud CLI creates, lists, stops, starts and deletes a VM end to end", async () => {
  const c = await startCluster();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    createApp({ store: c.store }).fetch,
  );
  const api = `http://127.0.0.1:${server.addr.port}`;
  try {
    await c.addWorker({ name: "h1" });
    const bad = await ucloud(
      api,
      "vm",
      "create",
      "--name",
      "w",
      "--cpus",
      "0",
      "--memory",
      "128",
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--cpus/);

    const created = await ucloud(
      api,
      "vm",
      "create",
      "--name",
      "web1",
      "--cpus",
      "1",
      "--memory",
      "128",
    );
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /is running on h1/);
    assert.match(created.stderr, /pending|scheduled|starting|running/);

    const list = await ucloud(api, "vm", "list");
    assert.match(list.stdout, /^ID\s+NAME\s+CPUS\s+MEM\s+PHASE\s+HOST/m);
    assert.match(list.stdout, /web1\s+1\s+128Mi\s+running\s+h1/);
    const json = JSON.parse(
      (await ucloud(api, "vm", "show", "web1", "--json")).stdout,
    );
    assert.equal(json.spec.name, "web1");
    assert.equal((await qemuPids(`/vms/${json.id}/`)).length, 1);

    assert.equal((await ucloud(api, "vm", "stop", "web1")).code, 0);
    assert.equal((await qemuPids(`/vms/${json.id}/`)).length, 0);
    assert.equal((await ucloud(api, "vm", "start", "web1")).code, 0);
    assert.equal((await qemuPids(`/vms/${json.id}/`)).length, 1);

    const hosts = await ucloud(api, "host", "list");
    assert.match(hosts.stdout, /h1\s+active\s+yes\s+1\/4/);
    const tasks = await ucloud(api, "task", "list", "--vm", json.id);
    assert.match(tasks.stdout, /vm\.create/);
    assert.match(tasks.stdout, /vm\.stop/);

    const del = await ucloud(api, "vm", "delete", "web1");
    assert.equal(del.code, 0, del.stderr);
    assert.equal((await qemuPids(`/vms/${json.id}/`)).length, 0);
    const missing = await ucloud(api, "vm", "show", json.id);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found|Cannot find/i);
  } finally {
    await server.shutdown();
    await c.stop();
  }
});
