/** Tests of workers/metrics_proc.ts without a process: `/proc/<pid>/stat`. */
import assert from "node:assert/strict";
import { parseStat } from "./metrics_proc.ts";

Deno.test("parseStat() reads user + system seconds and RSS, also when the command name has spaces and parentheses; null for a zombie", () => {
  // Fields 3.. : state ppid pgrp session tty tpgid flags minflt cminflt
  // majflt cmajflt utime stime cutime cstime prio nice threads itreal
  // starttime vsize rss
  const tail = "S 1 1 1 0 -1 0 0 0 0 0 250 150 0 0 20 0 1 0 100 1000 30";
  assert.deepEqual(parseStat(`42 (qemu (vm) 1) ${tail}`), {
    cpuSeconds: 4,
    rssBytes: 30 * 4096,
  });
  assert.equal(parseStat(`42 (x) Z${tail.slice(1)}`), null);
});
