/**
 * Bench phase `image`, its first part (image.ts runs it): import
 * throughput. A qcow2 holding `dataMiB` MiB of data (written with
 * `qemu-io`), stored by `FileStore.importImage` (header checks, copy with
 * SHA-256 and fsync, `qemu-img info`/`check` on the copy, rename) against
 * `qemu-img convert -f qcow2 -O qcow2` of the same file and `cp` + `sync`
 * (the floor), and the checks alone; several rounds, the order rotated,
 * medians.
 */
import { FileStore } from "../../drivers/images/file_store.ts";
import { checkQcow2 } from "../../drivers/images/qcow2_check.ts";
import { run } from "../../drivers/runner.ts";
import { type Cleanup, percentile, progress, round, type Row } from "./util.ts";

const MiB = 1024 * 1024;

/** Import throughput: medians over the rounds. */
export interface ImportResult {
  /** Bytes of the qcow2 file every method reads. */
  fileBytes: number;
  /** MiB of guest data written into it. */
  dataMiB: number;
  rounds: number;
  /** The temp directory's filesystem (`stat -f`): fsync cost depends on it. */
  fs: string;
  importMiBps: number;
  convertMiBps: number;
  cpMiBps: number;
  /** importMiBps / convertMiBps (above 1: the import is faster). */
  importVsConvert: number;
  /** Median of `checkQcow2` alone (header, `qemu-img info`, `check`). */
  checksMedianMs: number;
  importMs: number[];
  checksMs: number[];
  convertMs: number[];
  cpMs: number[];
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

/** A qcow2 of `dataMiB` MiB data in 16 MiB runs of differing bytes. */
async function makeSource(path: string, dataMiB: number): Promise<void> {
  await run("qemu-img", [
    "create",
    "-q",
    "-f",
    "qcow2",
    path,
    `${dataMiB * 2}M`,
  ]);
  const writes: string[] = [];
  for (let off = 0; off < dataMiB; off += 16) {
    const len = Math.min(16, dataMiB - off);
    // Every other run leaves a hole: the file is a sparse guest disk.
    writes.push(
      "-c",
      `write -P ${1 + (off / 16) % 250} ${off * 2}M ${len}M`,
    );
  }
  await run("qemu-io", ["-f", "qcow2", ...writes, path], {
    timeoutMs: 300_000,
  });
}

/** Writes the source, then times every method `rounds` times. */
export async function benchImport(
  dataMiB: number,
  rounds: number,
  cleanup: Cleanup,
): Promise<ImportResult> {
  const dir = await Deno.makeTempDir({ prefix: "uc-bench-img-" });
  cleanup.add("import temp dir", () => Deno.remove(dir, { recursive: true }));
  const src = `${dir}/src.qcow2`;
  progress(`image: writing a qcow2 with ${dataMiB} MiB of data (qemu-io)`);
  await makeSource(src, dataMiB);
  const fileBytes = (await Deno.stat(src)).size;
  const fs = (await run("stat", ["-f", "-c", "%T", dir])).stdout.trim();
  const store = new FileStore({
    dir: `${dir}/store`,
    maxVirtualBytes: 2 ** 40,
    maxSourceBytes: 2 ** 40,
  });
  const out = `${dir}/out.qcow2`;
  const long = { timeoutMs: 300_000 };
  const limits = { maxVirtualBytes: 2 ** 40 };
  const methods: Record<string, (i: number) => Promise<unknown>> = {
    checks: () => checkQcow2(src, limits),
    cp: async () => {
      await run("cp", [src, out], long);
      await run("sync", [out], long);
    },
    convert: () =>
      run(
        "qemu-img",
        ["convert", "-f", "qcow2", "-O", "qcow2", src, out],
        long,
      ),
    import: async (i) => {
      await store.importImage(src, `bench-${i}`, async () => {});
      await store.removeImage(`bench-${i}`);
    },
  };
  // Reads the source once so every method finds it in the page cache.
  await run("cp", [src, out], long);
  await Deno.remove(out);
  const ms: Record<string, number[]> = {
    checks: [],
    cp: [],
    convert: [],
    import: [],
  };
  const names = Object.keys(methods);
  for (let i = 0; i < rounds; i++) {
    const order = names.map((_, k) => names[(k + i) % names.length]);
    for (const m of order) {
      ms[m].push(round(await timed(() => methods[m](i))));
      await Deno.remove(out).catch(() => {});
    }
    progress(
      `image: import round ${i + 1}/${rounds}: ` +
        names.map((m) => `${m} ${ms[m][i]} ms`).join(", "),
    );
  }
  const mibps = (m: string) =>
    round(fileBytes / MiB / (percentile(ms[m], 50) / 1000));
  const importMiBps = mibps("import");
  const convertMiBps = mibps("convert");
  return {
    fileBytes,
    dataMiB,
    rounds,
    fs,
    importMiBps,
    convertMiBps,
    cpMiBps: mibps("cp"),
    importVsConvert: round(importMiBps / convertMiBps, 2),
    checksMedianMs: percentile(ms.checks, 50),
    importMs: ms.import,
    checksMs: ms.checks,
    convertMs: ms.convert,
    cpMs: ms.cp,
  };
}

/** Rows of the bench table. */
export function importRows(i: ImportResult): Row[] {
  const src = `${round(i.fileBytes / MiB)} MiB qcow2 (${i.dataMiB} MiB data)` +
    `, median of ${i.rounds}, ${i.fs}`;
  return [
    {
      name: "image import (FileStore)",
      value: i.importMiBps,
      unit: "MiB/s",
      notes: `checks + copy + sha256 + fsync + checks; ${src}`,
    },
    {
      name: "image import: checks alone",
      value: i.checksMedianMs,
      unit: "ms",
      notes: "checkQcow2 once; the import runs it once on its copy",
    },
    {
      name: "image qemu-img convert qcow2",
      value: i.convertMiBps,
      unit: "MiB/s",
      notes: "-f qcow2 -O qcow2, same file",
    },
    {
      name: "image cp + sync (floor)",
      value: i.cpMiBps,
      unit: "MiB/s",
      notes: "same file",
    },
    {
      name: "image import / convert",
      value: i.importVsConvert,
      unit: "x",
      notes: "throughput ratio (>1: import faster)",
    },
  ];
}
