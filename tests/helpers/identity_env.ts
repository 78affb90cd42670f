/**
 * The environment of the identity tests: a real slapd holding alice
 * (admin), bob and carol with their groups, a real etcd with a new key
 * prefix per `connect()`, and a `Directory` on the slapd.
 * `withIdentityEnv()` runs a test body in it and tears both down after.
 */
import { type EtcdServer, startEtcd } from "../../core/etcd_server.ts";
import { Directory } from "../../core/ldap.ts";
import { Store } from "../../core/store.ts";
import { noSanitize } from "./api.ts";
import { ldapConfig } from "./identity_fixtures.ts";
import {
  BASE_DN,
  groupLdif,
  type Slapd,
  startSlapd,
  userLdif,
} from "./slapd.ts";

/** What a test body gets from `withIdentityEnv()`. */
export interface IdentityEnv {
  slapd: Slapd;
  etcd: EtcdServer;
  /** Every store opened; all are closed at the end. */
  stores: Store[];
  /** A new client; `prefix` of another one to play a second replica. */
  connect: (prefix?: string) => Store;
  /** The prefix of the newest client from `connect()`. */
  lastPrefix: () => string;
  /** A sub-step with sanitizers off. */
  step: (name: string, fn: () => Promise<void>) => Promise<boolean>;
  /** Starts slapd again if a step stopped it. */
  up: () => Promise<void>;
  /** The directory on the test slapd. */
  dirc: Directory;
}

/** Runs `body` against a fresh slapd and etcd and cleans up after it. */
export async function withIdentityEnv(
  t: Deno.TestContext,
  body: (env: IdentityEnv) => Promise<void>,
): Promise<void> {
  const slapd = await startSlapd();
  const dir = await Deno.makeTempDir({ prefix: "ucloud-auth-test-" });
  const etcd = await startEtcd({ dataDir: dir });
  const stores: Store[] = [];
  let n = 0;
  const connect = (prefix = `/t/${++n}`) => {
    const s = Store.connect({ endpoints: [etcd.endpoint], prefix });
    stores.push(s);
    return s;
  };
  const lastPrefix = () => `/t/${n}`;
  const step = (name: string, fn: () => Promise<void>) =>
    t.step({ name, ...noSanitize, fn });
  const up = async () => {
    if (!slapd.pid) await slapd.start();
  };

  try {
    await slapd.add(
      [
        userLdif("alice", "alice-pw"),
        userLdif("bob", "bob-pw"),
        userLdif("carol", "carol-pw"),
        groupLdif("ucloud-admins", ["alice"]),
        groupLdif("developers", ["alice", "bob"]),
        `dn: cn=ops,ou=groups,${BASE_DN}\nobjectClass: posixGroup\ncn: ops\ngidNumber: 1000\nmemberUid: bob\n`,
      ].join("\n"),
    );
    const dirc = new Directory(ldapConfig(slapd));
    await body({
      slapd,
      etcd,
      stores,
      connect,
      lastPrefix,
      step,
      up,
      dirc,
    });
  } finally {
    for (const s of stores) s.close();
    await slapd.close();
    await etcd.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
