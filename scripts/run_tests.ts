/**
 * `deno task test`: the whole suite. Runs the style checks (fmt, lint,
 * check) and every `*_test.ts` with `deno test`, counts results from the
 * JUnit report, and ends with the line `N passed, N failed`.
 *
 * Extra arguments are passed to `deno test` (e.g. a path or `--filter`).
 */
const root = new URL("../", import.meta.url).pathname;
const deno = Deno.execPath();
let passed = 0;
let failed = 0;

async function step(name: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(deno, {
    args,
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.success) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    const text = new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr);
    console.log(`FAIL ${name}\n${text.split("\n").slice(-40).join("\n")}`);
  }
}

const extra = Deno.args;
if (extra.length === 0) {
  await step("deno fmt --check", ["fmt", "--check"]);
  await step("deno lint", ["lint"]);
  await step("deno check", ["check", "."]);
}

const junit = await Deno.makeTempFile({ suffix: ".xml" });
const secretsFile = await Deno.makeTempFile({ suffix: ".secrets" });
const child = new Deno.Command(deno, {
  args: ["test", "-A", `--junit-path=${junit}`, ...extra],
  cwd: root,
  env: { UCLOUD_SECRETS_FILE: secretsFile },
  stdout: "piped",
  stderr: "piped",
}).spawn();
// Pass the output through and keep it, to search it for secrets afterwards.
const output: string[] = [];
const pump = async (
  from: ReadableStream<Uint8Array>,
  to: typeof Deno.stdout,
) => {
  const dec = new TextDecoder();
  for await (const chunk of from) {
    output.push(dec.decode(chunk, { stream: true }));
    await to.write(chunk);
  }
};
await Promise.all([
  pump(child.stdout, Deno.stdout),
  pump(child.stderr, Deno.stderr),
]);
const test = await child.status;
const xml = await Deno.readTextFile(junit).catch(() => "");
await Deno.remove(junit).catch(() => {});
// Count leaf test cases: <testcase ...> elements, failed when they hold <failure.
const cases = xml.match(/<testcase\b[\s\S]*?(?:\/>|<\/testcase>)/g) ?? [];
for (const c of cases) {
  if (/<failure\b|<error\b/.test(c)) failed++;
  else if (!/<skipped\b/.test(c)) passed++;
}
if (!test.success && cases.every((c) => !/<failure\b|<error\b/.test(c))) {
  // deno test failed outside any test case (e.g. a type error).
  failed++;
  console.log("FAIL deno test exited with an error outside the test cases");
}
// No seed or token that a test created may appear anywhere in the output.
const secrets = (await Deno.readTextFile(secretsFile)).split("\n").filter(
  Boolean,
);
await Deno.remove(secretsFile).catch(() => {});
const text = output.join("");
const leaked = secrets.filter((s) => text.includes(s));
if (leaked.length) {
  failed++;
  console.log(
    `FAIL ${leaked.length} seed(s) or token(s) found in the test output`,
  );
} else if (extra.length === 0) {
  passed++;
  console.log(
    `ok   no seed or token in the test output (${secrets.length} checked)`,
  );
}
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed ? 1 : 0);
