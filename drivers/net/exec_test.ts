/**
 * Tests of drivers/net/exec.ts on real namespaces: deleteLink() of a veth
 * whose peer's namespace was deleted under it; currentNetns() in and out
 * of a named namespace.
 */
import assert from "node:assert/strict";
import { run } from "../runner.ts";
import { currentNetns, deleteLink, netnsExec } from "./exec.ts";

Deno.test("deleteLink() deletes a link, and one already gone is not an error", async () => {
  const host = `ucexec-${crypto.randomUUID().slice(0, 8)}`;
  const peer = `${host}-p`;
  await run("ip", ["netns", "add", host]);
  await run("ip", ["netns", "add", peer]);
  try {
    const exec = netnsExec(host);
    // v0 here, its peer v1 in the peer namespace.
    const addVeth = () =>
      exec("ip", [
        "link",
        "add",
        "v0",
        "type",
        "veth",
        "peer",
        "name",
        "v1",
        "netns",
        peer,
      ]);
    await addVeth();
    assert.equal(await deleteLink(exec, "v0"), true);
    await assert.rejects(exec("ip", ["link", "show", "v0"]));
    // The DHCP server's case: its namespace deleted, so the veth is gone
    // (or going) when the driver deletes it.
    await addVeth();
    await run("ip", ["netns", "del", peer]);
    for (let i = 0; i < 100; i++) {
      if (!(await exec("ip", ["link", "show"])).stdout.includes("v0@")) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await deleteLink(exec, "v0"), false);
    await assert.rejects(
      deleteLink(exec, "bad name!"),
      /Cannot run ip/,
      "other failures are still errors",
    );
  } finally {
    await run("ip", ["netns", "del", peer]).catch(() => {});
    await run("ip", ["netns", "del", host]);
  }
});

Deno.test("currentNetns() names the namespace a process runs in through ip netns exec, and none outside", async () => {
  const ns = `ucexec-${crypto.randomUUID().slice(0, 8)}`;
  await run("ip", ["netns", "add", ns]);
  try {
    const code = `import { currentNetns } from "${
      new URL("./exec.ts", import.meta.url).href
    }"; console.log(await currentNetns() ?? "-");`;
    const inside = await run("ip", [
      "netns",
      "exec",
      ns,
      Deno.execPath(),
      "eval",
      code,
    ], { timeoutMs: 60_000 });
    assert.equal(inside.stdout.trim(), ns);
    assert.equal(await currentNetns(), undefined);
  } finally {
    await run("ip", ["netns", "del", ns]);
  }
});
