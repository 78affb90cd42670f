/**
 * Tests of core/totp_token.ts against the RFC 4226 (HOTP) and RFC 6238 (TOTP)
 * test values.
 */
import assert from "node:assert/strict";
import { hotp, tokenMatches, totp, totpCounter } from "./totp_token.ts";

// RFC 4226 appendix D and RFC 6238 appendix B (SHA-1): the ASCII secret
// "12345678901234567890" in base32.
const RFC_SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

Deno.test("hotp() matches the RFC 4226 test values", () => {
  const want = ["755224", "287082", "359152", "969429", "338314", "254676"];
  for (const [i, w] of want.entries()) assert.equal(hotp(RFC_SEED, i), w);
});

Deno.test("totp() matches the RFC 6238 SHA-1 test values", () => {
  const want: [number, string][] = [
    [59, "94287082"],
    [1111111109, "07081804"],
    [1234567890, "89005924"],
    [2000000000, "69279037"],
    [20000000000, "65353130"],
  ];
  for (const [t, w] of want) {
    assert.equal(hotp(RFC_SEED, totpCounter(t * 1000), 8), w);
    assert.equal(totp(RFC_SEED, t * 1000), w.slice(2));
  }
});

Deno.test("hotp() reads base32 in any case, with spaces and padding", () => {
  const spaced = RFC_SEED.toLowerCase().replace(/(.{4})/g, "$1 ") + "====";
  assert.equal(hotp(spaced, 1), "287082");
  assert.throws(() => hotp("GEZDGNB1", 1), TypeError);
});

Deno.test("tokenMatches() accepts a token only at its own counter", () => {
  const counter = totpCounter(59_000);
  assert.equal(tokenMatches(RFC_SEED, "287082", counter), true);
  assert.equal(tokenMatches(RFC_SEED, "287082", counter + 1), false);
  assert.equal(tokenMatches(RFC_SEED, "287083", counter), false);
  assert.equal(tokenMatches(RFC_SEED, "28708", counter), false);
});
