/**
 * The import rules of the tree (DESIGN.md "Shape"), read from every `.ts`
 * file's import specifiers (tests/helpers/imports.ts):
 *
 * - nothing under core/ imports api/, workers/, tasks/, scheduler/,
 *   resources/ or cli/;
 * - scheduler/ imports only core/ and scheduler/ (and the packages below);
 * - resources/ imports only core/, scheduler/ and resources/ (no HTTP, no
 *   task queue: the API and the task handlers call it, not it them);
 * - the CLI (cli/, tests aside) reaches, following relative imports, no
 *   module that talks to etcd (`etcd3`, core/store.ts, core/session.ts,
 *   core/watch.ts, core/etcd_server.ts) and no subprocess API
 *   (`Deno.Command`, `Deno.run`, `node:child_process`).
 */
import assert from "node:assert/strict";
import { type Module, parse, reach, readGraph } from "./helpers/imports.ts";

const ROOT = new URL("../", import.meta.url);

const UPPER = [
  "api/",
  "workers/",
  "tasks/",
  "scheduler/",
  "resources/",
  "cli/",
];
/** Packages scheduler/ may use besides core/. */
const SCHEDULER_PACKAGES = new Set(["zod", "node:assert/strict"]);
/** What resources/ may import: its own layer and the two below. */
const RESOURCE_LAYERS = ["core/", "scheduler/", "resources/"];
/** Packages resources/ may use besides those layers. */
const RESOURCE_PACKAGES = new Set(["node:assert/strict"]);
const ETCD_FILES = new Set([
  "core/store.ts",
  "core/session.ts",
  "core/watch.ts",
  "core/etcd_server.ts",
]);
const FORBIDDEN_PACKAGES = /^(npm:)?etcd3(@|\/|$)|^(node:)?child_process$/;
const SUBPROCESS = /\bDeno\s*\.\s*(Command|run)\b/;
/**
 * CLI files known to break the CLI rule, each with what it reaches: kept
 * until the CLI split empties it. A file not listed fails the test; a
 * listed file that no longer breaks the rule fails it too.
 */
const KNOWN_CLI_OFFENDERS = new Set<string>([]);

/** core/ files importing a higher layer: "core/a.ts -> tasks/b.ts". */
function coreViolations(graph: Map<string, Module>): string[] {
  return [...graph].filter(([path]) => path.startsWith("core/"))
    .flatMap(([path, m]) =>
      m.imports.filter((d) => UPPER.some((u) => d.startsWith(u)))
        .map((d) => `${path} -> ${d}`)
    );
}

/** scheduler/ imports outside core/, scheduler/ and its packages. */
function schedulerViolations(graph: Map<string, Module>): string[] {
  return [...graph].filter(([path]) => path.startsWith("scheduler/"))
    .flatMap(([path, m]) =>
      m.imports.filter((d) =>
        !d.startsWith("core/") && !d.startsWith("scheduler/") &&
        !SCHEDULER_PACKAGES.has(d)
      ).map((d) => `${path} -> ${d}`)
    );
}

/** resources/ imports outside core/, scheduler/, resources/ and its packages. */
function resourceViolations(graph: Map<string, Module>): string[] {
  return [...graph].filter(([path]) => path.startsWith("resources/"))
    .flatMap(([path, m]) =>
      m.imports.filter((d) =>
        !RESOURCE_LAYERS.some((l) => d.startsWith(l)) &&
        !RESOURCE_PACKAGES.has(d)
      ).map((d) => `${path} -> ${d}`)
    );
}

/** Per CLI file (tests aside): the import chains to etcd or subprocesses. */
function cliViolations(
  graph: Map<string, Module>,
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const start of graph.keys()) {
    if (!start.startsWith("cli/") || start.endsWith("_test.ts")) continue;
    const found: string[] = [];
    for (const [file, chain] of reach(graph, start)) {
      const m = graph.get(file)!;
      const via = chain.join(" -> ");
      if (ETCD_FILES.has(file)) found.push(`${via} (talks to etcd)`);
      for (const d of m.imports.filter((d) => FORBIDDEN_PACKAGES.test(d))) {
        found.push(`${via} -> ${d}`);
      }
      const call = m.code.match(SUBPROCESS);
      if (call) found.push(`${via} (uses ${call[0].replace(/\s/g, "")})`);
    }
    if (found.length) out.set(start, found);
  }
  return out;
}

const graph = await readGraph(ROOT);

Deno.test("the import reader sees static, type, re-export and dynamic imports", () => {
  const m = parse(
    "core/x.ts",
    [
      '// import { no } from "../api/comment.ts";',
      "/* import { no } from '../api/block.ts'; */",
      'const s = `import { no } from "../api/template.ts"`;',
      'import { a, type B } from "./a.ts";',
      "import type {\n  C,\n} from '../tasks/c.ts';",
      'export * from "../scheduler/d.ts";',
      'import "zod";',
      'const e = await import("../cli/e.ts");',
    ].join("\n"),
  );
  assert.deepEqual(m.imports.sort(), [
    "cli/e.ts",
    "core/a.ts",
    "scheduler/d.ts",
    "tasks/c.ts",
    "zod",
  ]);
  // The reader finds the real tree's edges.
  assert.ok(
    graph.get("resources/vms/create.ts")?.imports.includes("scheduler/mod.ts"),
  );
  assert.ok(graph.get("api/vms.ts")?.imports.includes("resources/vms/mod.ts"));
  assert.ok(graph.get("core/store.ts")?.imports.includes("etcd3"));
});

Deno.test("the layer rules flag what they forbid", () => {
  const g = new Map<string, Module>([
    ["core/a.ts", parse("core/a.ts", 'import "../workers/w.ts";')],
    ["scheduler/s.ts", parse("scheduler/s.ts", 'import "../tasks/q.ts";')],
    ["resources/r.ts", parse("resources/r.ts", 'import "../api/env.ts";')],
    [
      "resources/v/ok.ts",
      parse("resources/v/ok.ts", 'import "../../scheduler/mod.ts";'),
    ],
    ["cli/main.ts", parse("cli/main.ts", 'import "./client.ts";')],
    ["cli/client.ts", parse("cli/client.ts", 'import "../core/session.ts";')],
    ["core/session.ts", parse("core/session.ts", 'import "etcd3";')],
    ["cli/run.ts", parse("cli/run.ts", "new Deno.Command('ls');")],
  ]);
  assert.deepEqual(coreViolations(g), ["core/a.ts -> workers/w.ts"]);
  assert.deepEqual(schedulerViolations(g), ["scheduler/s.ts -> tasks/q.ts"]);
  assert.deepEqual(resourceViolations(g), ["resources/r.ts -> api/env.ts"]);
  assert.deepEqual(cliViolations(g).get("cli/main.ts"), [
    "cli/main.ts -> cli/client.ts -> core/session.ts (talks to etcd)",
    "cli/main.ts -> cli/client.ts -> core/session.ts -> etcd3",
  ]);
  assert.deepEqual(cliViolations(g).get("cli/run.ts"), [
    "cli/run.ts (uses Deno.Command)",
  ]);
});

Deno.test("nothing under core/ imports api/, workers/, tasks/, scheduler/, resources/ or cli/", () => {
  const bad = coreViolations(graph);
  assert.deepEqual(bad, [], `core/ imports upward:\n${bad.join("\n")}`);
});

Deno.test("scheduler/ imports only core/ and scheduler/", () => {
  const bad = schedulerViolations(graph);
  assert.deepEqual(bad, [], `scheduler/ imports:\n${bad.join("\n")}`);
});

Deno.test("resources/ imports only core/, scheduler/ and resources/", () => {
  const bad = resourceViolations(graph);
  assert.deepEqual(bad, [], `resources/ imports:\n${bad.join("\n")}`);
});

Deno.test("the CLI reaches neither etcd nor subprocess APIs", () => {
  const bad = cliViolations(graph);
  const fresh = [...bad].filter(([f]) => !KNOWN_CLI_OFFENDERS.has(f));
  assert.deepEqual(
    fresh,
    [],
    `CLI files reaching etcd or subprocesses:\n${
      fresh.flatMap(([, v]) => v).join("\n")
    }`,
  );
  const cured = [...KNOWN_CLI_OFFENDERS].filter((f) => !bad.has(f));
  assert.deepEqual(
    cured,
    [],
    "no longer offending: drop from KNOWN_CLI_OFFENDERS",
  );
});
