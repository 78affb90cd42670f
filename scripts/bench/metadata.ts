/**
 * The metadata phase of the bench: a host namespace running the network
 * driver and the metadata service as the worker does, a VM namespace on
 * one of its ports (tests/helpers/metadata_vms.ts), and from inside the VM
 * - request latency: `requests` GETs of the VM's key at
 *   `[fd00:ec2::254]` through the real listener, on one keep-alive
 *   connection and with a new connection each;
 * - key delete to gone: `deletes` times, a poller in the VM (one GET every
 *   2 ms of the key list) tells when a key deleted through the resource
 *   function is no longer served; the time is from just before the delete
 *   to the first answer without it (wall clock, shared by both sides).
 *
 * @example
 * ```ts
 * const r = await benchMetadata({ requests: 1000, deletes: 20 });
 * console.log(metadataRows(r));
 * ```
 */
import { METADATA } from "../../drivers/net/host_input.ts";
import { deleteKey } from "../../resources/keys/delete.ts";
import { ALICE } from "../../tests/helpers/metadata_env.ts";
import { vmReady, withMetadataVms } from "../../tests/helpers/metadata_vms.ts";
import { type Row, summarize, type Summary } from "./util.ts";

/** What the phase measured. */
export interface MetadataResult {
  requests: number;
  /** One keep-alive connection, ms per request. */
  keepAliveMs: Summary;
  /** A new TCP connection per request, ms per request. */
  newConnMs: Summary;
  deletes: number;
  /** Key delete to the key gone from the metadata, ms. */
  goneMs: Summary;
}

const BASE = `[${METADATA.ipv6[1]}]`;

/** The VM side: `lat N path close|keep` and `gone path needle`. */
const CLIENT = `
import http.client, sys, time
mode, path = sys.argv[1], sys.argv[2]
def conn():
    return http.client.HTTPConnection("${
  METADATA.ipv6[1]
}", ${METADATA.port}, timeout=5)
if mode == "lat":
    n, close = int(sys.argv[3]), sys.argv[4] == "close"
    c = conn()
    out = []
    for _ in range(n):
        if close:
            c = conn()
        t = time.perf_counter()
        c.request("GET", path, headers={"Connection": "close"} if close else {})
        r = c.getresponse()
        body = r.read()
        out.append((time.perf_counter() - t) * 1000)
        if r.status != 200 or not body.startswith(b"ssh-"):
            sys.exit("bad answer %d %r" % (r.status, body[:80]))
        if close:
            c.close()
    print(" ".join("%.3f" % x for x in out))
else:
    needle = sys.argv[3].encode()
    c = conn()
    said = False
    while True:
        c.request("GET", path)
        body = c.getresponse().read()
        if needle not in body:
            print("gone %.3f" % (time.time() * 1000), flush=True)
            break
        if not said:
            print("ready", flush=True)
            said = True
        time.sleep(0.002)
`;

/** Runs the phase. */
export async function benchMetadata(
  o: { requests: number; deletes: number },
): Promise<MetadataResult> {
  let result: MetadataResult | undefined;
  await withMetadataVms(async (env) => {
    const names = Array.from({ length: o.deletes }, (_, i) => `k${i}`);
    const vm = await env.vm("bench", ["keep", ...names]);
    await env.startHost();
    await vmReady(vm);
    const inVm = (args: string[]) =>
      new Deno.Command("ip", {
        args: ["netns", "exec", vm.ns.ns, "python3", "-c", CLIENT, ...args],
        stdout: "piped",
        stderr: "piped",
      });
    const lat = async (mode: "keep" | "close") => {
      const out = await inVm([
        "lat",
        "/latest/meta-data/public-keys/0/openssh-key",
        String(o.requests),
        mode,
      ]).output();
      if (!out.success) {
        throw new Error(
          `metadata client failed: ${new TextDecoder().decode(out.stderr)}`,
        );
      }
      return new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
    };
    const keepAlive = await lat("keep");
    const newConn = await lat("close");
    const gone: number[] = [];
    for (const name of names) {
      const child = inVm([
        "gone",
        "/openstack/latest/meta_data.json",
        vm.keys[name].split(" ")[1],
      ]).spawn();
      const lines = child.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      let text = "";
      const line = async (want: RegExp) => {
        while (!want.test(text)) {
          const { value, done } = await lines.read();
          if (done) throw new Error(`metadata poller ended: ${text}`);
          text += value;
        }
      };
      await line(/ready/);
      const t0 = Date.now();
      await deleteKey(env.store, ALICE, name);
      await line(/gone [\d.]+/);
      gone.push(Number(text.match(/gone ([\d.]+)/)![1]) - t0);
      await lines.cancel();
      await child.stderr.cancel();
      await child.status;
    }
    result = {
      requests: o.requests,
      keepAliveMs: summarize(keepAlive),
      newConnMs: summarize(newConn),
      deletes: o.deletes,
      goneMs: summarize(gone),
    };
  });
  return result!;
}

/** Rows of the bench table. */
export function metadataRows(r: MetadataResult): Row[] {
  const from = `${r.requests} GETs of a VM's key from its namespace, ${BASE}`;
  return [
    {
      name: "metadata request p50",
      value: r.keepAliveMs.p50,
      unit: "ms",
      notes: `${from}, keep-alive; p99 ${r.keepAliveMs.p99} ms`,
    },
    {
      name: "metadata request p99",
      value: r.keepAliveMs.p99,
      unit: "ms",
      notes: `${from}, keep-alive`,
    },
    {
      name: "metadata request, new connection p50",
      value: r.newConnMs.p50,
      unit: "ms",
      notes: `${from}, TCP connect each; p99 ${r.newConnMs.p99} ms`,
    },
    {
      name: "metadata key delete -> gone p95",
      value: r.goneMs.p95,
      unit: "ms",
      notes:
        `${r.deletes} deletes; p50 ${r.goneMs.p50} ms, max ${r.goneMs.max} ms (etcd watch, 2 ms poll)`,
    },
  ];
}

if (import.meta.main) {
  const r = await benchMetadata({ requests: 1000, deletes: 20 });
  console.log(JSON.stringify(r));
  Deno.exit(0);
}
