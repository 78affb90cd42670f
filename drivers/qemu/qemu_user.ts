/**
 * The unprivileged system user qemu switches to (`-runas`, args.ts):
 * scripts/install.sh creates it, and {@linkcode ensureQemuUser} does when
 * it is missing (a host installed before VMs ran unprivileged, a test).
 *
 * @module
 */
import { CommandError, run } from "../runner.ts";

/** The user's numeric ids. */
export interface UserIds {
  uid: number;
  gid: number;
}

/**
 * The ids of system user `name`, created first (no home, no login shell,
 * its own group) when it does not exist. Safe to call from several
 * processes at once: a lost race to create it finds it made.
 *
 * @example
 * ```ts
 * await ensureQemuUser("ucloud-qemu"); // { uid: 995, gid: 995 }
 * ```
 */
export async function ensureQemuUser(
  name: string,
  signal?: AbortSignal,
): Promise<UserIds> {
  const found = await lookup(name, signal);
  if (found) return found;
  try {
    await run("useradd", [
      "--system",
      "--no-create-home",
      "--home-dir",
      "/nonexistent",
      "--shell",
      "/usr/sbin/nologin",
      "--user-group",
      name,
    ], { signal });
  } catch (err) {
    // 9: created meanwhile by another process.
    if (!(err instanceof CommandError) || err.code !== 9) throw err;
  }
  const made = await lookup(name, signal);
  if (!made) throw new Error(`Cannot create user ${name}: useradd made none`);
  return made;
}

/** The ids of `name` from `getent passwd`, or null when there is none. */
async function lookup(
  name: string,
  signal?: AbortSignal,
): Promise<UserIds | null> {
  try {
    const { stdout } = await run("getent", ["passwd", name], { signal });
    const [, , uid, gid] = stdout.trim().split(":");
    return { uid: Number(uid), gid: Number(gid) };
  } catch (err) {
    // 2: no such user.
    if (err instanceof CommandError && err.code === 2) return null;
    throw err;
  }
}
