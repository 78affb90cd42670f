/**
 * Tests of drivers/images/qcow2_check.ts on hand-built qcow2 headers: the
 * header rules that run before any qemu-img touches a file.
 */
import assert from "node:assert/strict";
import { ImageRejected } from "../../tasks/image_store.ts";
import { checkQcow2Header, parseQcow2Header } from "./qcow2_check.ts";

const limits = { maxVirtualBytes: 2 ** 40 };

/** A qcow2 v3 header (cluster 64 KiB, 1 GiB) with `extensions` after it. */
function header(
  extensions: { type: number; data: Uint8Array }[] = [],
  more: (v: DataView) => void = () => {},
): Uint8Array {
  const bytes = new Uint8Array(4096);
  const v = new DataView(bytes.buffer);
  bytes.set([0x51, 0x46, 0x49, 0xfb]);
  v.setUint32(4, 3);
  v.setUint32(20, 16);
  v.setBigUint64(24, 1n << 30n);
  v.setUint32(96, 4);
  v.setUint32(100, 112);
  let at = 112;
  for (const e of extensions) {
    v.setUint32(at, e.type);
    v.setUint32(at + 4, e.data.length);
    bytes.set(e.data, at + 8);
    at += 8 + Math.ceil(e.data.length / 8) * 8;
  }
  more(v);
  return bytes;
}

function refused(bytes: Uint8Array, why: RegExp): void {
  assert.throws(
    () => checkQcow2Header(parseQcow2Header(bytes), limits),
    (err: Error) => err instanceof ImageRejected && why.test(err.message),
  );
}

Deno.test("checkQcow2Header() accepts a plain v3 header and reads its virtual size", () => {
  const h = parseQcow2Header(header());
  checkQcow2Header(h, limits);
  assert.equal(h.virtualSize, 1n << 30n);
  assert.deepEqual(h.extensions, []);
});

Deno.test("checkQcow2Header() refuses a data file name extension even without incompatible bit 2", () => {
  const name = new TextEncoder().encode("/etc/shadow");
  refused(
    header([{ type: 0x44415441, data: name }]),
    /external data file is refused \(it names "\/etc\/shadow"\)/,
  );
});

Deno.test("checkQcow2Header() refuses a backing format or encryption header extension", () => {
  const raw = new TextEncoder().encode("raw");
  refused(header([{ type: 0xe2792aca, data: raw }]), /backing file format/);
  refused(
    header([{ type: 0x0537be77, data: new Uint8Array(16) }]),
    /encrypted/,
  );
});

Deno.test("parseQcow2Header() refuses header extensions that run past the first cluster", () => {
  refused(
    header([], (v) => {
      v.setUint32(112, 0x1234);
      v.setUint32(116, 1 << 20);
    }),
    /extension 0x1234 overruns/,
  );
});

Deno.test("parseQcow2Header() refuses a header cut short and a version it does not know", () => {
  refused(header().subarray(0, 40), /ends inside the qcow2 header/);
  refused(header([], (v) => v.setUint32(4, 4)), /unsupported qcow2 version 4/);
});
