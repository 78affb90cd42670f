/**
 * The flags of `deno task bench` (`scripts/bench/main.ts`): which phases to
 * run (`--only`), their sizes, the placement policy and whether to write
 * `bench-results.json`; `--quick` is the test suite's smoke run.
 * `churn`, `scale`, `debian-boot` and `web` run only when `--only` names
 * them.
 */
import type { Policy } from "../../scheduler/mod.ts";

/** The phases, in the order they run. */
export const PHASES = [
  "cas",
  "claim",
  "api",
  "place",
  "vm",
  "image",
  "failover",
  "failover-sim",
  "net",
  "metadata",
  "scrape",
  "churn",
  "scale",
  "debian-boot",
  "web",
] as const;
/** One phase of the bench. */
export type Phase = typeof PHASES[number];
/**
 * Phases run only when `--only` names them: `churn` and `scale` take
 * minutes, `debian-boot` about 3 min per TCG boot, `web` needs Chromium
 * and slapd and boots a guest.
 */
const OPT_IN: readonly Phase[] = ["churn", "scale", "debian-boot", "web"];

/** The phases run without `--only`. */
export const DEFAULT_PHASES: readonly Phase[] = PHASES.filter((p) =>
  !OPT_IN.includes(p)
);

/** What the flags ask for, with the defaults filled in. */
export interface Options {
  quick: boolean;
  only: Set<Phase>;
  write: boolean;
  n: number;
  apiRequests: number;
  vms: number;
  warmupVms: number;
  /** VMs of each kind (from an image, no disk) in the image phase. */
  imageVms: number;
  /** MiB of data in the qcow2 the image phase imports. */
  importMiB: number;
  importRounds: number;
  placeVms: number;
  placeHosts: number;
  policy: Policy;
  gapMs: number;
  /** Cycle counts of the churn runs, one run each. */
  churnCycles: number[];
  /** The scale phase: hosts, VM counts per host, idle and churn seconds. */
  scaleHosts: number;
  scaleVms: number[];
  idleSeconds: number;
  churnSeconds: number;
  /** Lease TTL of the scale phase's workers, s. */
  scaleTtlSeconds: number;
  /** The scrape phase: sim VMs on the worker, scrapes. */
  scrapeVms: number;
  scrapes: number;
  /** The web phase: VMs created from the form, console opens. */
  webVms: number;
  webConsoles: number;
}

function usage(): never {
  console.error(
    "usage: deno run -A scripts/bench/main.ts [--quick] " +
      "[--only=cas,claim,api,place,vm,image,failover,failover-sim,net,metadata,scrape,churn,scale,debian-boot,web] " +
      "[--no-write] [--n=N] [--vms=N] [--image-vms=N] [--import-mib=N] " +
      "[--place-vms=N] [--hosts=N] [--policy=spread|pack] [--gap-ms=MS] " +
      "[--cycles=N,N] [--scale-hosts=N] [--scale-vms=N,N] [--idle-s=S] " +
      "[--churn-s=S] [--scale-ttl=S] [--web-vms=N] [--web-consoles=N]",
  );
  Deno.exit(2);
}

/** Reads the flags; prints the usage and exits with 2 on a bad one. */
export function parseArgs(args: string[]): Options {
  let quick = false;
  let write = true;
  let only = new Set<Phase>(DEFAULT_PHASES);
  let n: number | undefined;
  let vms: number | undefined;
  let imageVms: number | undefined;
  let importMiB: number | undefined;
  let placeVms: number | undefined;
  let placeHosts: number | undefined;
  let policy: Policy = "spread";
  let gapMs = 5000;
  let churnCycles: number[] | undefined;
  let scaleHosts: number | undefined;
  let scaleVms: number[] | undefined;
  let idleSeconds: number | undefined;
  let churnSeconds: number | undefined;
  let scaleTtlSeconds = 10;
  let webVms: number | undefined;
  let webConsoles: number | undefined;
  const int = (v: string, min: number) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < min) usage();
    return x;
  };
  for (const a of args) {
    const [flag, value] = a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, ""];
    if (flag === "--quick") quick = true;
    else if (flag === "--no-write") write = false;
    else if (flag === "--only") {
      const names = value.split(",").map((s) => s.trim()).filter(Boolean);
      if (!names.length || names.some((s) => !PHASES.includes(s as Phase))) {
        console.error(`--only takes a list of ${PHASES.join(",")}`);
        usage();
      }
      only = new Set(names as Phase[]);
      // Placement is judged against the raw CAS rate of the same run.
      if (only.has("place")) only.add("cas");
    } else if (flag === "--n") n = int(value, 1);
    else if (flag === "--vms") vms = int(value, 1);
    else if (flag === "--image-vms") imageVms = int(value, 1);
    else if (flag === "--import-mib") importMiB = int(value, 1);
    else if (flag === "--place-vms") placeVms = int(value, 1);
    else if (flag === "--hosts") placeHosts = int(value, 1);
    else if (flag === "--gap-ms") gapMs = int(value, 0);
    else if (flag === "--cycles") {
      churnCycles = value.split(",").map((v) => int(v, 1));
    } else if (flag === "--scale-hosts") scaleHosts = int(value, 1);
    else if (flag === "--scale-vms") {
      scaleVms = value.split(",").map((v) => int(v, 1));
    } else if (flag === "--idle-s") idleSeconds = int(value, 1);
    else if (flag === "--churn-s") churnSeconds = int(value, 0);
    else if (flag === "--scale-ttl") scaleTtlSeconds = int(value, 2);
    else if (flag === "--web-vms") webVms = int(value, 1);
    else if (flag === "--web-consoles") webConsoles = int(value, 1);
    else if (flag === "--policy") {
      if (value !== "spread" && value !== "pack") usage();
      policy = value;
    } else usage();
  }
  return {
    quick,
    only,
    write,
    n: n ?? (quick ? 300 : 2000),
    apiRequests: quick ? 200 : 1000,
    vms: vms ?? (quick ? 3 : 10),
    warmupVms: quick ? 0 : 1,
    imageVms: imageVms ?? (quick ? 2 : 5),
    importMiB: importMiB ?? (quick ? 32 : 256),
    importRounds: quick ? 3 : 5,
    placeVms: placeVms ?? (quick ? 500 : 10_000),
    placeHosts: placeHosts ?? (quick ? 20 : 100),
    policy,
    gapMs,
    churnCycles: churnCycles ?? (quick ? [50, 200] : [2000, 10_000]),
    // 50 hosts do not fit 2 shared cores: scale.ts says what was measured.
    scaleHosts: scaleHosts ?? (quick ? 3 : 20),
    scaleVms: scaleVms ?? (quick ? [5, 20] : [50, 200]),
    idleSeconds: idleSeconds ?? (quick ? 5 : 60),
    churnSeconds: churnSeconds ?? (quick ? 5 : 30),
    scaleTtlSeconds,
    scrapeVms: quick ? 5 : 50,
    scrapes: quick ? 5 : 50,
    webVms: webVms ?? (quick ? 2 : 5),
    webConsoles: webConsoles ?? (quick ? 1 : 3),
  };
}
