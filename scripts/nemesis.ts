/**
 * `deno task nemesis`: a Jepsen-style run against real components (three
 * hosts as network namespaces, etcd, workers with the sim driver or, with
 * `--driver qemu`, real qemu under TCG booting the tiny test guest with a
 * slower workload of at most 6 VMs (tests/helpers/nemesis/profile.ts), the
 * API as a process). A client workload creates, stops, starts, moves and
 * deletes VMs while a seeded nemesis kills and pauses workers, kills
 * fencers, cuts links, restarts etcd and kills the API; a checker then
 * counts double runs, lost, leaked and stuck things
 * (tests/helpers/nemesis/run.ts). Exits 1 when any of those is not zero.
 *
 * Usage: `deno task nemesis [--driver sim|qemu] [--minutes N] [--seed S]
 * [--hosts 3] [--no-faults] [--keep]` (`--keep` leaves the run's directory with every
 * log). Ctrl-C ends the run without a verdict and tears everything down.
 */
import { parseArgs } from "node:util";
import { randomSeed } from "../tests/helpers/nemesis/rng.ts";
import { runNemesis } from "../tests/helpers/nemesis/run.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    driver: { type: "string", default: "sim" },
    minutes: { type: "string", default: "1" },
    seed: { type: "string" },
    hosts: { type: "string", default: "3" },
    "no-faults": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});
const minutes = Number(values.minutes);
const hosts = Number(values.hosts);
const seed = values.seed === undefined ? randomSeed() : Number(values.seed);
const driver = values.driver;
if (
  !(minutes > 0) || !Number.isInteger(hosts) || hosts < 2 ||
  !Number.isInteger(seed) || (driver !== "sim" && driver !== "qemu")
) {
  console.error(
    "Usage: deno task nemesis [--driver sim|qemu] [--minutes N] [--seed S] [--hosts N>=2] [--no-faults] [--keep]",
  );
  Deno.exit(2);
}

const ctl = new AbortController();
const onInt = () => {
  if (ctl.signal.aborted) Deno.exit(130); // a second Ctrl-C: leave now
  console.log("interrupted: tearing down (Ctrl-C again to leave at once)");
  ctl.abort();
};
Deno.addSignalListener("SIGINT", onInt);
Deno.addSignalListener("SIGTERM", onInt);
try {
  const r = await runNemesis({
    durationMs: Math.round(minutes * 60_000),
    seed,
    driver,
    hosts,
    faults: !values["no-faults"],
    keep: values.keep,
    signal: ctl.signal,
  });
  Deno.exit(r.ok ? 0 : 1);
} catch (err) {
  if (ctl.signal.aborted) Deno.exit(130);
  console.error(
    `nemesis: the run failed: ${err instanceof Error ? err.stack : err}`,
  );
  Deno.exit(1);
}
