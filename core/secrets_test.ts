/**
 * Tests of core/secrets.ts: host key parsing and derived keys, secret
 * encryption with tamper detection, base32 and new TOTP seeds.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  base32Decode,
  base32Encode,
  decryptSecret,
  encryptSecret,
  importHostKey,
  newHostKey,
  newSeed,
  parseHostKey,
  SecretDecryptError,
} from "./secrets.ts";

Deno.test("parseHostKey() accepts 32 bytes of base64 with a trailing newline", () => {
  const key = newHostKey();
  assert.equal(parseHostKey(`${key}\n`).length, 32);
  assert.notEqual(newHostKey(), key);
});

Deno.test("parseHostKey() refuses other lengths and non-base64", () => {
  assert.throws(
    () => parseHostKey(Buffer.alloc(16).toString("base64")),
    /16 bytes, need 32/,
  );
  assert.throws(() => parseHostKey("not base64!"), /not base64/);
  assert.throws(() => parseHostKey(""), /not base64/);
});

Deno.test("encryptSecret() round trips and uses a fresh IV each time", async () => {
  const { seal } = await importHostKey(newHostKey());
  const a = await encryptSecret(
    seal,
    "JBSWY3DPEHPK3PXP",
    "otp-seed/ucloud/alice",
  );
  const b = await encryptSecret(
    seal,
    "JBSWY3DPEHPK3PXP",
    "otp-seed/ucloud/alice",
  );
  assert.notEqual(a, b);
  assert.ok(a.startsWith("v1."));
  assert.ok(!a.includes("JBSWY3DPEHPK3PXP"));
  assert.equal(
    await decryptSecret(seal, a, "otp-seed/ucloud/alice"),
    "JBSWY3DPEHPK3PXP",
  );
});

Deno.test("decryptSecret() detects tampering, another context and another key", async () => {
  const { seal } = await importHostKey(newHostKey());
  const sealed = await encryptSecret(seal, "secret", "otp-seed/ucloud/alice");
  const raw = Buffer.from(sealed.slice(3), "base64");
  for (const i of [0, 12, raw.length - 1]) {
    const t = Buffer.from(raw);
    t[i] ^= 1;
    await assert.rejects(
      decryptSecret(
        seal,
        `v1.${t.toString("base64")}`,
        "otp-seed/ucloud/alice",
      ),
      SecretDecryptError,
    );
  }
  await assert.rejects(
    decryptSecret(seal, sealed, "otp-seed/ucloud/bob"),
    /wrong key or tampered data/,
  );
  const other = await importHostKey(newHostKey());
  await assert.rejects(
    decryptSecret(other.seal, sealed, "otp-seed/ucloud/alice"),
    SecretDecryptError,
  );
  await assert.rejects(
    decryptSecret(seal, "v2.AAAA", "otp-seed/ucloud/alice"),
    /unknown format/,
  );
  await assert.rejects(
    decryptSecret(seal, "v1.AAAA", "otp-seed/ucloud/alice"),
    /too short/,
  );
});

Deno.test("importHostKey() derives distinct keys for signing and replay tags", async () => {
  const keys = await importHostKey(newHostKey());
  const msg = new TextEncoder().encode("same message");
  const a = Buffer.from(await crypto.subtle.sign("HMAC", keys.sign, msg));
  const b = Buffer.from(await crypto.subtle.sign("HMAC", keys.tag, msg));
  assert.notDeepEqual(a, b);
  // The same host key derives the same keys on every API host.
  const text = newHostKey();
  const x = await importHostKey(text);
  const y = await importHostKey(text);
  assert.deepEqual(
    Buffer.from(await crypto.subtle.sign("HMAC", x.sign, msg)),
    Buffer.from(await crypto.subtle.sign("HMAC", y.sign, msg)),
  );
});

Deno.test("base32Encode() and base32Decode() match RFC 4648 vectors", () => {
  const vectors: [string, string][] = [
    ["", ""],
    ["f", "MY"],
    ["fo", "MZXQ"],
    ["foo", "MZXW6"],
    ["foob", "MZXW6YQ"],
    ["fooba", "MZXW6YTB"],
    ["foobar", "MZXW6YTBOI"],
  ];
  for (const [plain, enc] of vectors) {
    assert.equal(base32Encode(new TextEncoder().encode(plain)), enc);
    assert.equal(new TextDecoder().decode(base32Decode(enc)), plain);
  }
  assert.equal(
    new TextDecoder().decode(base32Decode("mzxw 6ytb oi======")),
    "foobar",
  );
  assert.throws(() => base32Decode("MZXW1"), /invalid character/);
});

Deno.test("newSeed() returns 160 random bits as 32 base32 characters", () => {
  const a = newSeed();
  assert.match(a, /^[A-Z2-7]{32}$/);
  assert.equal(base32Decode(a).length, 20);
  assert.notEqual(newSeed(), a);
});
