/**
 * What a user sees of the hosts that run their things: the host's name, but
 * none of its internals. Admins see documents as stored; for everyone else
 * (an admin acting for a user with `X-Act-As` included) a VM loses its
 * driver handle (pid, files, sockets) and the worker incarnation that owns
 * it, a task the values of such fields in its payload and result, and the
 * free text of both (reasons, errors, progress, crash and history messages)
 * has host paths and process ids masked. An image loses its store name.
 *
 * @example
 * ```ts
 * vmView({ name: "bob", admin: false }, vm).status.handle; // undefined
 * hideHostText("qemu pid 4242 exited: /var/lib/ucloud/vms/vm-1/qmp.sock gone");
 * // "qemu pid <hidden> exited: <host path> gone"
 * ```
 */
import type { Image } from "../core/image_schemas.ts";
import type { Task, Vm } from "../core/schemas.ts";
import type { Caller } from "./deps.ts";

/** What replaces a host path in text a user sees. */
export const HIDDEN_PATH = "<host path>";
/** What replaces a process id in text a user sees. */
export const HIDDEN_PID = "<hidden>";

/**
 * An absolute path: a `/` that starts a word (not inside a URL, a CIDR such
 * as `2001:db8::/64` or `10.0.0.0/8`, or a relative name such as
 * `alice/deb12`), followed by at least one path character.
 */
const PATH_RE = /(?<![\w.:/~@-])\/[\w.@+~-][\w.@+~/-]*/g;
/** "pid 4242", "pid=4242", "pid: 4242", "pids 1, 2". */
const PID_RE = /\b(pids?)([=:]?\s*)\d+(?:\s*,\s*\d+)*/gi;

/** Fields of task payloads and results that name host internals. */
const HIDDEN_KEYS = new Set([
  "pid",
  "pids",
  "handle",
  "incarnation",
  "lease",
  "pidfile",
  "qmp",
  "console",
  "vnc",
  "serial",
  "dir",
]);

/** `text` with host paths and process ids masked. */
export function hideHostText(text: string): string {
  return text.replace(PATH_RE, HIDDEN_PATH).replace(
    PID_RE,
    (_m, word: string, sep: string) => `${word}${sep}${HIDDEN_PID}`,
  );
}

/** A JSON value with the fields of `HIDDEN_KEYS` dropped and text masked. */
function hideJson(v: unknown): unknown {
  if (typeof v === "string") return hideHostText(v);
  if (Array.isArray(v)) return v.map(hideJson);
  if (v === null || typeof v !== "object") return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (!HIDDEN_KEYS.has(k)) out[k] = hideJson(x);
  }
  return out;
}

const hideOpt = (s: string | undefined) =>
  s === undefined ? undefined : hideHostText(s);

/** VM `vm` as `who` may see it (see the module comment). */
export function vmView(who: Caller, vm: Vm): Vm {
  if (who.admin) return vm;
  const { handle: _h, incarnation: _i, reason, crashes, ...status } = vm.status;
  return {
    ...vm,
    status: {
      ...status,
      ...(reason !== undefined ? { reason: hideHostText(reason) } : {}),
      ...(crashes
        ? {
          crashes: crashes.map((c) => ({
            ...c,
            reason: hideHostText(c.reason),
          })),
        }
        : {}),
    },
  };
}

/** Task `t` as `who` may see it (see the module comment). */
export function taskView(who: Caller, t: Task): Task {
  if (who.admin) return t;
  const out: Task = {
    ...t,
    payload: hideJson(t.payload) as Task["payload"],
    history: t.history.map((e) =>
      e.message === undefined ? e : { ...e, message: hideHostText(e.message) }
    ),
  };
  if (t.result !== undefined) out.result = hideJson(t.result);
  if (t.error !== undefined) out.error = hideOpt(t.error);
  if (t.progress !== undefined) out.progress = hideOpt(t.progress);
  return out;
}

/** Image `img` as `who` may see it: no store name, masked reason. */
export function imageView(who: Caller, img: Image): Image {
  if (who.admin) return img;
  const { storedAs: _s, reason, ...rest } = img;
  return reason === undefined
    ? rest
    : { ...rest, reason: hideHostText(reason) };
}
