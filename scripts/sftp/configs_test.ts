/** Tests of scripts/sftp/configs.ts: the sshd, nslcd and nsswitch files of the SFTP service. */
import assert from "node:assert/strict";
import { IdentityConfig } from "../../core/ldap.ts";
import { keyLine } from "./authorized_keys.ts";
import {
  keysCommand,
  nslcdConfig,
  nsswitchWithLdap,
  passwdNames,
  sshdConfig,
} from "./configs.ts";

const BLOB =
  "AAAAC3NzaC1lZDI1NTE5AAAAIGn0n7h3Yb8nXQm3Ck0t7GmO7oB2m9R9vKpXl1x3dY2f";

Deno.test("nsswitchWithLdap() adds ldap last to passwd and group only", () => {
  const machine =
    "passwd:         files systemd\ngroup: files\nshadow: files\nhosts: files dns\n";
  const out = nsswitchWithLdap(machine);
  assert.match(out, /^passwd:\s+files systemd ldap$/m);
  assert.match(out, /^group: files ldap$/m);
  assert.match(out, /^shadow: files$/m);
  assert.match(out, /^hosts: files dns$/m);
  assert.equal(nsswitchWithLdap(out), out);
  assert.match(nsswitchWithLdap("hosts: files\n"), /^passwd: files ldap$/m);
});

Deno.test("nslcdConfig() keeps posixAccount users of the user filter at or above minUid", () => {
  const ldap = IdentityConfig.parse({
    ldap: { baseDn: "dc=x", bindDn: "cn=svc,dc=x", bindPassword: "pw" },
  }).ldap;
  const text = nslcdConfig(ldap, { minUid: 1000, logFile: "/s/nslcd.log" });
  assert.match(text, /^base passwd ou=users,dc=x$/m);
  assert.match(
    text,
    /^filter passwd \(&\(objectClass=posixAccount\)\(objectClass=inetOrgPerson\)\)$/m,
  );
  assert.match(text, /^nss_min_uid 1000$/m);
  assert.match(text, /^bindpw pw$/m);
  assert.throws(
    () =>
      nslcdConfig({ ...ldap, bindPassword: "pw\nuid root" }, {
        minUid: 1000,
        logFile: "/s/l",
      }),
    TypeError,
  );
});

Deno.test("sshdConfig() allows publickey sftp in the chroot only, escaping % and quoting spaces", () => {
  const text = sshdConfig({
    port: 2222,
    listen: ["::", "0.0.0.0"],
    hostKey: "/s/host key",
    pidFile: "/s/sshd.pid",
    uploadDir: "/var/www%x/",
    keysCommand: ["/usr/bin/env", "a b", "%u"],
    keysCommandUser: "nobody",
    denyUsers: ["root", "daemon", "we*ird"],
  });
  for (
    const l of [
      "AuthenticationMethods publickey",
      "PasswordAuthentication no",
      "ChrootDirectory /var/www%%x/%u",
      "ForceCommand internal-sftp -d /upload -P symlink,hardlink -u 0077",
      "PermitTTY no",
      "DisableForwarding yes",
      "AuthorizedKeysFile none",
      'AuthorizedKeysCommand /usr/bin/env "a b" %u',
      'HostKey "/s/host key"',
      "DenyUsers root daemon",
    ]
  ) assert.ok(text.split("\n").includes(l), l);
  assert.throws(
    () => sshdConfig({ ...BASE, hostKey: '/s/"x' }),
    TypeError,
  );
});

const BASE = {
  port: 1,
  listen: ["::"],
  hostKey: "/k",
  pidFile: "/p",
  uploadDir: "/u",
  keysCommand: ["/c", "%u"],
  keysCommandUser: "nobody",
  denyUsers: [],
};

Deno.test("keysCommand() lets the script reach only the etcd endpoints", () => {
  const argv = keysCommand({
    deno: "/d/deno",
    script: "/r/authorized_keys.ts",
    endpoints: ["http://127.0.0.1:2379", "http://[::1]:2379"],
    prefix: "/ucloud/v1",
    timeoutMs: 2000,
  });
  assert.ok(argv.includes("--allow-net=127.0.0.1:2379,[::1]:2379"));
  assert.deepEqual(argv.slice(-4), [
    "http://127.0.0.1:2379,http://[::1]:2379",
    "/ucloud/v1",
    "2000",
    "%u",
  ]);
});

Deno.test("keyLine() prints only type and blob of the user's own key, restricted", () => {
  const doc = (o: Record<string, unknown>) =>
    JSON.stringify({
      name: "k1",
      owner: "alice",
      type: "ssh-ed25519",
      publicKey: `ssh-ed25519 ${BLOB} alice@laptop`,
      ...o,
    });
  assert.equal(
    keyLine("alice", doc({})),
    `restrict ssh-ed25519 ${BLOB} ucloud:k1`,
  );
  assert.equal(keyLine("bob", doc({})), null);
  assert.equal(
    keyLine("alice", doc({ publicKey: `command="sh" ssh-ed25519 ${BLOB}` })),
    null,
  );
  assert.equal(
    keyLine("alice", doc({ publicKey: `ssh-ed25519 ${BLOB}\nssh-rsa AAAA` })),
    `restrict ssh-ed25519 ${BLOB} ucloud:k1`,
  );
  assert.equal(keyLine("alice", "{not json"), null);
});

Deno.test("passwdNames() lists the machine's account names", () => {
  assert.deepEqual(
    passwdNames(
      "root:x:0:0::/root:/bin/sh\n# c\n\nnobody:x:65534:65534::/:/x\n",
    ),
    ["root", "nobody"],
  );
});
