/**
 * Step 3 of a host network sync: the port firewall, both tables (`bridge
 * ucloud`, drivers/net/nft.ts, and `netdev ucloud`,
 * drivers/net/nft_ingress.ts) in ONE `nft -f -` transaction, so that one
 * port's rules the kernel refuses cannot keep every other port's from
 * being applied: when the transaction fails, each changed port's part is
 * checked on its own (`nft -c`, every other port held as it is), the
 * ports refused are held as they are and reported, and the rest is
 * applied. A failure no single port explains is thrown.
 *
 * @example
 * ```ts
 * const r = await applyFirewall(nft, { bridge, ingress, ports, hold });
 * for (const x of r.rejected) log.warn("port rules refused", x);
 * ```
 *
 * @module
 */
import { type NftTable, planTable, type PortRules } from "./nft.ts";
import { planIngress } from "./nft_ingress.ts";

/**
 * Runs `script` through `nft -f -` (`check`: `nft -c`, which the kernel
 * validates without applying it); throws with nft's error.
 */
export type Nft = (script: string, check: boolean) => Promise<void>;

/** What {@linkcode applyFirewall} changed and which ports it left out. */
export interface FirewallResult {
  added: string[];
  changed: string[];
  removed: string[];
  /** Ports whose rules the kernel refused: held as they were. */
  rejected: { port: string; reason: string }[];
}

/**
 * Makes both tables hold exactly the rules of `ports`, leaving the chains
 * of the ports in `hold` as they are. Changes nothing (runs no `nft`)
 * when the tables are as wanted.
 */
export async function applyFirewall(
  nft: Nft,
  o: {
    bridge: NftTable | null;
    ingress: NftTable | null;
    ports: PortRules[];
    hold: ReadonlySet<string>;
  },
): Promise<FirewallResult> {
  const plan = (ports: PortRules[], hold: ReadonlySet<string>) => {
    const b = planTable(o.bridge, ports, hold);
    const i = planIngress(o.ingress, ports.map((p) => p.port), hold);
    return { b, i, script: b.script + i.script };
  };
  const done = (
    p: ReturnType<typeof plan>,
    rejected: FirewallResult["rejected"],
  ) => {
    const out: FirewallResult = {
      added: [],
      changed: [],
      removed: [],
      rejected,
    };
    // An ingress chain is named like the port's bridge chain.
    for (const k of ["added", "changed", "removed"] as const) {
      for (const c of [...p.b[k], ...p.i[k]]) {
        if (!out[k].includes(c)) out[k].push(c);
      }
    }
    return out;
  };
  const all = plan(o.ports, o.hold);
  if (!all.script) return done(all, []);
  let first: unknown;
  try {
    await nft(all.script, false);
    return done(all, []);
  } catch (err) {
    first = err;
  }
  // Which port's part fails? Each on its own, every other port held.
  const every = new Set([...o.hold, ...o.ports.map((p) => p.port)]);
  const base = plan([], every).script;
  if (base) await nft(base, true).catch(() => Promise.reject(first));
  const common = new Set(base.split("\n"));
  const rejected: FirewallResult["rejected"] = [];
  for (const p of o.ports) {
    const others = new Set(every);
    others.delete(p.port);
    const one = plan([p], others).script;
    if (one.split("\n").every((l) => common.has(l))) continue;
    try {
      await nft(one, true);
    } catch (err) {
      rejected.push({ port: p.port, reason: refusal(err) });
    }
  }
  if (!rejected.length) throw first;
  const bad = new Set(rejected.map((r) => r.port));
  const rest = plan(
    o.ports.filter((p) => !bad.has(p.port)),
    new Set([...o.hold, ...bad]),
  );
  if (rest.script) await nft(rest.script, false);
  return done(rest, rejected);
}

/** The first error nft printed ("Could not process rule: ..."). */
function refusal(err: unknown): string {
  let e = err;
  while (e instanceof Error && !("stderr" in e)) e = e.cause;
  const text = e instanceof Error && "stderr" in e ? String(e.stderr) : "";
  const line = text.split("\n").find((l) => l.includes("Error:"));
  const why = line
    ? line.slice(line.indexOf("Error:") + 6).trim()
    : err instanceof Error
    ? err.message
    : String(err);
  return `nft refused its rules: ${why}`;
}
