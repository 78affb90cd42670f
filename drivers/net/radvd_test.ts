/**
 * Tests of drivers/net/radvd.ts: the radvd configuration and the daemon's life
 * cycle in a real network namespace.
 */
import assert from "node:assert/strict";
import { run } from "../runner.ts";
import { netnsExec } from "./exec.ts";
import { Radvd, radvdConfig } from "./radvd.ts";

Deno.test("radvdConfig() advertises each bridge's prefix, the metadata prefix on-link only, no default route, the link MTU, from the bridge's own link-local address", () => {
  const text = radvdConfig([
    {
      bridge: "ucb7",
      prefix: "FDC1:D00:0:7:0::/64",
      mtu: 1430,
      managed: true,
      source: "FE80:0::4:ff:fe00:7",
    },
    {
      bridge: "ucb5",
      prefix: "fdc1:d00:0:5::/64",
      managed: false,
      source: "fe80::4:ff:fe00:5",
    },
  ]);
  const blocks = text.split(/^interface /m).slice(1);
  assert.equal(blocks.length, 2);
  assert.match(blocks[0], /^ucb5 \{/);
  assert.match(blocks[1], /^ucb7 \{/);
  for (const b of blocks) {
    assert.match(b, /AdvSendAdvert on;/);
    assert.match(b, /AdvDefaultLifetime 0;/);
    assert.match(b, /MinRtrAdvInterval 3;\n\tMaxRtrAdvInterval 10;/);
    assert.match(b, /IgnoreIfMissing on;/);
    assert.match(b, /AdvOnLink on;\n\t\tAdvAutonomous on;/);
    assert.match(
      b,
      /\tprefix fd00:ec2::\/64 \{\n\t\tAdvOnLink on;\n\t\tAdvAutonomous off;\n\t\};/,
    );
  }
  assert.match(blocks[0], /prefix fdc1:d00:0:5::\/64 \{/);
  assert.doesNotMatch(blocks[0], /AdvManagedFlag|AdvLinkMTU/);
  assert.match(blocks[1], /prefix fdc1:d00:0:7::\/64 \{/);
  assert.match(blocks[1], /AdvManagedFlag on;\n\tAdvOtherConfigFlag on;/);
  assert.match(blocks[1], /AdvLinkMTU 1430;/);
  // Never fe80::a9fe:a9fe, which every bridge also holds (the metadata
  // service's; the kernel may list it first).
  assert.match(
    blocks[0],
    /\tAdvRASrcAddress \{\n\t\tfe80::4:ff:fe00:5;\n\t\};\n/,
  );
  assert.match(
    blocks[1],
    /\tAdvRASrcAddress \{\n\t\tfe80::4:ff:fe00:7;\n\t\};\n/,
  );
  for (const source of ["fd00::1", "fe80::a9fe:a9fe", "fe80::1;"]) {
    assert.throws(
      () =>
        radvdConfig([{
          bridge: "ucb5",
          prefix: "fd00::/64",
          managed: false,
          source,
        }]),
      /source/,
      source,
    );
  }
  assert.throws(
    () =>
      radvdConfig([{
        bridge: "b",
        prefix: "fd00::/64",
        mtu: 1200,
        managed: false,
        source: "fe80::1",
      }]),
    /1280/,
  );
  assert.throws(
    () =>
      radvdConfig([{
        bridge: "b;x",
        prefix: "fd00::/64",
        managed: false,
        source: "fe80::1",
      }]),
    /Bad device/,
  );
});

Deno.test("Radvd starts, leaves alone, reloads and stops the daemon by its pidfile", async () => {
  const ns = `ucradvd-${crypto.randomUUID().slice(0, 8)}`;
  const dir = await Deno.makeTempDir({ prefix: "ucradvd-" });
  await run("ip", ["netns", "add", ns]);
  const exec = netnsExec(ns);
  const radvd = new Radvd({ dir, exec });
  try {
    await exec("ip", ["link", "add", "ucb5", "type", "bridge"]);
    await exec("ip", ["link", "set", "ucb5", "up"]);
    const one = [{
      bridge: "ucb5",
      prefix: "fd00:5::/64",
      managed: false,
      source: "fe80::5",
    }];
    assert.equal(await radvd.apply(one), "started");
    const pid = await radvd.pid();
    assert.ok(pid);
    // The daemon is detached from us (radvd daemonizes itself).
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    assert.notEqual(
      Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]),
      Deno.pid,
    );
    assert.equal(await radvd.apply(one), "unchanged");
    const two = [...one, {
      bridge: "ucb6",
      prefix: "fd00:6::/64",
      managed: true,
      source: "fe80::6",
    }];
    assert.equal(await radvd.apply(two), "reloaded");
    assert.equal(await radvd.pid(), pid);
    assert.match(await Deno.readTextFile(radvd.conf), /ucb6/);
    // A config radvd refuses is not installed; the running one stays.
    const refusing = new Radvd({
      dir,
      exec: (cmd, args, opts) =>
        args[0] === "--configtest"
          ? Promise.reject(new Error("radvd: syntax error"))
          : exec(cmd, args, opts),
    });
    await assert.rejects(
      refusing.apply(one),
      /Cannot use radvd config for ucb5/,
    );
    assert.match(await Deno.readTextFile(radvd.conf), /ucb6/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((f) => f.name).sort(), [
      "radvd.conf",
      "radvd.log",
      "radvd.pid",
    ]);
    // A fresh instance (worker restart) finds the same daemon.
    const again = new Radvd({ dir, exec });
    assert.equal(await again.pid(), pid);
    assert.equal(await again.apply([]), "stopped");
    assert.equal(await radvd.pid(), null);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    assert.equal(await again.apply([]), "absent");
  } finally {
    await radvd.stop();
    await run("ip", ["netns", "del", ns]);
    await Deno.remove(dir, { recursive: true });
  }
});
