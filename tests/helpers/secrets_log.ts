/**
 * Secrets (seeds, bearer and session tokens) that tests create are recorded
 * in `$UCLOUD_SECRETS_FILE` when it is set; `scripts/run_tests.ts` then
 * searches the output of the whole test run for them. Six-digit TOTP codes
 * are not recorded: such numbers turn up in any output by chance.
 */
const file = Deno.env.get("UCLOUD_SECRETS_FILE");

/** Records one secret (when long enough to be searched for). */
export function recordSecret(value: string): void {
  if (!file || value.length < 16) return;
  Deno.writeTextFileSync(file, value + "\n", { append: true });
}

/** A Set of secrets that records every value added. */
export class SecretSet extends Set<string> {
  override add(value: string): this {
    recordSecret(value);
    return super.add(value);
  }
}

/** An API answer a test kept, with the secrets it may hold (its own). */
export interface KeptAnswer {
  text: string;
  allowed: string[];
}

/**
 * Throws when an answer holds a secret it was not allowed, or a log line
 * holds any: a secret counts where it stands as a whole word.
 */
export function assertNoLeaks(
  secrets: Iterable<string>,
  answers: readonly KeptAnswer[],
  logLines: readonly string[],
): void {
  const all = [...secrets];
  const leaks = (text: string, allowed: string[]) =>
    all.filter((s) =>
      !allowed.includes(s) &&
      new RegExp(`(^|[^0-9A-Za-z])${s.replace(/\./g, "\\.")}([^0-9A-Za-z]|$)`)
        .test(text)
    );
  for (const a of answers) {
    if (leaks(a.text, a.allowed).length) {
      throw new Error(`an answer holds a secret: ${a.text}`);
    }
  }
  for (const line of logLines) {
    if (leaks(line, []).length) {
      throw new Error(`a log line holds a secret: ${line}`);
    }
  }
}
