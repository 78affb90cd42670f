/**
 * `ucloud key add | list | show | delete`: the caller's SSH public keys,
 * which log in to the SFTP upload and go into VMs. `key add` reads one
 * OpenSSH public key line from a file (or stdin with `--file -`) and
 * refuses, before any request, a private key or a file too large to be a
 * public key; the API checks the key itself and answers its fingerprint.
 *
 * @module
 */
import { NAME_RULE, noArgs, oneArg } from "./args.ts";
import type { SshKey } from "./client.ts";
import { command, type Context, type Input } from "./command.ts";
import { listCommand } from "./list_command.ts";
import { CliError } from "./errors.ts";
import { type Column, formatFields, print, printJson, when } from "./output.ts";

/** The largest key file read, in bytes (the API's limit of a key line). */
const MAX_KEY_FILE_BYTES = 16 * 1024;

/** The text of the public key file `path` (`-`: stdin), checked locally. */
async function readKeyFile(path: string, ctx: Context): Promise<string> {
  let text: string;
  if (path === "-") text = await ctx.readStdin();
  else {
    try {
      const info = await Deno.stat(path);
      if (!info.isFile) throw new CliError(`${path} is not a file`);
      if (info.size > MAX_KEY_FILE_BYTES) {
        throw new CliError(
          `${path} has ${info.size} bytes: a public key line has at most ` +
            `${MAX_KEY_FILE_BYTES}`,
        );
      }
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
    }
  }
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) {
    throw new CliError(
      `${path === "-" ? "stdin" : path} holds a private key, which never ` +
        "leaves your machine: give the public key (the .pub file)",
    );
  }
  return text;
}

const KEY_COLUMNS: Column<SshKey>[] = [
  { header: "NAME", value: (k) => k.name },
  { header: "TYPE", value: (k) => k.type },
  { header: "FINGERPRINT", value: (k) => k.fingerprint },
  { header: "COMMENT", value: (k) => k.comment ?? "-" },
  { header: "CREATED", value: (k) => k.createdAt },
];

function keyFields(key: SshKey): string {
  return formatFields([
    ["name", key.name],
    ["owner", key.owner],
    ["type", key.type],
    ["fingerprint", key.fingerprint],
    ["comment", key.comment],
    ["created", when(key.createdAt)],
    ["public key", key.publicKey],
  ]);
}

const add = command({
  summary: "Add an SSH public key (for SFTP uploads and VMs)",
  usage: "ucloud key add --name NAME --file PATH [--json]",
  flags: {
    "--name NAME": NAME_RULE,
    "--file PATH":
      "the OpenSSH public key file, e.g. ~/.ssh/id_ed25519.pub (- for stdin)",
  },
  examples: [
    "ucloud key add --name laptop --file ~/.ssh/id_ed25519.pub",
    "ssh-add -L | head -1 | ucloud key add --name agent --file -",
  ],
  parse({ read, args, topic }: Input) {
    read.required("name", "file");
    noArgs(args, topic);
    return { name: read.name("name")!, file: read.text("file")! };
  },
  async run(args, ctx) {
    const publicKey = await readKeyFile(args.file, ctx);
    const key = await ctx.client.keys.create({ name: args.name, publicKey });
    if (ctx.json) return printJson(ctx, key);
    print(ctx, `key ${key.name} added: ${key.fingerprint} (${key.type})`);
  },
});

const list = listCommand({
  summary: "List your SSH keys",
  topic: "key",
  fetch: (client) => client.keys.list(),
  columns: KEY_COLUMNS,
});

/** `key show` and `key delete`: the one key. */
function parseOne({ args, topic }: Input) {
  return { key: oneArg(args, "key name", topic) };
}

const show = command({
  summary: "Show one of your SSH keys",
  usage: "ucloud key show NAME [--json]",
  flags: {},
  examples: ["ucloud key show laptop"],
  parse: parseOne,
  async run(args, ctx) {
    const key = await ctx.client.keys.get(args.key);
    return ctx.json ? printJson(ctx, key) : print(ctx, keyFields(key));
  },
});

const remove = command({
  summary: "Delete one of your SSH keys",
  usage: "ucloud key delete NAME [--json]",
  flags: {},
  examples: ["ucloud key delete laptop"],
  parse: parseOne,
  async run(args, ctx) {
    const r = await ctx.client.keys.delete(args.key);
    if (ctx.json) return printJson(ctx, r);
    print(ctx, `key ${r.deleted} deleted`);
  },
});

/** The key commands, by name. */
export const KEY_COMMANDS = {
  "key add": add,
  "key list": list,
  "key show": show,
  "key delete": remove,
};
