/**
 * sshd's `AuthorizedKeysCommand` of the SFTP upload service: prints the
 * authorized_keys lines of one user's SSH key documents (`key/<user>/`),
 * read from etcd at every login attempt, so a key deleted through the API
 * stops working at the next attempt. Each line is `restrict <type> <blob>
 * ucloud:<name>`: no options from the document reach sshd, and `restrict`
 * turns off forwarding and TTYs even if sshd's own config did not.
 *
 * It runs as `sftp.keysCommandUser` (root by default, confined by Deno's
 * permissions to the etcd endpoints) and reads etcd
 * through its JSON gateway (`POST /v3/kv/range`, a linearizable read) with
 * `fetch`, importing nothing from npm, so it needs no Deno cache of its own.
 * Exits 1 (sshd then accepts no key) when no endpoint answers.
 *
 * Usage: `authorized_keys.ts ENDPOINTS PREFIX TIMEOUT_MS USER`, ENDPOINTS a
 * comma list of etcd client URLs; scripts/sftp/configs.ts writes the line.
 *
 * @example
 * ```sh
 * deno run --allow-net=127.0.0.1:2379 scripts/sftp/authorized_keys.ts \
 *   http://127.0.0.1:2379 /ucloud/v1 2000 alice
 * ```
 */
import { keys } from "../../core/keys.ts";

const TYPE_RE = /^[a-z0-9][a-z0-9@.-]{0,63}$/;
const BLOB_RE = /^[A-Za-z0-9+/]{16,16384}={0,2}$/;
const KEY_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

const b64 = (s: string) =>
  btoa(String.fromCharCode(...new TextEncoder().encode(s)));
const unb64 = (s: string) =>
  new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));

/** The end of a prefix range: the prefix with its last character + 1. */
function rangeEnd(prefix: string): string {
  return prefix.slice(0, -1) +
    String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/** The authorized_keys line of one stored document, or null when unusable. */
export function keyLine(user: string, raw: string): string | null {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(raw);
  } catch {
    return null;
  }
  if (doc === null || typeof doc !== "object" || doc.owner !== user) {
    return null;
  }
  const [type, blob] = String(doc.publicKey ?? "").trim().split(/\s+/);
  if (type !== doc.type || !TYPE_RE.test(type ?? "")) return null;
  if (!BLOB_RE.test(blob ?? "")) return null;
  const name = typeof doc.name === "string" && KEY_NAME_RE.test(doc.name)
    ? doc.name
    : "key";
  return `restrict ${type} ${blob} ucloud:${name}`;
}

interface RangeResponse {
  kvs?: { value?: string }[];
}

async function readKeys(
  endpoints: string[],
  prefix: string,
  timeoutMs: number,
  user: string,
): Promise<string[]> {
  const base = prefix.endsWith("/") ? prefix : `${prefix}/`;
  const key = base + keys.sshKeysOf(user);
  const body = JSON.stringify({ key: b64(key), range_end: b64(rangeEnd(key)) });
  let last: unknown;
  for (const endpoint of endpoints) {
    try {
      const res = await fetch(`${endpoint.replace(/\/$/, "")}/v3/kv/range`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
      const out = await res.json() as RangeResponse;
      return (out.kvs ?? []).map((kv) => unb64(kv.value ?? ""));
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`Cannot read the keys of ${user}: etcd: ${last}`);
}

if (import.meta.main) {
  const [endpoints, prefix, timeoutMs, user] = Deno.args;
  // sshd names a user it found through NSS; a slash could leave key/<user>/.
  if (!user || !/^[^/\s]+$/.test(user) || !prefix || !endpoints) {
    console.error(
      "usage: authorized_keys.ts ENDPOINTS PREFIX TIMEOUT_MS USER",
    );
    Deno.exit(2);
  }
  try {
    const docs = await readKeys(
      endpoints.split(","),
      prefix,
      Number(timeoutMs) || 2000,
      user,
    );
    for (const raw of docs) {
      const line = keyLine(user, raw);
      if (line) console.log(line);
      else console.error(`ucloud: skipped an unusable key document of ${user}`);
    }
  } catch (err) {
    console.error(`ucloud: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
