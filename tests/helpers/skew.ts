/**
 * Helpers of tests/version_skew_test.ts: a checkout of an older commit for
 * its old worker, and documents read and written raw (as another version
 * wrote them), past this code's schemas.
 */
import { Buffer } from "node:buffer";
import { type Cluster, ROOT } from "./cluster.ts";

/** A raw document: any fields, with a status and a spec. */
export type Doc = Record<string, unknown> & {
  status: Record<string, unknown>;
  spec: Record<string, unknown>;
};

/**
 * A checkout of `commit` in a temp dir (ends with "/"); `git archive` only
 * reads the repository. Null when this checkout lacks the commit (a
 * shallow clone, or no `.git`): the "old" worker is then this code, and
 * the test says so in a `note:` line.
 */
export async function checkout(commit: string): Promise<string | null> {
  const have = await new Deno.Command("git", {
    args: ["-C", ROOT, "cat-file", "-e", `${commit}^{commit}`],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => null);
  if (!have?.success) {
    console.log(
      `note: version skew: commit ${commit} is not in this checkout; the old worker runs this code`,
    );
    return null;
  }
  const dir = await Deno.makeTempDir({ prefix: "uc-old-" });
  const out = await new Deno.Command("bash", {
    args: [
      "-c",
      'set -o pipefail; git -C "$0" archive --format=tar "$1" | tar -x -C "$2"',
      ROOT,
      commit,
      dir,
    ],
    stderr: "piped",
  }).output();
  if (!out.success) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(
      `Cannot check out ${commit}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return `${dir}/`;
}

/** The raw document at `key`. */
export async function getRaw(c: Cluster, key: string): Promise<Doc> {
  const r = await c.store.client.kv.range({ key: c.store.full(key) });
  return JSON.parse(r.kvs[0].value.toString());
}

/** Writes `value` (text as it is, else JSON) at `key`, raw. */
export async function putRaw(c: Cluster, key: string, value: unknown) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  await c.store.client.kv.put({
    key: c.store.full(key),
    value: Buffer.from(text),
  });
}

/** Rewrites a document raw, comparing its revision (retries). */
export async function editRaw(c: Cluster, key: string, f: (d: Doc) => Doc) {
  for (let i = 0; i < 20; i++) {
    const r = await c.store.client.kv.range({ key: c.store.full(key) });
    const next = f(JSON.parse(r.kvs[0].value.toString()));
    const t = await c.store.client.kv.txn({
      compare: [{
        key: c.store.full(key),
        target: "Mod",
        result: "Equal",
        mod_revision: r.kvs[0].mod_revision,
      }],
      success: [{
        request_put: {
          key: c.store.full(key),
          value: Buffer.from(JSON.stringify(next)),
        },
      }],
      failure: [],
    });
    if (t.succeeded) return;
  }
  throw new Error(`Cannot edit ${key}: it keeps changing`);
}
