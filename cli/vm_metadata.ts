/**
 * The metadata inputs of `ucloud vm create` (`--key`, `--user-data`) and
 * how `vm show` prints them. The user data file is read and checked here,
 * before any request: at most 64 KiB of UTF-8 text, never a binary file.
 *
 * @module
 */
import type { Vm } from "./client.ts";
import { CliError } from "./errors.ts";

/** SSH keys per VM (the API's limit). */
export const MAX_VM_KEYS = 32;

/** The largest user data, in bytes (the API's limit). */
export const MAX_USER_DATA_BYTES = 64 * 1024;

/**
 * The text of user data file `path`, checked: a regular file of at most
 * 64 KiB of UTF-8 text without NUL bytes.
 *
 * @example
 * ```ts
 * const userData = await readUserData("cloud.yaml");
 * ```
 */
export async function readUserData(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new CliError(`${path} is not a file`);
    if (info.size > MAX_USER_DATA_BYTES) {
      throw new CliError(
        `${path} has ${info.size} bytes: user data has at most ` +
          `${MAX_USER_DATA_BYTES} (64 KiB)`,
      );
    }
    bytes = await Deno.readFile(path);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  const binary = () =>
    new CliError(
      `${path} is not text: user data must be UTF-8 text (a cloud-config ` +
        "or a script); binary files are refused",
    );
  if (bytes.includes(0)) throw binary();
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      bytes,
    );
  } catch {
    throw binary();
  }
}

/**
 * The `vm show` lines of a VM's metadata inputs: its SSH keys and the size
 * and SHA-256 of its user data.
 */
export function metadataFields(vm: Vm): [string, string | undefined][] {
  const keys = vm.spec.keys;
  const u = vm.userData;
  return [
    [
      "keys",
      keys ? keys.join(", ") : "all of the owner's (as they are when read)",
    ],
    ["user data", u && `${u.bytes} bytes, sha256 ${u.sha256}`],
  ];
}
