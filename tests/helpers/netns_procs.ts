/**
 * Killing every process of test namespaces (tests/helpers/netns.ts), found
 * by the namespace's inode (`/proc/<pid>/ns/net`), not by `ip netns pids`.
 *
 * A worker runs in its host's namespace through `ip netns exec`, so in a
 * mount namespace of its own whose mounts do not propagate back: the DHCP
 * namespaces it makes (`ip netns add uc-<id>-<host>-ucd…`) are mounted on
 * `/run/netns/<name>` only there (and in the mount namespaces of the
 * daemons it starts); in the root mount namespace the name is an empty
 * file. {@linkcode holdNetns} therefore reads every mount namespace's
 * `mountinfo` for `nsfs` mounts of the names asked, and opens each one
 * through `/proc/<pid>/root`: the namespaces stay held (their inodes are
 * not reused) until `close()`.
 *
 * @example
 * ```ts
 * const held = await holdNetns((n) => n.startsWith("uc-1a2b-"));
 * try {
 *   await killAllIn(held);
 * } finally {
 *   held.close();
 * }
 * ```
 */

/**
 * Namespaces held open until `close()`: `ids` are their `net:[<ino>]`,
 * `names` those that exist in this mount namespace (`ip netns del` them).
 */
export interface HeldNetns {
  ids: Set<string>;
  names: string[];
  close(): void;
}

function pids(): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (/^\d+$/.test(e.name) && Number(e.name) !== Deno.pid) out.push(e.name);
  }
  return out;
}

/**
 * Opens the named network namespaces whose name passes `want`, whichever
 * mount namespace they are mounted in.
 */
export async function holdNetns(
  want: (name: string) => boolean,
): Promise<HeldNetns> {
  const files: Deno.FsFile[] = [];
  const ids = new Set<string>();
  const names: string[] = [];
  const nsfs = (await Deno.stat("/proc/self/ns/net")).dev;
  const hold = async (path: string) => {
    try {
      const f = await Deno.open(path);
      const s = await f.stat();
      const id = `net:[${s.ino}]`;
      // A plain file: a name mounted in another mount namespace only.
      if (s.dev !== nsfs || ids.has(id)) return f.close();
      files.push(f);
      ids.add(id);
    } catch { /* gone */ }
  };
  try {
    for (const e of Deno.readDirSync("/run/netns")) {
      if (!want(e.name)) continue;
      names.push(e.name);
      await hold(`/run/netns/${e.name}`);
    }
  } catch { /* no /run/netns */ }
  const mountNses = new Set<string>();
  for (const pid of pids()) {
    const mnt = await Deno.readLink(`/proc/${pid}/ns/mnt`).catch(() => "");
    if (!mnt || mountNses.has(mnt)) continue;
    mountNses.add(mnt);
    const info = await Deno.readTextFile(`/proc/${pid}/mountinfo`)
      .catch(() => "");
    for (const line of info.split("\n")) {
      const f = line.split(" ");
      const point = f[4] ?? "";
      if (!line.includes(" - nsfs ") || !point.startsWith("/run/netns/")) {
        continue;
      }
      if (want(point.slice("/run/netns/".length))) {
        await hold(`/proc/${pid}/root${point}`);
      }
    }
  }
  return { ids, names, close: () => files.forEach((f) => f.close()) };
}

/** Pids of the processes in the namespaces `ids`. */
async function pidsIn(ids: Set<string>): Promise<number[]> {
  const out: number[] = [];
  for (const pid of pids()) {
    const ns = await Deno.readLink(`/proc/${pid}/ns/net`).catch(() => "");
    if (ids.has(ns)) out.push(Number(pid));
  }
  return out;
}

/**
 * SIGKILLs every process in the held namespaces until none is left;
 * returns the pids killed. Throws naming those left after `timeoutMs`.
 */
export async function killAllIn(
  held: HeldNetns,
  timeoutMs = 10_000,
): Promise<number[]> {
  const killed = new Set<number>();
  const end = Date.now() + timeoutMs;
  while (held.ids.size) {
    const found = await pidsIn(held.ids);
    if (found.length === 0) break;
    if (Date.now() > end) {
      throw new Error(`Processes left in namespaces: ${found.join(" ")}`);
    }
    for (const pid of found) {
      try {
        Deno.kill(pid, "SIGKILL");
        killed.add(pid);
      } catch { /* gone */ }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return [...killed];
}
