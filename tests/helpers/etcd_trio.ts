/**
 * A three-member etcd cluster on loopback for tests of what depends on
 * members and the leader (tasks/maintenance_defrag.ts); core/etcd_server.ts
 * starts one member only.
 *
 * @example
 * ```ts
 * const trio = await startTrio();
 * try {
 *   const store = Store.connect({ endpoints: trio.endpoints, prefix: "/t" });
 * } finally {
 *   await trio.stop();
 * }
 * ```
 */
import { freePort } from "../../core/etcd_server.ts";
import { waitFor } from "./cluster.ts";

/** One member: its name, client endpoint and process. */
export interface TrioMember {
  name: string;
  endpoint: string;
  child: Deno.ChildProcess;
}

export interface Trio {
  members: TrioMember[];
  endpoints: string[];
  /** SIGKILLs member `name` and waits for its exit. */
  kill(name: string): Promise<void>;
  /** Kills every member and removes the data. */
  stop(): Promise<void>;
}

/** Starts members m0..m2 and waits until each one is healthy. */
export async function startTrio(): Promise<Trio> {
  const dir = await Deno.makeTempDir({ prefix: "uc-trio-" });
  const spec = [0, 1, 2].map((i) => ({
    name: `m${i}`,
    port: freePort(),
    peer: freePort(),
  }));
  const initial = spec.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`)
    .join(",");
  const members: TrioMember[] = spec.map((s) => {
    const endpoint = `http://127.0.0.1:${s.port}`;
    const child = new Deno.Command("etcd", {
      args: [
        `--name=${s.name}`,
        `--data-dir=${dir}/${s.name}`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=http://127.0.0.1:${s.peer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${s.peer}`,
        `--initial-cluster=${initial}`,
        "--initial-cluster-state=new",
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--log-level=warn",
        "--logger=zap",
        `--log-outputs=${dir}/${s.name}.log`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    return { name: s.name, endpoint, child };
  });
  const kill = async (m: TrioMember) => {
    try {
      m.child.kill("SIGKILL");
    } catch { /* gone */ }
    await m.child.status;
  };
  const trio: Trio = {
    members,
    endpoints: members.map((m) => m.endpoint),
    kill: (name) => kill(members.find((m) => m.name === name)!),
    async stop() {
      for (const m of members) await kill(m);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    for (const m of members) {
      await waitFor(
        `${m.name} healthy`,
        async () => {
          const res = await fetch(`${m.endpoint}/health`, {
            signal: AbortSignal.timeout(1000),
          });
          return (await res.json()).health === "true";
        },
        30_000,
        100,
      );
    }
  } catch (err) {
    await trio.stop();
    throw err;
  }
  return trio;
}
