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
