/**
 * Users' upload directories, made by ucloud, never by hand: every user with
 * an SSH key document (`key/<user>/...`) gets `<uploadDir>/<user>/`
 * (root-owned 0755, the chroot sshd requires) and `<uploadDir>/<user>/upload/`
 * (the user's uid and gid, 0700). `syncUploadDirs()` watches the key
 * documents and makes them when a user's key appears (and for every user with
 * keys at start); a user that NSS cannot resolve yet (directory down, no
 * posixAccount) is tried again every `retryMs`.
 *
 * @example
 * ```ts
 * await syncUploadDirs(store, { uploadDir: "/var/www", lookup, minUid: 1000, signal });
 * ```
 */
import { keys } from "../../core/keys.ts";
import type { Logger } from "../../core/log.ts";
import type { Store } from "../../core/store.ts";
import { NAME_RE } from "../../core/totp_token.ts";
import { sleep, watchPrefix } from "../../core/watch.ts";

/** A user's numeric ids as NSS gives them. */
export interface PosixUser {
  uid: number;
  gid: number;
}

/** Finds a user through NSS; null when there is no such user. */
export type UserLookup = (name: string) => Promise<PosixUser | null>;

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** Makes one directory (no symlink followed) with owner and mode. */
async function ensureDir(
  path: string,
  uid: number,
  gid: number,
  mode: number,
): Promise<void> {
  let st = await lstatOrNull(path);
  if (!st) {
    await Deno.mkdir(path, { mode }).catch((err) => {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    });
    st = await Deno.lstat(path);
  }
  if (!st.isDirectory) {
    throw new Error(`Cannot use ${path}: not a directory`);
  }
  if (st.uid !== uid || st.gid !== gid) await Deno.chown(path, uid, gid);
  if (((st.mode ?? 0) & 0o7777) !== mode) await Deno.chmod(path, mode);
}

/**
 * Makes (or repairs) `<uploadDir>/<user>/` root:root 0755 and its
 * `upload/` owned by the user, 0700. The parent is root-owned, so nobody
 * but root can swap an entry for a symlink between the checks.
 */
export async function ensureUploadDir(
  uploadDir: string,
  user: string,
  who: PosixUser,
): Promise<void> {
  if (!NAME_RE.test(user)) throw new TypeError(`Bad user name ${user}`);
  const home = `${uploadDir}/${user}`;
  await ensureDir(home, 0, 0, 0o755);
  await ensureDir(`${home}/upload`, who.uid, who.gid, 0o700);
}

/** Options of `syncUploadDirs()`. */
export interface SyncOptions {
  uploadDir: string;
  lookup: UserLookup;
  /** Users below this uid get no directory (the machine's own accounts). */
  minUid: number;
  signal: AbortSignal;
  log?: Logger;
  /** Wait before trying an unresolved user again. */
  retryMs?: number;
}

/** The owner of a key document's key `key/<owner>/<name>`. */
function ownerOf(key: string): string | null {
  const rest = key.slice(keys.sshKeys.length);
  const slash = rest.indexOf("/");
  const owner = rest.slice(0, slash);
  return slash > 0 && NAME_RE.test(owner) ? owner : null;
}

/** Runs until `signal` aborts. */
export async function syncUploadDirs(
  store: Store,
  opts: SyncOptions,
): Promise<void> {
  const { signal, log } = opts;
  const pending = new Set<string>();
  const warned = new Set<string>();
  let wake = () => {};
  let dirty = false;
  const add = (key: string) => {
    const owner = ownerOf(key);
    if (owner === null) return;
    pending.add(owner);
    dirty = true;
    wake();
  };

  const one = async (user: string) => {
    const who = await opts.lookup(user);
    if (!who) {
      if (!warned.has(user)) {
        warned.add(user);
        log?.warn("upload dir: user unknown to NSS, trying again", { user });
      }
      return;
    }
    pending.delete(user);
    warned.delete(user);
    if (who.uid < opts.minUid) {
      log?.warn("upload dir: uid below sftp.minUid, none made", {
        user,
        uid: who.uid,
      });
      return;
    }
    await ensureUploadDir(opts.uploadDir, user, who);
    log?.info("upload dir ready", { user, uid: who.uid });
  };

  const work = async () => {
    while (!signal.aborted) {
      dirty = false;
      for (const user of [...pending]) {
        if (signal.aborted) return;
        await one(user).catch((err) =>
          log?.warn("upload dir failed, trying again", {
            user,
            error: String(err),
          })
        );
      }
      // A key that came while the round ran is handled at once.
      if (dirty) continue;
      const idle = new AbortController();
      wake = () => idle.abort();
      signal.addEventListener("abort", wake, { once: true });
      await sleep(
        pending.size ? opts.retryMs ?? 10_000 : 2 ** 31 - 1,
        idle.signal,
      );
      signal.removeEventListener("abort", wake);
    }
  };

  await Promise.all([
    work(),
    watchPrefix(store, keys.sshKeys, {
      signal,
      log,
      onReset: (items) => items.forEach((kv) => add(kv.key)),
      onEvent: (ev) => {
        if (ev.type === "put") add(ev.key);
      },
    }),
  ]);
}
