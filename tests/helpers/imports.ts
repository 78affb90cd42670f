/**
 * Reads the import graph of the repository for the layer rules
 * (tests/layers_test.ts): every `.ts` file's import and export specifiers
 * (static, `import type`, re-exports, dynamic `import("...")`), with
 * comments and template literals blanked so text in them is not taken for
 * code, and relative specifiers resolved to repository paths.
 *
 * @example
 * ```ts
 * const graph = await readGraph(new URL("../../", import.meta.url));
 * graph.get("api/vms.ts")?.imports; // ["core/errors.ts", "zod", ...]
 * ```
 */

/** One source file: what it imports, and its code without comments. */
export interface Module {
  /** Repository paths (relative specifiers) or bare specifiers as written. */
  imports: string[];
  code: string;
}

const SKIP = new Set(["node_modules", "dist", ".git", ".state"]);

/** Every `.ts` and `.tsx` file under `root`, by repository path. */
export async function readGraph(root: URL): Promise<Map<string, Module>> {
  const graph = new Map<string, Module>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      if (e.name.startsWith(".") || SKIP.has(e.name)) continue;
      const path = dir + e.name;
      if (e.isDirectory) await walk(path + "/");
      else if (e.isFile && /\.tsx?$/.test(e.name)) {
        graph.set(
          path,
          parse(path, await Deno.readTextFile(new URL(path, root))),
        );
      }
    }
  };
  await walk("");
  return graph;
}

/** The module at repository path `path` with source `text`. */
export function parse(path: string, text: string): Module {
  const code = blank(text);
  const imports: string[] = [];
  const patterns = [
    /(?:^|[;}\s])(?:import|export)\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s+from\s+)?["']([^"'\n]+)["']/g,
    /\bimport\s*\(\s*["']([^"'\n]+)["']\s*\)/g,
  ];
  for (const re of patterns) {
    for (const m of code.matchAll(re)) imports.push(resolve(path, m[1]));
  }
  return { imports, code };
}

/** A relative specifier as a repository path; others as they are. */
function resolve(from: string, spec: string): string {
  if (!spec.startsWith("./") && !spec.startsWith("../")) return spec;
  const url = new URL(spec, new URL(from, "file:///repo/"));
  return url.pathname.slice("/repo/".length);
}

/** `text` with comments and template literal contents replaced by spaces. */
function blank(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i], next = text[i + 1];
    if (c === "/" && next === "/") {
      const end = text.indexOf("\n", i);
      const stop = end === -1 ? text.length : end;
      out += " ".repeat(stop - i);
      i = stop;
    } else if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2);
      const stop = end === -1 ? text.length : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, " ");
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (
        j < text.length && text[j] !== c && (c === "`" || text[j] !== "\n")
      ) {
        j += text[j] === "\\" ? 2 : 1;
      }
      const body = text.slice(i + 1, j);
      out += c + (c === "`" ? body.replace(/[^\n]/g, " ") : body) + c;
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Files reached from `start` through repository-path imports, with a path to each. */
export function reach(
  graph: Map<string, Module>,
  start: string,
): Map<string, string[]> {
  const seen = new Map<string, string[]>([[start, [start]]]);
  const todo = [start];
  while (todo.length) {
    const at = todo.shift()!;
    for (const dep of graph.get(at)?.imports ?? []) {
      if (!graph.has(dep) || seen.has(dep)) continue;
      seen.set(dep, [...seen.get(at)!, dep]);
      todo.push(dep);
    }
  }
  return seen;
}
