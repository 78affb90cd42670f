/**
 * Real OpenSSH keys for tests: `sshKeygen()` makes a key pair with
 * `ssh-keygen` (Debian's openssh-client) and reports what `ssh-keygen -l
 * -E sha256` says of its public key, to compare ucloud's parser with.
 *
 * @example
 * ```ts
 * const key = await sshKeygen(dir, "ed25519");
 * key.line; // "ssh-ed25519 AAAA... test"
 * ```
 */

/** A generated public key and what ssh-keygen says of it. */
export interface GeneratedKey {
  /** The .pub file's text, without the trailing newline. */
  line: string;
  /** The .pub file. */
  file: string;
  /** `SHA256:...` as `ssh-keygen -l -E sha256` prints it. */
  fingerprint: string;
  bits: number;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** What `ssh-keygen -l -E sha256 -f file` prints: bits and fingerprint. */
export async function keygenFingerprint(
  file: string,
): Promise<{ bits: number; fingerprint: string }> {
  const out = await run("ssh-keygen", ["-l", "-E", "sha256", "-f", file]);
  const [bits, fingerprint] = out.trim().split(" ");
  return { bits: Number(bits), fingerprint };
}

/**
 * Makes a key pair of `type` (ed25519, rsa, ecdsa) in `dir`, `bits` for
 * rsa and ecdsa, with `comment`.
 */
export async function sshKeygen(
  dir: string,
  type: "ed25519" | "rsa" | "ecdsa",
  bits?: number,
  comment = "test",
): Promise<GeneratedKey> {
  const file = `${dir}/id_${type}${bits ?? ""}_${crypto.randomUUID()}`;
  await run("ssh-keygen", [
    "-q",
    "-t",
    type,
    ...(bits ? ["-b", String(bits)] : []),
    "-N",
    "",
    "-C",
    comment,
    "-f",
    file,
  ]);
  const line = (await Deno.readTextFile(`${file}.pub`)).trimEnd();
  return {
    line,
    file: `${file}.pub`,
    ...await keygenFingerprint(`${file}.pub`),
  };
}
