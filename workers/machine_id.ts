/**
 * A host's identity: the machine id, 32 hex digits kept in
 * `<stateDir>/machine-id`, made once from random bytes and never changed
 * (like systemd's /etc/machine-id, but per state directory, so two workers
 * on one machine with their own state are two machines). The host document
 * (`host/<name>`) records the machine that registered the name last.
 *
 * A worker may use a host name only when no other machine holds it: while
 * `alive/<name>` exists and the host document names another machine, it is
 * refused (two machines must never share a lease and run one queue). Once
 * that alive key is gone, another machine may take the name over: that is
 * what replacing a host's hardware looks like, so it is allowed and logged
 * as a warning.
 *
 * @example
 * ```ts
 * const machine = await machineId("/var/lib/ucloud");
 * claimHostName({ host: "h1", machine, registered, alive, log });
 * ```
 */
import type { Logger } from "../core/log.ts";
import type { Alive, Host } from "../core/schemas.ts";

const ID_RE = /^[0-9a-f]{32}$/;

/** The file that holds the machine id of a state directory. */
export function machineIdPath(stateDir: string): string {
  return `${stateDir}/machine-id`;
}

/**
 * Returns the machine id of `stateDir`, creating it on first use. Creation
 * is atomic (a complete temporary file hard-linked into place), so
 * processes starting at once agree on one id. Throws, naming the file, when
 * it exists but holds no valid id: a silently new identity could take over
 * a name that another machine holds.
 */
export async function machineId(stateDir: string): Promise<string> {
  const path = machineIdPath(stateDir);
  const existing = await readId(path);
  if (existing !== null) return existing;
  const id = Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const tmp = `${path}.${id}.tmp`;
  const file = await Deno.open(tmp, { write: true, createNew: true });
  try {
    await file.write(new TextEncoder().encode(`${id}\n`));
    await file.sync();
  } finally {
    file.close();
  }
  try {
    await Deno.link(tmp, path);
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  } finally {
    await Deno.remove(tmp);
  }
  const id2 = await readId(path);
  if (id2 === null) throw new Error(`Cannot create machine id ${path}`);
  return id2;
}

async function readId(path: string): Promise<string | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  const id = text.trim();
  if (!ID_RE.test(id)) {
    throw new Error(
      `Cannot read machine id ${path}: it holds no 32 hex digits; restore it from a backup, or remove it to make this a new machine`,
    );
  }
  return id;
}

/**
 * Raised when the host name is in use by another machine, or by another
 * worker process on this one: retrying cannot help, the process exits.
 */
export class HostInUseError extends Error {
  override name = "HostInUseError";
}

/** What `machine` may do with a host name, from its host and alive docs. */
export type NameClaim =
  | { ok: true }
  | { ok: true; takeover: string }
  | { ok: false; error: string };

/**
 * Pure: whether `machine` may use the host name `host`, given the host
 * document (`registered`) and the alive document (`alive`, absent when the
 * name's last lease expired). A host document without a machine id (written
 * before machine ids existed) names no machine and is no objection.
 */
export function nameClaim(
  host: string,
  machine: string,
  registered: Host | undefined,
  alive: Alive | undefined,
): NameClaim {
  const other = registered?.machineId;
  if (!other || other === machine) return { ok: true };
  if (alive) {
    return {
      ok: false,
      error:
        `Cannot start: host name ${host} is in use by machine ${other} (alive since ${alive.started}); set worker.host to another name`,
    };
  }
  return { ok: true, takeover: other };
}

/**
 * Throws HostInUseError when `nameClaim()` refuses; logs a warning when
 * this machine takes over a name another machine registered.
 */
export function claimHostName(o: {
  host: string;
  machine: string;
  registered: Host | undefined;
  alive: Alive | undefined;
  log: Logger;
}): void {
  const c = nameClaim(o.host, o.machine, o.registered, o.alive);
  if (!c.ok) throw new HostInUseError(c.error);
  if ("takeover" in c) {
    o.log.warn(
      `host name ${o.host} was registered by machine ${c.takeover}, whose lease has expired: this machine takes it over (replaced hardware?)`,
      {
        machine: o.machine,
        previous: c.takeover,
        registeredAt: o.registered?.registeredAt,
      },
    );
  }
}
