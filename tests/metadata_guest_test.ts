/**
 * Metadata as a real guest sees it: etcd, the API in process, one worker
 * in a host namespace with host networking (and so the metadata service),
 * and two tiny qemu guests under TCG typed into through their serial
 * consoles. A user adds two SSH keys, a private network with legacy IPv4
 * and DHCPv4, and two VMs with one key each through the API.
 *
 * - each guest has `fd00:ec2::/64` on-link from the RA (no address in it)
 *   and, from its DHCPv4 lease (option 121), `169.254.169.254` on-link;
 * - busybox wget in each guest fetches its own key, never the other's,
 *   from `fe80::a9fe:a9fe%eth0`, `fd00:ec2::254` and `169.254.169.254`,
 *   and reads its OpenStack `meta_data.json` and NoCloud `meta-data`;
 * - the user deletes guest 1's key: a wait loop in the guest sees it gone
 *   from the metadata within a second of the loop's start (after the
 *   API's answer), and guest 2 still has its own.
 *
 * The guest's busybox (Debian 12's 1.35) segfaults on `wget -T`: busybox
 * `timeout` bounds each fetch instead.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import type { Network, Vm } from "../core/schemas.ts";
import { METADATA } from "../drivers/net/host_input.ts";
import { sshKeygen } from "../resources/keys/_keygen.ts";
import { type App, call, headerAuth, noSanitize } from "./helpers/api.ts";
import { startCluster, waitFor } from "./helpers/cluster.ts";
import { guestExec, guestRun } from "./helpers/console.ts";
import { printNet, vmDoc, waitGuestAddr } from "./helpers/net_e2e.ts";
import { createHostNet } from "./helpers/netns.ts";
import {
  deleteResources,
  serveEtcdOn,
  startWorkerIn,
} from "./helpers/ns_worker.ts";

const ALICE = { "X-User": "alice" };
const [LL, GLOBAL] = METADATA.ipv6;
/** The three addresses as a guest writes them in a URL. */
const BASES = {
  "link-local": `http://[${LL}%eth0]`,
  "fd00:ec2::254": `http://[${GLOBAL}]`,
  "169.254.169.254": `http://${METADATA.ipv4}`,
};
const KEY = "/latest/meta-data/public-keys/0/openssh-key";
const SUBNET = "198.51.100.0/24";

/** A guest of the test: its document, console and key. */
interface Guest {
  vm: Vm;
  sock: string;
  keyName: string;
  /** The key's authorized_keys line as the API stored it. */
  key: string;
}

/**
 * What busybox wget in the guest got from `url` (a URL without quotes),
 * or null when it failed or took over 5 s.
 */
async function guestWget(sock: string, url: string): Promise<string | null> {
  const r = await guestExec(sock, `timeout 5 wget -q -O - '${url}'`, {
    timeoutMs: 30_000,
  });
  return r.code === 0 ? r.output : null;
}

async function addKey(app: App, dir: string, name: string): Promise<string> {
  const publicKey = (await sshKeygen(dir, "ed25519", undefined, name)).line;
  const r = await call(app, "POST", "/v1/keys", {
    headers: ALICE,
    json: { name, publicKey },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.publicKey;
}

/**
 * Runs one wait loop in the guest: fetches its NoCloud `meta-data` from
 * fd00:ec2::254 every 50 ms until a fetch succeeds without `blob` ("gone")
 * or a fetch started 1 s after the loop's start still has it ("still");
 * returns the verdict and the centiseconds of the guest's uptime from the
 * loop's start to the start of the deciding fetch.
 */
async function waitKeyGone(sock: string, blob: string) {
  const url = `${BASES["fd00:ec2::254"]}/nocloud/meta-data`;
  const now = "$(cut -d' ' -f1 /proc/uptime | tr -d .)";
  const out = await guestRun(
    sock,
    [
      `k='${blob}'; s=${now}; n=0; v=''`,
      `while [ -z "$v" ]; do t=${now}; n=$((n + 1))`,
      `if timeout 5 wget -q -O /tmp/md '${url}'; then grep -qF "$k" /tmp/md || v=gone; fi`,
      `[ -z "$v" ] && [ $((t - s)) -ge 100 ] && v=still`,
      `[ -z "$v" ] && sleep 0.05; done`,
      `echo "$v $n $((t - s))"`,
    ].join("; "),
    { timeoutMs: 60_000 },
  );
  const [verdict, fetches, cs] = out.trim().split(" ");
  return { verdict, fetches: Number(fetches), ms: Number(cs) * 10 };
}

Deno.test({
  name:
    "metadata in tiny qemu guests: each fetches only its own key with busybox wget from all three addresses, reads both trees, and a deleted key is gone within a second",
  ...noSanitize,
  async fn(ctx) {
    const t = {
      step: async (name: string, fn: () => Promise<void>) => {
        if (!await ctx.step(name, fn)) throw new Error(`step failed: ${name}`);
      },
    };
    const c = await startCluster({ leaseTtlSeconds: 3 });
    const net = await createHostNet(["h1"]);
    const keyDir = await Deno.makeTempDir({ prefix: "ucloud-metatiny-" });
    try {
      await serveEtcdOn(c, net);
      await startWorkerIn(c, net, { name: "h1", cpus: 2, memoryMiB: 1024 });
      await waitFor(
        "h1 alive",
        async () => (await c.store.count(keys.alives)) === 1,
        20_000,
      );
      const app = createApp({ store: c.store, auth: headerAuth });
      const r = await call(app, "POST", "/v1/networks", {
        headers: ALICE,
        json: { name: "meta", ipv4: SUBNET, dhcp: { v4: true } },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const network = r.body as Network;
      const made: Omit<Guest, "vm" | "sock">[] = [];
      const ids: string[] = [];
      for (const n of [1, 2]) {
        const keyName = `k${n}`;
        made.push({ keyName, key: await addKey(app, keyDir, keyName) });
        const v = await call(app, "POST", "/v1/vms", {
          headers: ALICE,
          json: {
            name: `g${n}`,
            cpus: 1,
            memory: 128,
            networks: [network.id],
            keys: [keyName],
          },
        });
        assert.equal(v.status, 201, JSON.stringify(v.body));
        ids.push(v.body.vm.id);
      }
      const docs = await waitFor(
        "both VMs running",
        async () => {
          const d = await Promise.all(ids.map((id) => vmDoc(c, id)));
          return d.every((x) => x?.status.phase === "running")
            ? d as Vm[]
            : null;
        },
        60_000,
        200,
      );
      const guests: Guest[] = docs.map((vm, i) => ({
        ...made[i],
        vm,
        sock: String(vm.status.handle!.console),
      }));

      await t.step(
        "each guest has fd00:ec2::/64 on-link from the RA and 169.254.169.254 on-link from DHCPv4 option 121",
        async () => {
          for (const g of guests) {
            const nic = g.vm.nics[0];
            await waitGuestAddr(g.sock, "eth0", nic.ipv6);
            const routes6 = await guestRun(g.sock, "ip -6 route show dev eth0");
            assert.match(routes6, /^fd00:ec2::\/64 /m, routes6);
            const addrs6 = await guestRun(g.sock, "ip -6 addr show dev eth0");
            assert.doesNotMatch(addrs6, /fd00:ec2:/, addrs6);
            const lease = await guestRun(
              g.sock,
              "udhcpc -i eth0 -O staticroutes -q -n -t 5 -T 2 2>&1",
              { timeoutMs: 40_000 },
            );
            assert.match(lease, new RegExp(`lease of ${nic.ipv4} obtained`));
            const addrs4 = await guestRun(g.sock, "ip -4 addr show dev eth0");
            assert.ok(addrs4.includes(`inet ${nic.ipv4}/24 `), addrs4);
            const routes4 = await guestRun(g.sock, "ip -4 route show dev eth0");
            assert.match(
              routes4,
              /^169\.254\.169\.254 dev eth0 scope link/m,
              routes4,
            );
          }
        },
      );

      await t.step(
        "each guest fetches its own key, and only it, from all three addresses; OpenStack and NoCloud meta-data",
        async () => {
          for (const g of guests) {
            const got: Record<string, string | null> = {};
            for (const [name, base] of Object.entries(BASES)) {
              got[name] = await guestWget(g.sock, `${base}${KEY}`);
            }
            assert.deepEqual(
              got,
              Object.fromEntries(
                Object.keys(BASES).map((b) => [b, `${g.key}\n`]),
              ),
            );
            const os = await guestWget(
              g.sock,
              `${BASES["169.254.169.254"]}/openstack/latest/meta_data.json`,
            );
            assert.ok(os !== null);
            const doc = JSON.parse(os);
            assert.equal(doc.uuid, g.vm.id);
            assert.equal(doc.hostname, g.vm.spec.name);
            assert.deepEqual(doc.public_keys, { [g.keyName]: g.key });
            assert.deepEqual(
              doc.keys,
              [{ name: g.keyName, type: "ssh", data: g.key }],
            );
            const nocloud = await guestWget(
              g.sock,
              `${BASES["link-local"]}/nocloud/meta-data`,
            );
            assert.equal(
              nocloud,
              [
                `instance-id: ${JSON.stringify(g.vm.id)}`,
                `local-hostname: ${JSON.stringify(g.vm.spec.name)}`,
                "public-keys:",
                `  - ${JSON.stringify(g.key)}`,
                "",
              ].join("\n"),
            );
          }
        },
      );

      await t.step(
        "a key the user deletes is gone from the guest's metadata within a second; the other guest keeps its own",
        async () => {
          const [g1, g2] = guests;
          const started = Date.now();
          const d = await call(app, "DELETE", `/v1/keys/${g1.keyName}`, {
            headers: ALICE,
          });
          assert.equal(d.status, 200, JSON.stringify(d.body));
          const gone = await waitKeyGone(g1.sock, g1.key.split(" ")[1]);
          console.log(JSON.stringify({
            keyGone: gone,
            deleteToConsoleMs: Date.now() - started,
          }));
          assert.equal(gone.verdict, "gone", JSON.stringify(gone));
          const r = await guestExec(
            g1.sock,
            `timeout 5 wget -q -O - '${BASES["fd00:ec2::254"]}${KEY}' 2>&1`,
            { timeoutMs: 30_000 },
          );
          assert.notEqual(r.code, 0);
          assert.match(r.output, /404/);
          assert.equal(
            await guestWget(g2.sock, `${BASES["fd00:ec2::254"]}${KEY}`),
            `${g2.key}\n`,
          );
        },
      );
    } catch (err) {
      await c.printLogs();
      await printNet(net);
      throw err;
    } finally {
      await deleteResources(c, net);
      await c.stop();
      await net.destroy();
      await Deno.remove(keyDir, { recursive: true });
    }
  },
});
