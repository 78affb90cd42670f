/**
 * The metadata service against a real etcd, through its real listeners on
 * loopback (tests/helpers/metadata_env.ts): the three trees for a VM with
 * several keys and user data, a deleted key gone within a second, the
 * refusals, and the IMDSv2 token flow. On namespaces with the network
 * driver's addresses: tests/metadata_e2e_test.ts.
 */
import assert from "node:assert/strict";
import { deleteKey } from "../resources/keys/delete.ts";
import { noSanitize } from "./helpers/api.ts";
import { ALICE, parseYaml, withMetadata } from "./helpers/metadata_env.ts";

const USER_DATA =
  "#cloud-config\r\nruncmd:\n  - [sh, -c, 'echo \"ü ✓\" > /ok']\n\t# tab\n---\n…no newline at end";

Deno.test({
  name:
    "metadata service: EC2, OpenStack and NoCloud documents of a VM with several keys and user data are well-formed; user data byte-exact",
  ...noSanitize,
  fn: () =>
    withMetadata({}, async (env) => {
      const k1 = await env.key("k1"), k2 = await env.key("k2");
      const k3 = await env.key("k3");
      const vm = await env.vm("web1", {
        keys: ["k3", "k1", "k2"],
        userData: USER_DATA,
      });
      const other = await env.vm("web2");
      await env.serve([{ vm, ipv4: "127.0.0.2" }, {
        vm: other,
        ipv4: "127.0.0.3",
      }]);
      const get = (path: string) => env.curl("127.0.0.2", path);
      const ok = async (path: string) => {
        const r = await get(path);
        assert.equal(r.status, 200, `${path}: ${r.text}`);
        return r;
      };
      const bytes = new TextEncoder().encode(USER_DATA);

      // EC2
      assert.equal((await ok("/latest/meta-data/instance-id")).text, vm);
      assert.equal((await ok("/2009-04-04/meta-data/hostname")).text, "web1");
      assert.equal((await ok("/latest/meta-data/local-hostname")).text, "web1");
      assert.deepEqual(
        (await ok("/latest/meta-data/")).text.split("\n"),
        ["hostname", "instance-id", "local-hostname", "public-keys/"],
      );
      assert.equal(
        (await ok("/latest/meta-data/public-keys/")).text,
        "0=k3\n1=k1\n2=k2",
      );
      const ec2Keys = [];
      for (const i of [0, 1, 2]) {
        ec2Keys.push(
          (await ok(`/latest/meta-data/public-keys/${i}/openssh-key`)).text
            .trimEnd(),
        );
      }
      assert.deepEqual(ec2Keys, [k3, k1, k2]);
      assert.deepEqual((await ok("/latest/user-data")).body, bytes);

      // OpenStack
      for (const v of ["latest", "2012-08-10", "2018-08-27"]) {
        const md = JSON.parse(
          (await ok(`/openstack/${v}/meta_data.json`)).text,
        );
        assert.equal(md.uuid, vm);
        assert.equal(md.name, "web1");
        assert.equal(md.hostname, "web1");
        assert.equal(md.launch_index, 0);
        assert.deepEqual(md.public_keys, {
          k3,
          k1,
          k2,
        });
        assert.deepEqual(
          md.keys.map((k: { type: string; data: string }) => [k.type, k.data]),
          [["ssh", k3], ["ssh", k1], ["ssh", k2]],
        );
        assert.deepEqual((await ok(`/openstack/${v}/user_data`)).body, bytes);
        assert.deepEqual(
          JSON.parse((await ok(`/openstack/${v}/vendor_data.json`)).text),
          {},
        );
      }
      const nd = JSON.parse(
        (await ok("/openstack/latest/network_data.json")).text,
      );
      assert.equal(nd.links.length, 1);
      assert.match(nd.links[0].ethernet_mac_address, /^02:c1:0d:00:ee:/);
      assert.deepEqual(
        nd.networks.map((n: Record<string, string>) => [n.type, n.link]),
        [["ipv6_slaac", "nic0"], ["ipv4", "nic0"]],
      );
      assert.equal(nd.networks[1].ip_address, "127.0.0.2");
      assert.equal(nd.networks[1].netmask, "255.0.0.0");

      // NoCloud
      assert.deepEqual(await parseYaml((await ok("/nocloud/meta-data")).text), {
        "instance-id": vm,
        "local-hostname": "web1",
        "public-keys": [k3, k1, k2],
      });
      assert.deepEqual((await ok("/nocloud/user-data")).body, bytes);
      assert.equal((await ok("/nocloud/vendor-data")).text, "");
      const nc = await parseYaml(
        (await ok("/nocloud/network-config")).text,
      ) as {
        version: number;
        ethernets: Record<string, Record<string, unknown>>;
      };
      assert.equal(nc.version, 2);
      assert.deepEqual(Object.keys(nc.ethernets), ["nic0"]);
      assert.equal(nc.ethernets.nic0["accept-ra"], true);
      assert.deepEqual(nc.ethernets.nic0.addresses, ["127.0.0.2/8"]);

      // The other VM sees itself only: its keys are all of alice's, by name.
      const o = (path: string) => env.curl("127.0.0.3", path);
      assert.equal((await o("/latest/meta-data/instance-id")).text, other);
      assert.equal((await o("/latest/user-data")).status, 404);
      assert.equal((await o("/openstack/latest/user_data")).status, 404);
      assert.equal((await o("/nocloud/user-data")).text, "");
      assert.deepEqual(
        (await parseYaml((await o("/nocloud/meta-data")).text) as {
          "public-keys": string[];
        })["public-keys"],
        [k1, k2, k3],
      );
    }),
});

Deno.test({
  name:
    "metadata service: a deleted key is gone from the metadata within a second (etcd watch, no restart)",
  ...noSanitize,
  fn: () =>
    withMetadata({}, async (env) => {
      const k1 = await env.key("k1"), k2 = await env.key("k2");
      const vm = await env.vm("web1");
      await env.serve([{ vm, ipv4: "127.0.0.2" }]);
      const lines = async () =>
        (await parseYaml(
          (await env.curl("127.0.0.2", "/nocloud/meta-data")).text,
        ) as { "public-keys": string[] })["public-keys"];
      assert.deepEqual(await lines(), [k1, k2]);
      const t0 = performance.now();
      await deleteKey(env.store, ALICE, "k1");
      let goneMs = NaN;
      const deadline = t0 + 10_000;
      while (performance.now() < deadline) {
        const r = await env.curl(
          "127.0.0.2",
          "/latest/meta-data/public-keys/0/openssh-key",
        );
        if (r.text.trimEnd() === k2) {
          goneMs = performance.now() - t0;
          break;
        }
      }
      console.log(
        `key delete -> gone from the metadata: ${goneMs.toFixed(0)} ms`,
      );
      assert.ok(goneMs < 1000, `the deleted key was served for ${goneMs} ms`);
      assert.deepEqual(await lines(), [k2]);
      // A key added later counts, too.
      const k3 = await env.key("k3");
      let seen = false;
      for (let i = 0; i < 200 && !seen; i++) {
        seen = (await lines()).includes(k3);
      }
      assert.ok(seen, "an added key never showed");
    }),
});

Deno.test({
  name:
    "metadata service refuses X-Forwarded-For, the host itself and an address that is no port of this host (403)",
  ...noSanitize,
  fn: () =>
    withMetadata({}, async (env) => {
      const vm = await env.vm("web1");
      const gone = await env.vm("web2");
      await env.serve([{ vm, ipv4: "127.0.0.2" }]);
      const path = "/latest/meta-data/instance-id";
      assert.equal((await env.curl("127.0.0.2", path)).text, vm);
      for (const h of ["X-Forwarded-For", "Forwarded", "X-Real-IP", "Via"]) {
        const r = await env.curl("127.0.0.2", path, {
          headers: { [h]: "127.0.0.3" },
        });
        assert.equal(r.status, 403, h);
        assert.doesNotMatch(r.text, new RegExp(vm));
      }
      assert.equal(
        (await env.curl("127.0.0.1", path)).status,
        403,
        "host (v4)",
      );
      assert.equal((await env.curl("::1", path)).status, 403, "host (v6)");
      assert.equal((await env.curl("127.0.0.9", path)).status, 403, "no port");
      // A VM whose port left this host is no longer answered.
      await env.serve([{ vm: gone, ipv4: "127.0.0.3" }]);
      assert.equal((await env.curl("127.0.0.2", path)).status, 403);
      assert.equal((await env.curl("127.0.0.3", path)).text, gone);
    }),
});

Deno.test({
  name:
    "metadata service IMDSv2: PUT /latest/api/token works; with requireToken a GET without a token or with another VM's token is 401",
  ...noSanitize,
  fn: () =>
    withMetadata({ requireToken: true }, async (env) => {
      const a = await env.vm("a"), b = await env.vm("b");
      await env.serve([{ vm: a, ipv4: "127.0.0.2" }, {
        vm: b,
        ipv4: "127.0.0.3",
      }]);
      const token = async (from: string) => {
        const r = await env.curl(from, "/latest/api/token", {
          method: "PUT",
          headers: { "X-aws-ec2-metadata-token-ttl-seconds": "21600" },
        });
        assert.equal(r.status, 200, r.text);
        return r.text;
      };
      const ta = await token("127.0.0.2"), tb = await token("127.0.0.3");
      const get = (from: string, t?: string) =>
        env.curl(from, "/latest/meta-data/instance-id", {
          headers: t ? { "X-aws-ec2-metadata-token": t } : {},
        });
      const withA = await get("127.0.0.2", ta);
      assert.deepEqual([withA.status, withA.text], [200, a]);
      assert.equal((await get("127.0.0.2")).status, 401, "no token");
      assert.equal((await get("127.0.0.2", tb)).status, 401, "b's token");
      assert.equal((await get("127.0.0.3", ta)).status, 401, "a's token");
      assert.equal((await get("127.0.0.3", tb)).text, b);
      const ttl0 = await env.curl("127.0.0.2", "/latest/api/token", {
        method: "PUT",
        headers: { "X-aws-ec2-metadata-token-ttl-seconds": "0" },
      });
      assert.equal(ttl0.status, 400);
      const fwd = await env.curl("127.0.0.2", "/latest/api/token", {
        method: "PUT",
        headers: {
          "X-aws-ec2-metadata-token-ttl-seconds": "60",
          "X-Forwarded-For": "127.0.0.2",
        },
      });
      assert.equal(fwd.status, 403);
    }),
});
