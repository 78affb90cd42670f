/**
 * `ucloud login | whoami | logout`: the LDAP password buys a TOTP seed
 * that the CLI keeps (session.ts) and makes its own tokens from; `whoami`
 * shows who the API sees; `logout` forgets the seed and the token.
 *
 * @module
 */
import { NAME_RE as OTP_NAME_RE } from "../core/totp_token.ts";
import { noArgs } from "./args.ts";
import { apiClient, type Seed } from "./client.ts";
import { command, type Context, type Input } from "./command.ts";
import { ApiError, CliError, UsageError } from "./errors.ts";
import { connect } from "./http.ts";
import { print, printJson } from "./output.ts";
import { Session, type StoredLogin } from "./session.ts";

const DEFAULT_REALM = "ucloud";

function parseLogin({ read, args, topic }: Input) {
  noArgs(args, topic);
  const name = read.text("name");
  const realm = read.text("realm") ?? DEFAULT_REALM;
  const token = read.text("token");
  if (token !== undefined && !/^\d{6}$/.test(token)) {
    throw new UsageError(`--token must be 6 digits, got "${token}"`, topic);
  }
  for (const [flag, v] of [["name", name], ["realm", realm]]) {
    if (v !== undefined && !OTP_NAME_RE.test(v)) {
      throw new UsageError(
        `--${flag} must be 1-128 letters, digits or ._@+- (no / or :), got "${v}"`,
        topic,
      );
    }
  }
  return {
    name,
    realm,
    passwordStdin: read.has("password-stdin"),
    replace: read.has("replace"),
    ...(token === undefined ? {} : { token }),
  };
}

/** Throws what a refused `POST /v1/auth/seed` means to the user. */
function loginError(err: unknown, name: string, token?: string): never {
  if (err instanceof ApiError && err.status === 409) {
    throw new CliError(
      `${name} already has a TOTP seed. 'ucloud login --replace' makes a ` +
        "new one; the old one (and every device using it) stops working.",
    );
  }
  if (
    err instanceof ApiError && err.status === 401 && token === undefined &&
    /TOTP token/.test(err.message)
  ) {
    throw new CliError(
      `rotating the seed of ${name} needs its current TOTP code: run again ` +
        "with --token CODE, or ask an admin to rotate it",
    );
  }
  throw err;
}

/**
 * `ucloud login`: the LDAP password buys a new TOTP seed (shown once by the
 * API), stored with name and realm in a file only the user can read; a
 * bearer token bought with the first TOTP proves it works.
 */
async function logIn(
  args: ReturnType<typeof parseLogin>,
  ctx: Context,
): Promise<void> {
  const { session } = ctx;
  const configPath = session.configPath;
  if (!configPath) {
    throw new CliError(
      "cannot tell where to store the login: set HOME or XDG_CONFIG_HOME",
    );
  }
  const name = args.name ??
    (await ctx.readLine("LDAP user name: ", false)).trim();
  if (!OTP_NAME_RE.test(name)) {
    throw new UsageError(`"${name}" is not a user name`, ["login"]);
  }
  const password = args.passwordStdin
    ? (await ctx.readStdin()).replace(/\r?\n$/, "")
    : await ctx.readLine(`LDAP password of ${name}: `, true);
  if (password === "") throw new UsageError("empty password", ["login"]);
  // A rotation proves the old seed too: the stored one, or the user's code.
  const tokens: (string | undefined)[] = !args.replace
    ? [undefined]
    : args.token
    ? [args.token]
    : await session.rotationTokens(name, args.realm);
  if (!tokens.length) tokens.push(undefined);
  const plain = apiClient(connect(session.base, session.fetchFn));
  let answer: Seed | undefined;
  for (const [i, token] of tokens.entries()) {
    try {
      answer = await plain.auth.seed({
        name,
        password,
        replace: args.replace,
        ...(token === undefined ? {} : { token }),
      });
      break;
    } catch (err) {
      const used = err instanceof ApiError && err.status === 401 &&
        token !== undefined && i + 1 < tokens.length;
      // That step of the stored seed was used already: try the next one.
      if (!used) loginError(err, name, token);
    }
  }
  if (!answer) throw new CliError("no TOTP token of the stored seed was taken");
  if (answer.realm !== args.realm) {
    throw new CliError(
      `the API keeps users in realm ${answer.realm}, not ${args.realm}; ` +
        `run 'ucloud login --replace --realm ${answer.realm}'`,
    );
  }
  const stored: StoredLogin = {
    api: session.base,
    name: answer.name,
    realm: answer.realm,
    seed: answer.seed,
  };
  await session.files.writePrivate(
    configPath,
    JSON.stringify(stored, null, 2) + "\n",
  );
  if (session.tokenPath) await session.files.remove(session.tokenPath);
  const fresh = new Session(
    session.base,
    session.fetchFn,
    session.files,
    session.dir,
    session.now,
  );
  await fresh.prime();
  const me = await apiClient(connect(session.base, session.fetchFn, fresh))
    .auth.whoami();
  if (ctx.json) return printJson(ctx, { ...me, api: session.base });
  print(
    ctx,
    `logged in to ${session.base} as ${me.name}${
      me.admin ? " (admin)" : ""
    }; the seed is in ${configPath} (only you can read it)`,
  );
}

/**
 * Reads one line from the terminal; without echo when `hidden`.
 *
 * @example
 * ```ts
 * const name = await readLineFromTerminal("LDAP user name: ", false);
 * ```
 */
export async function readLineFromTerminal(
  question: string,
  hidden: boolean,
): Promise<string> {
  const stdin = Deno.stdin;
  const tty = stdin.isTerminal();
  Deno.stderr.writeSync(new TextEncoder().encode(question));
  if (tty && hidden) stdin.setRaw(true);
  const bytes: number[] = [];
  try {
    const buf = new Uint8Array(1);
    while (true) {
      const n = await stdin.read(buf);
      if (n === null || n === 0) break;
      const b = buf[0];
      if (b === 3) throw new CliError("cancelled");
      if (b === 10 || b === 13) break;
      if (b === 127 || b === 8) {
        bytes.pop();
        continue;
      }
      bytes.push(b);
    }
  } finally {
    if (tty && hidden) {
      stdin.setRaw(false);
      Deno.stderr.writeSync(new TextEncoder().encode("\n"));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

const login = command({
  summary:
    "Get a TOTP seed with the LDAP password and keep it for later commands",
  usage:
    "ucloud login [--name NAME] [--realm REALM] [--password-stdin] [--replace [--token CODE]]",
  flags: {
    "--name NAME": "the LDAP user name (asked when absent)",
    "--realm REALM": `the realm (default ${DEFAULT_REALM})`,
    "--password-stdin": "read the LDAP password from stdin",
    "--replace":
      "replace an existing seed (the old one and its devices stop working); proven with the stored seed of this login, else --token or the code asked for",
    "--token CODE":
      "with --replace: the current TOTP code of the seed being replaced",
  },
  examples: [
    "ucloud login --name alice",
    'echo "$PW" | ucloud login --name alice --password-stdin',
  ],
  parse: parseLogin,
  run: logIn,
});

const whoami = command({
  summary: "Show who the API sees",
  usage: "ucloud whoami [--json]",
  flags: {},
  examples: ["ucloud whoami"],
  parse: ({ args, topic }: Input) => (noArgs(args, topic), {}),
  async run(_, ctx) {
    const me = await ctx.client.auth.whoami();
    if (ctx.json) return printJson(ctx, me);
    print(ctx, `${me.name}${me.admin ? " (admin)" : ""}`);
  },
});

const logout = command({
  summary: "Forget the stored seed and bearer token",
  usage: "ucloud logout",
  flags: {},
  examples: ["ucloud logout"],
  parse: ({ args, topic }: Input) => (noArgs(args, topic), {}),
  async run(_, ctx) {
    const { configPath, tokenPath } = ctx.session;
    if (configPath) await ctx.session.files.remove(configPath);
    if (tokenPath) await ctx.session.files.remove(tokenPath);
    print(ctx, "logged out: the stored seed and token are removed");
  },
});

/** The commands of one word about who the CLI is, by name. */
export const AUTH_COMMANDS = { login, whoami, logout };
