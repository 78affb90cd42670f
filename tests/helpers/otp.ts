/**
 * Shared pieces of the identity tests: TOTP codes from oathtool (the
 * independent reference implementation) and a logger that keeps its lines
 * for the no-secrets checks.
 */
import type { Fields, Logger } from "../../core/log.ts";

/** A token from oathtool for `seed` (base32) at `atMs`. */
export async function oathtool(
  seed: string,
  atMs = Date.now(),
): Promise<string> {
  const at = new Date(Math.floor(atMs / 1000) * 1000).toISOString()
    .replace("T", " ").replace(".000Z", " UTC");
  const out = await new Deno.Command("oathtool", {
    args: ["--totp", "-b", "-N", at, seed],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`oathtool: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** A logger that keeps every line it would write. */
export function captureLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const make = (base: Fields): Logger => {
    const w = (level: string) => (msg: string, f?: Fields) =>
      lines.push(JSON.stringify({ level, msg, ...base, ...f }));
    return {
      debug: w("debug"),
      info: w("info"),
      warn: w("warn"),
      error: w("error"),
      child: (f) => make({ ...base, ...f }),
    };
  };
  return Object.assign(make({}), { lines });
}
