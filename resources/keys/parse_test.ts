/**
 * parsePublicKey() against keys made by ssh-keygen (Debian's
 * openssh-client): the types and fingerprints agree with `ssh-keygen -l -E
 * sha256`, and every malformed or refused line is an InvalidError naming
 * `publicKey` and saying why.
 */
import assert from "node:assert/strict";
import { InvalidError } from "../../core/errors.ts";
import { keygenFingerprint, sshKeygen } from "./_keygen.ts";
import { parsePublicKey } from "./parse.ts";

/** SSH wire-format `string`s joined. */
function wire(...fields: (string | Uint8Array)[]): Uint8Array {
  const parts = fields.map((f) =>
    typeof f === "string" ? new TextEncoder().encode(f) : f
  );
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  let at = 0;
  for (const p of parts) {
    new DataView(out.buffer).setUint32(at, p.length);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));
const unb64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

/** The wire fields of a key line's blob (each `string` in turn). */
function fieldsOf(line: string): Uint8Array[] {
  const blob = unb64(line.split(" ")[1]);
  const out: Uint8Array[] = [];
  for (let at = 0; at < blob.length;) {
    const n = new DataView(blob.buffer).getUint32(at);
    out.push(blob.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

async function rejects(line: string, message: RegExp): Promise<void> {
  await assert.rejects(parsePublicKey(line), (err) => {
    assert.ok(err instanceof InvalidError, String(err));
    assert.equal(err.field, "publicKey");
    assert.match(err.message, message);
    return true;
  }, line.slice(0, 60));
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-keys-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parsePublicKey() accepts ssh-keygen's ed25519, rsa 3072 and ecdsa 256/384/521 keys with ssh-keygen's fingerprints", () =>
  withDir(async (dir) => {
    const cases = [
      ["ed25519", undefined, "ssh-ed25519"],
      ["rsa", 3072, "ssh-rsa"],
      ["ecdsa", 256, "ecdsa-sha2-nistp256"],
      ["ecdsa", 384, "ecdsa-sha2-nistp384"],
      ["ecdsa", 521, "ecdsa-sha2-nistp521"],
    ] as const;
    for (const [type, bits, name] of cases) {
      const made = await sshKeygen(dir, type, bits, "alice@laptop  (work)");
      const key = await parsePublicKey(`${made.line}\n`);
      assert.equal(key.type, name);
      assert.equal(key.fingerprint, made.fingerprint, name);
      assert.equal(key.bits, made.bits, name);
      assert.equal(key.comment, "alice@laptop  (work)");
      assert.equal(key.line, made.line);
    }
    const bare = await sshKeygen(dir, "ed25519", undefined, "");
    const key = await parsePublicKey(bare.line);
    assert.equal(key.comment, undefined);
    assert.equal(key.line, bare.line);
    assert.equal(key.fingerprint, bare.fingerprint);
  }));

Deno.test("parsePublicKey() accepts security-key types with ssh-keygen's fingerprints", () =>
  withDir(async (dir) => {
    const ed = fieldsOf((await sshKeygen(dir, "ed25519")).line);
    const ec = fieldsOf((await sshKeygen(dir, "ecdsa", 256)).line);
    const lines = [
      `sk-ssh-ed25519@openssh.com ${
        b64(wire("sk-ssh-ed25519@openssh.com", ed[1], "ssh:"))
      } yubikey`,
      `sk-ecdsa-sha2-nistp256@openssh.com ${
        b64(wire("sk-ecdsa-sha2-nistp256@openssh.com", ec[1], ec[2], "ssh:"))
      } yubikey`,
    ];
    for (const line of lines) {
      const file = `${dir}/sk.pub`;
      await Deno.writeTextFile(file, `${line}\n`);
      const want = await keygenFingerprint(file);
      const key = await parsePublicKey(line);
      assert.equal(key.fingerprint, want.fingerprint, line);
      assert.equal(key.bits, want.bits, line);
      assert.equal(key.type, line.split(" ")[0]);
    }
  }));

Deno.test("parsePublicKey() rejects RSA under 2048 bits, naming its size", () =>
  withDir(async (dir) => {
    const weak = await sshKeygen(dir, "rsa", 1024);
    await rejects(weak.line, /RSA key has 1024 bits; at least 2048 are needed/);
    const ok = await sshKeygen(dir, "rsa", 2048);
    assert.equal((await parsePublicKey(ok.line)).bits, 2048);
  }));

Deno.test("parsePublicKey() rejects malformed lines, saying why", () =>
  withDir(async (dir) => {
    const ed = await sshKeygen(dir, "ed25519");
    const ec = await sshKeygen(dir, "ecdsa", 256);
    const [type, data] = ed.line.split(" ");
    const edKey = fieldsOf(ed.line)[1];
    const ecFields = fieldsOf(ec.line);
    const offCurve = ecFields[2].slice();
    offCurve[64] ^= 1;
    const cases: [string, RegExp][] = [
      ["", /empty/],
      ["ssh-ed25519", /no base64 key data after ssh-ed25519/],
      [`${type} !!notbase64!! c`, /not valid base64/],
      [`${type} ${data.slice(0, -2)} c`, /not valid base64/],
      [`${type} AAAA`, /ends before its key type/],
      [`${type} ${b64(wire("ssh-ed25519").slice(0, 7))}`, /ends inside/],
      [
        `ssh-rsa ${data} c`,
        /line says ssh-rsa but the key data holds "ssh-ed25519"/,
      ],
      [
        `${type} ${b64(wire("ssh-ed25519", edKey.subarray(1)))}`,
        /Ed25519 key has 31 bytes, not 32/,
      ],
      [
        `${type} ${b64(wire("ssh-ed25519", edKey, "x"))}`,
        /5 bytes after the key/,
      ],
      [`${ed.line}\n${ed.line}`, /one key on one line/],
      [`${ed.line}\r\nssh-ed25519 AAAA`, /one key on one line/],
      [
        `no-pty ${ed.line}`,
        /authorized_keys options \(no-pty\) are not allowed/,
      ],
      [`command="ls" ${ed.line}`, /authorized_keys options .* not allowed/],
      [`restrict,from="10.0.0.1" ${ed.line}`, /options .* not allowed/],
      [`ssh-dss ${data}`, /unknown key type "ssh-dss"; allowed: ssh-ed25519/],
      [
        `ssh-ed25519-cert-v01@openssh.com ${data}`,
        /certificates .* are not accepted/,
      ],
      [`${ed.line} ${"x".repeat(16 * 1024)}`, /more than the 16384 allowed/],
      [`${type} ${data} bell\x07`, /control characters/],
      [
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----",
        /this is a private key; give the public key/,
      ],
      [
        `ecdsa-sha2-nistp256 ${
          b64(wire("ecdsa-sha2-nistp256", "nistp384", ecFields[2]))
        }`,
        /names curve nistp256 but the key data names "nistp384"/,
      ],
      [
        `ecdsa-sha2-nistp256 ${
          b64(wire("ecdsa-sha2-nistp256", "nistp256", offCurve))
        }`,
        /ECDSA point is not on curve nistp256/,
      ],
      [
        `ecdsa-sha2-nistp256 ${
          b64(wire("ecdsa-sha2-nistp256", "nistp256", ecFields[2].subarray(1)))
        }`,
        /not an uncompressed nistp256 point/,
      ],
      [
        `sk-ssh-ed25519@openssh.com ${
          b64(wire("sk-ssh-ed25519@openssh.com", edKey))
        }`,
        /ends before its security key application/,
      ],
    ];
    for (const [line, message] of cases) await rejects(line, message);
    // ssh-keygen refuses the same keys, except for what is ucloud's own
    // rule for a line (it reads the first of two lines, options, any
    // comment).
    const lineRule = /one key on one line|options|allowed$|control/;
    for (const [line, message] of cases) {
      await Deno.writeTextFile(`${dir}/bad.pub`, `${line}\n`);
      const read = keygenFingerprint(`${dir}/bad.pub`);
      if (lineRule.test(message.source)) await read;
      else await assert.rejects(read, line.slice(0, 60));
    }
  }));
