/**
 * Whether an uncompressed point (`04 || X || Y`) lies on a NIST prime curve
 * (P-256, P-384, P-521: y^2 = x^3 - 3x + b mod p, cofactor 1, so a point
 * on the curve is in the group), as OpenSSH checks an ECDSA public key.
 *
 * @example
 * ```ts
 * onCurve("nistp256", point); // true for a real P-256 public key
 * ```
 */

/** The prime p, the constant b and the coordinate size of each curve. */
const CURVES = {
  nistp256: {
    p: 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    bytes: 32,
  },
  nistp384: {
    p: 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    bytes: 48,
  },
  nistp521: {
    p: 2n ** 521n - 1n,
    b: 0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
    bytes: 66,
  },
} as const;

/** An ECDSA curve name of OpenSSH. */
export type Curve = keyof typeof CURVES;

/** Whether `name` is a curve this module knows. */
export function isCurve(name: string): name is Curve {
  return Object.hasOwn(CURVES, name);
}

/** The size in bytes of an uncompressed point of `curve`. */
export function pointBytes(curve: Curve): number {
  return 1 + 2 * CURVES[curve].bytes;
}

function toBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** True when `point` is an uncompressed point on `curve`. */
export function onCurve(curve: Curve, point: Uint8Array): boolean {
  const { p, b, bytes } = CURVES[curve];
  if (point.length !== 1 + 2 * bytes || point[0] !== 4) return false;
  const x = toBigInt(point.subarray(1, 1 + bytes));
  const y = toBigInt(point.subarray(1 + bytes));
  if (x >= p || y >= p) return false;
  const rhs = ((x * x % p) * x - 3n * x + b) % p;
  return (y * y - rhs) % p === 0n;
}
