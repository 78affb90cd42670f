/**
 * Tests of drivers/net/nft_metadata.ts: the chains keeping the metadata
 * service local, as text (their effect is tested on namespaces in
 * tests/net_metadata_local_test.ts).
 */
import assert from "node:assert/strict";
import { META_IN, META_OUT, metadataChains } from "./nft_metadata.ts";

Deno.test("metadataChains(): input drops the service's traffic from non-taps, output to non-taps; every rule counts; the first comment fingerprints the rules", () => {
  const [inp, out] = metadataChains();
  assert.deepEqual([inp.name, inp.hook, out.name, out.hook], [
    META_IN,
    "input",
    META_OUT,
    "output",
  ]);
  for (const c of [inp, out]) {
    assert.match(c.rules[0][1], new RegExp(`^${c.name} fp=[0-9a-f]{8}$`));
    assert.ok(c.rules.slice(1).every(([, m]) => m === c.name));
    assert.ok(c.rules.every(([b]) => b.endsWith("counter drop")));
  }
  const text = (c: typeof inp) => c.rules.map(([b]) => b).join("\n");
  assert.equal(
    text(inp),
    [
      'iifname != "uct*" ip6 daddr { fe80::a9fe:a9fe, fd00:ec2::254 } counter drop',
      'iifname != "uct*" ip daddr 169.254.169.254 counter drop',
      'iifname != "uct*" arp daddr ip 169.254.169.254 counter drop',
      'iifname != "uct*" icmpv6 type nd-neighbor-solicit @th,64,128 { 0xfe8000000000000000000000a9fea9fe, 0xfd000ec2000000000000000000000254 } counter drop',
    ].join("\n"),
  );
  assert.equal(
    text(out),
    text(inp).replaceAll("iifname", "oifname").replaceAll("daddr", "saddr")
      .replace("nd-neighbor-solicit", "nd-neighbor-advert"),
  );
  // The same rules give the same fingerprint (a re-sync keeps the chains).
  assert.deepEqual(metadataChains(), [inp, out]);
  assert.notEqual(
    inp.rules[0][1],
    `${META_IN} fp=${out.rules[0][1].slice(-8)}`,
  );
});
