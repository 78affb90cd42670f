/**
 * Processes of test hosts found by their command lines in /proc: qemu and
 * sim VM processes, and fencers (also of another checkout's workers, e.g.
 * the old version of tests/version_skew_test.ts), with the kills that
 * reap them. tests/helpers/cluster.ts re-exports these.
 */
/** Pids of qemu processes whose command line mentions `needle`. */
export async function qemuPids(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
      if (cmd.split("\0")[0].includes("qemu-system") && cmd.includes(needle)) {
        pids.push(Number(e.name));
      }
    } catch { /* exited */ }
  }
  return pids;
}

/**
 * Live sim VM processes (drivers/sim: argv[0] `ucloud-sim <pidfile>`) of the
 * state dir `under` or dirs below it: VM id -> pids. A killed process that
 * lingers as a zombie has no command line and is not counted.
 */
export async function simPids(under: string): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  const root = under.endsWith("/") ? under : `${under}/`;
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(
      () => "",
    );
    const m = cmd.match(/^ucloud-sim (.*)\/vms\/([^/]+)\/sim\.pid/);
    if (!m || !`${m[1]}/`.startsWith(root)) continue;
    out.set(m[2], [...(out.get(m[2]) ?? []), Number(e.name)]);
  }
  return out;
}

/**
 * Pids of fencers (workers/fencer.ts, of any checkout) and of the `setsid`
 * starting one, whose state dir is `under` or below it.
 */
export async function fencerPids(under: string): Promise<number[]> {
  const root = under.endsWith("/") ? under : `${under}/`;
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const args = (await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(
      () => "",
    )).split("\0");
    const i = args.findIndex((a) => a.endsWith("/workers/fencer.ts"));
    if (i >= 0 && args[i + 1]?.startsWith(root)) pids.push(Number(e.name));
  }
  return pids;
}

/**
 * SIGKILLs every fencer of the state dirs under `under` until two looks
 * 100 ms apart find none (a `setsid` may be forking one).
 */
export async function reapFencers(under: string): Promise<void> {
  for (let n = 0, quiet = 0; quiet < 2; n++) {
    if (n === 50) throw new Error(`Cannot reap the fencers under ${under}`);
    const pids = await fencerPids(under);
    quiet = pids.length ? 0 : quiet + 1;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGKILLs every qemu started under `stateDir`. */
export async function killQemus(stateDir: string): Promise<void> {
  for (const pid of await qemuPids(stateDir)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
}
