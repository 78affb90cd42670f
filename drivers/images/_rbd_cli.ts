/**
 * The `rbd` and `ceph` command line shared by the RBD driver's modules
 * (rbd.ts, rbd_fence.ts): the pool a call names, name checks, and running a
 * command against the pool's cluster.
 *
 * @module
 */
import { CommandError, run, type RunOptions } from "../runner.ts";

/** Where images live: the pool, the cluster's ceph.conf and the client id. */
export interface RbdPool {
  pool: string;
  /** ceph.conf of the cluster (it names the mon and the keyring). */
  conf: string;
  /** The Ceph client id, without `client.`. */
  user: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Exit codes of `rbd`: the errno of the failure. */
export const ENOENT = 2;
export const EEXIST = 17;

/** Throws a TypeError unless `name` is a plain pool, image or snapshot name. */
export function checkName(kind: string, name: string): string {
  if (!NAME.test(name)) {
    throw new TypeError(
      `Cannot use rbd ${kind} ${
        JSON.stringify(name)
      }: want letters, digits, '.', '_' or '-' (at most 128)`,
    );
  }
  return name;
}

/** `<pool>/<image>` or `<pool>/<image>@<snapshot>`, every part checked. */
export function spec(p: RbdPool, image: string, snapshot?: string): string {
  const base = `${checkName("pool", p.pool)}/${checkName("image", image)}`;
  return snapshot === undefined
    ? base
    : `${base}@${checkName("snapshot", snapshot)}`;
}

/** Runs `<cmd> --conf <conf> --id <user> ...args` and returns its stdout. */
export async function cli(
  cmd: "rbd" | "ceph",
  p: RbdPool,
  args: string[],
  options: RunOptions = {},
): Promise<string> {
  const full = ["--conf", p.conf, "--id", p.user, ...args];
  return (await run(cmd, full, options)).stdout;
}

/** Whether `err` is a command's failure with this exit code. */
export function isCode(err: unknown, code: number): boolean {
  return err instanceof CommandError && err.code === code;
}
