/** onCurve() against public keys that WebCrypto generates on each curve. */
import assert from "node:assert/strict";
import { type Curve, onCurve } from "./ec_point.ts";

Deno.test("onCurve() accepts WebCrypto's P-256/384/521 public keys and refuses changed points", async () => {
  const curves: [Curve, string][] = [
    ["nistp256", "P-256"],
    ["nistp384", "P-384"],
    ["nistp521", "P-521"],
  ];
  for (const [curve, named] of curves) {
    for (let i = 0; i < 5; i++) {
      const pair = await crypto.subtle.generateKey(
        { name: "ECDSA", namedCurve: named },
        true,
        ["sign"],
      ) as CryptoKeyPair;
      const point = new Uint8Array(
        await crypto.subtle.exportKey("raw", pair.publicKey),
      );
      assert.ok(onCurve(curve, point), curve);
      const y = point.slice();
      y[y.length - 1] ^= 1;
      assert.ok(!onCurve(curve, y), `${curve} y changed`);
      const x = point.slice();
      x[1 + (point.length - 1) / 2 - 1] ^= 1;
      assert.ok(!onCurve(curve, x), `${curve} x changed`);
      assert.ok(!onCurve(curve, point.subarray(1)), `${curve} no 04`);
      const big = point.slice();
      big.fill(0xff, 1, 1 + (point.length - 1) / 2);
      assert.ok(!onCurve(curve, big), `${curve} x >= p`);
    }
  }
});
