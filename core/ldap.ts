/**
 * Users live in LDAP: looking one up by name (its DN, its groups, whether it
 * is an administrator) and checking a password by binding as the user. A
 * directory that does not answer raises `UnavailableError`; a missing user is
 * `null`, a wrong password `false`. Names match exactly (case included). Each call opens its own connection.
 * Also the identity section of the configuration (`IdentityConfig`).
 *
 * @example
 * ```ts
 * const dir = new Directory(IdentityConfig.parse({}).ldap);
 * const alice = await dir.lookup("alice"); // { name, dn, groups, admin } | null
 * await dir.checkPassword("alice", "secret"); // true | false
 * ```
 */
import {
  AndFilter,
  Client,
  EqualityFilter,
  FilterParser,
  InvalidCredentialsError,
} from "ldapts";
import { z } from "zod";
import { UnavailableError } from "./errors.ts";
import { NAME_RE } from "./totp.ts";

const window = z.object({
  limit: z.number().int().min(1),
  windowSeconds: z.number().int().min(1),
});

/** LDAP search filters: one parenthesized expression. */
const ldapFilter = z.string().refine((f) => {
  try {
    FilterParser.parseString(f);
    return true;
  } catch {
    return false;
  }
}, "must be an LDAP filter such as (objectClass=inetOrgPerson)");

/** The `identity` section of the configuration; README documents each field. */
export const IdentityConfig = z.object({
  ldap: z.object({
    /** ldap:// or ldaps:// URL of the directory. */
    url: z.string().regex(/^ldaps?:\/\/\S+$/).default("ldap://127.0.0.1:389"),
    baseDn: z.string().min(1).default("dc=example,dc=com"),
    /** DN to bind as for searches; empty: search anonymously. */
    bindDn: z.string().default(""),
    bindPassword: z.string().default(""),
    /** Where users are, relative to baseDn ("" = baseDn itself). */
    userBase: z.string().default("ou=users"),
    /** The attribute holding the user name ucloud sees. */
    userAttribute: z.string().min(1).default("uid"),
    userFilter: ldapFilter.default("(objectClass=inetOrgPerson)"),
    /** Where groups are, relative to baseDn. */
    groupBase: z.string().default("ou=groups"),
    groupFilter: ldapFilter.default("(objectClass=groupOfNames)"),
    groupNameAttribute: z.string().min(1).default("cn"),
    /** The group attribute listing members (member, uniqueMember, memberUid). */
    memberAttribute: z.string().min(1).default("member"),
    /** What a member value holds: the user's DN, or its name (memberUid). */
    memberValue: z.enum(["dn", "name"]).default("dn"),
    /** Members of this group get the admin role. */
    adminGroup: z.string().min(1).default("ucloud-admins"),
    timeoutMs: z.number().int().min(100).max(60_000).default(2000),
  }).prefault({}),
  otp: z.object({
    /** local: seeds kept by ucloud; ungleichotp: ask an ungleich-otp server. */
    mode: z.enum(["local", "ungleichotp"]).default("local"),
    /** The realm of LDAP users. */
    userRealm: z.string().regex(NAME_RE).default("ucloud"),
    /** Realms of services (not in LDAP); their principal is `<realm>:<name>`. */
    serviceRealms: z.record(
      z.string().regex(NAME_RE),
      z.object({ admin: z.boolean().default(false) }),
    ).default({}),
    /** Steps accepted either side of now (local mode): 0 or 1. */
    windowSteps: z.number().int().min(0).max(1).default(1),
    /** ungleichotp mode: the verify URL and this service's own triple. */
    server: z.object({
      url: z.url(),
      name: z.string().regex(NAME_RE),
      realm: z.string().regex(NAME_RE),
      seed: z.string().regex(/^[A-Z2-7]{16,}=*$/i),
    }).optional(),
  }).prefault({}).refine((o) => o.mode !== "ungleichotp" || o.server, {
    message: "identity.otp.server is required when mode is ungleichotp",
    path: ["server"],
  }),
  /** Lifetime of bearer tokens from POST /v1/auth/token. */
  bearerTtlSeconds: z.number().int().min(60).max(86_400).default(900),
  /** Lifetime of web sessions (the `ucloud_session` cookie). */
  sessionTtlSeconds: z.number().int().min(60).max(86_400).default(900),
  /** Mark the session cookie `Secure` (HTTPS only); off only for plain HTTP. */
  sessionCookieSecure: z.boolean().default(true),
  /**
   * File holding the base64 32-byte host key (seed encryption, bearer
   * signing); the same on every API host. Default: `<stateDir>/identity.key`.
   */
  keyFile: z.string().optional(),
  /**
   * Failed logins (core/rate_limit.ts): per name `limit` free failures, then
   * a back-off from `backoffBaseSeconds` doubling to `backoffMaxSeconds`,
   * forgotten `windowSeconds` after the last; per address (IPv4, IPv6 /64)
   * more than `limit` failures in `windowSeconds` take away the free ones.
   */
  rateLimit: z.object({
    perName: z.object({
      limit: z.number().int().min(1).default(5),
      windowSeconds: z.number().int().min(1).default(3600),
      backoffBaseSeconds: z.number().positive().default(1),
      backoffMaxSeconds: z.number().positive().default(900),
    }).prefault({}).refine(
      (n) => n.backoffMaxSeconds >= n.backoffBaseSeconds,
      {
        message: "backoffMaxSeconds must not be below backoffBaseSeconds",
        path: ["backoffMaxSeconds"],
      },
    ),
    perAddress: window.prefault({ limit: 50, windowSeconds: 300 }),
    /**
     * `POST /v1/auth/seed` with the LDAP password: at most `limit` attempts
     * per user in `windowSeconds`, counted in etcd by every API replica.
     */
    seedPerUser: window.prefault({ limit: 5, windowSeconds: 3600 }),
  }).prefault({}),
});
export type IdentityConfig = z.infer<typeof IdentityConfig>;
export type LdapConfig = IdentityConfig["ldap"];

/** A user as the directory knows it. */
export interface DirectoryUser {
  name: string;
  dn: string;
  /** Names of the groups the user is a member of. */
  groups: string[];
  admin: boolean;
}

/** What the auth middleware needs from the directory. */
export interface UserDirectory {
  lookup(name: string): Promise<DirectoryUser | null>;
}

function join(rdn: string, base: string): string {
  return rdn ? `${rdn},${base}` : base;
}

/** An attribute's values as strings (ldapts gives one value or an array). */
function values(v: unknown): string[] {
  if (Array.isArray(v)) return v.flatMap(values);
  if (v instanceof Uint8Array) return [new TextDecoder().decode(v)];
  return v === undefined ? [] : [String(v)];
}

/** The LDAP directory of users and groups. */
export class Directory implements UserDirectory {
  constructor(readonly config: LdapConfig) {}

  #client(): Client {
    return new Client({
      url: this.config.url,
      timeout: this.config.timeoutMs,
      connectTimeout: this.config.timeoutMs,
    });
  }

  async #session<T>(
    what: string,
    f: (client: Client) => Promise<T>,
  ): Promise<T> {
    const client = this.#client();
    try {
      return await f(client);
    } catch (err) {
      // Includes a refused service bind: a configuration fault, not the caller's.
      throw new UnavailableError(
        `Cannot ${what}: LDAP ${this.config.url}: ${(err as Error).message}`,
        { cause: err },
      );
    } finally {
      await client.unbind().catch(() => {});
    }
  }

  async #bindService(client: Client): Promise<void> {
    if (this.config.bindDn) {
      await client.bind(this.config.bindDn, this.config.bindPassword);
    }
  }

  async #findUser(client: Client, name: string): Promise<string | null> {
    const c = this.config;
    const { searchEntries } = await client.search(
      join(c.userBase, c.baseDn),
      {
        scope: "sub",
        filter: new AndFilter({
          filters: [
            FilterParser.parseString(c.userFilter),
            new EqualityFilter({ attribute: c.userAttribute, value: name }),
          ],
        }),
        attributes: [c.userAttribute],
      },
    );
    // LDAP matches uid case-insensitively; ucloud names are exact, so that
    // "Alice" cannot become a second principal of alice.
    const exact = searchEntries.filter((e) =>
      values(e[c.userAttribute]).includes(name)
    );
    // Two entries with one name: refuse rather than pick one.
    return exact.length === 1 ? exact[0].dn : null;
  }

  /** Looks a user up by name: null when there is no such (single) user. */
  lookup(name: string): Promise<DirectoryUser | null> {
    if (!NAME_RE.test(name)) return Promise.resolve(null);
    return this.#session(`look up user ${name}`, async (client) => {
      await this.#bindService(client);
      const dn = await this.#findUser(client, name);
      if (dn === null) return null;
      const c = this.config;
      const { searchEntries } = await client.search(
        join(c.groupBase, c.baseDn),
        {
          scope: "sub",
          filter: new AndFilter({
            filters: [
              FilterParser.parseString(c.groupFilter),
              new EqualityFilter({
                attribute: c.memberAttribute,
                value: c.memberValue === "dn" ? dn : name,
              }),
            ],
          }),
          attributes: [c.groupNameAttribute],
        },
      );
      const groups = searchEntries.map((e) =>
        values(e[c.groupNameAttribute])[0]
      )
        .filter((g) => g !== undefined && g !== "").sort();
      return { name, dn, groups, admin: groups.includes(c.adminGroup) };
    });
  }

  /**
   * True when `password` is the user's: a bind as the user's DN succeeds.
   * An empty password is refused without asking (LDAP would treat it as an
   * anonymous bind and succeed).
   */
  checkPassword(name: string, password: string): Promise<boolean> {
    if (!NAME_RE.test(name) || password === "") return Promise.resolve(false);
    return this.#session(`check password of ${name}`, async (client) => {
      await this.#bindService(client);
      const dn = await this.#findUser(client, name);
      if (dn === null) return false;
      try {
        await client.bind(dn, password);
        return true;
      } catch (err) {
        if (err instanceof InvalidCredentialsError) return false;
        throw err;
      }
    });
  }
}
