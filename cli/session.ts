/**
 * The CLI's credentials: the login `ucloud login` stores (a TOTP seed for
 * one API), the cached bearer token, and the `Session` that authenticates
 * requests with them, buying a new token with a fresh TOTP (the shared
 * `core/totp_token.ts`) when the cached one is missing, about to expire,
 * or refused. `Files` is the file seam of tests.
 *
 * @module
 */
import { hotp, totpCounter } from "../core/totp_token.ts";
import { apiClient } from "./client.ts";
import { ApiError, CliError } from "./errors.ts";
import { type Auth, connect } from "./http.ts";

/**
 * What `ucloud login` keeps in `$XDG_CONFIG_HOME/ucloud/config.json`
 * (`~/.config/ucloud/config.json`), readable only by the user.
 */
export interface StoredLogin {
  api: string;
  name: string;
  realm: string;
  /** The base32 TOTP seed: the CLI makes its own tokens from it. */
  seed: string;
}

/** A bearer token kept in `token.json` next to the config until it expires. */
interface CachedToken {
  api: string;
  name: string;
  realm: string;
  token: string;
  expiresAt: string;
  /** The TOTP step it was bought with: each step is accepted once. */
  step: number;
}

/** Files of the CLI; the seam of tests. */
export interface Files {
  /** The file's text, or null when it does not exist. */
  read(path: string): Promise<string | null>;
  /** Replaces the file with `text`, readable only by the user (0600). */
  writePrivate(path: string, text: string): Promise<void>;
  /** Removes the file when it exists. */
  remove(path: string): Promise<void>;
}

/** The real files. */
export const denoFiles: Files = {
  async read(path) {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
    }
  },
  async writePrivate(path, text) {
    try {
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), {
        recursive: true,
        mode: 0o700,
      });
      const tmp = `${path}.${crypto.randomUUID()}.tmp`;
      await Deno.writeTextFile(tmp, text, { createNew: true, mode: 0o600 });
      await Deno.chmod(tmp, 0o600);
      await Deno.rename(tmp, path);
    } catch (err) {
      throw new CliError(`cannot write ${path}: ${(err as Error).message}`);
    }
  },
  async remove(path) {
    try {
      await Deno.remove(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new CliError(`cannot remove ${path}: ${(err as Error).message}`);
      }
    }
  },
};

/** `$XDG_CONFIG_HOME/ucloud`, else `$HOME/.config/ucloud`; null without both. */
export function configDir(
  env: Record<string, string | undefined>,
): string | null {
  if (env.XDG_CONFIG_HOME) return `${env.XDG_CONFIG_HOME}/ucloud`;
  if (env.HOME) return `${env.HOME}/.config/ucloud`;
  return null;
}

/** The TOTP of the stored seed at `step`, from the shared TOTP code. */
function loginToken(seed: string, step: number): string {
  try {
    return hotp(seed, step);
  } catch {
    throw new CliError("the stored seed is not base32");
  }
}

/**
 * Authentication of one API base: the stored login (when it was made for
 * this API) and a cached bearer token, bought with a fresh TOTP when the
 * cached one is missing, about to expire, or refused.
 */
export class Session implements Auth {
  #login: StoredLogin | null | undefined;

  constructor(
    readonly base: string,
    readonly fetchFn: typeof globalThis.fetch,
    readonly files: Files,
    readonly dir: string | null,
    readonly now: () => number,
  ) {}

  get configPath(): string | null {
    return this.dir && `${this.dir}/config.json`;
  }

  get tokenPath(): string | null {
    return this.dir && `${this.dir}/token.json`;
  }

  /** The stored login, whatever API it is for. */
  async stored(): Promise<StoredLogin | null> {
    if (this.#login !== undefined) return this.#login;
    const text = this.configPath && await this.files.read(this.configPath);
    let login: StoredLogin | null = null;
    if (text) {
      try {
        const v = JSON.parse(text);
        if (
          typeof v.api === "string" && typeof v.name === "string" &&
          typeof v.realm === "string" && typeof v.seed === "string"
        ) login = v;
      } catch { /* reported below */ }
      if (!login) {
        throw new CliError(
          `${this.configPath} is not a ucloud login; run 'ucloud login' again`,
        );
      }
    }
    this.#login = login;
    return login;
  }

  /**
   * The TOTP tokens a rotation of `name`'s seed may prove itself with, made
   * from the stored seed when it is this API's login of `name` in `realm`:
   * the previous step's, then the current one's (the API accepts one step
   * either side), leaving the current and next for the new login's first
   * bearer token (`prime`). None without such a login.
   */
  async rotationTokens(name: string, realm: string): Promise<string[]> {
    const l = await this.login();
    if (!l || l.name !== name || l.realm !== realm) return [];
    const now = totpCounter(this.now());
    return [now - 1, now].map((step) => loginToken(l.seed, step));
  }

  /** The login for this API; credentials never go to another one. */
  async login(): Promise<StoredLogin | null> {
    const l = await this.stored();
    return l && l.api === this.base ? l : null;
  }

  async #cached(login: StoredLogin): Promise<CachedToken | null> {
    const text = this.tokenPath && await this.files.read(this.tokenPath);
    if (!text) return null;
    try {
      const t = JSON.parse(text) as CachedToken;
      return t.api === login.api && t.name === login.name &&
          t.realm === login.realm && typeof t.token === "string"
        ? t
        : null;
    } catch {
      return null;
    }
  }

  /** Headers that authenticate a request; none without a login. */
  async headers(fresh = false): Promise<Record<string, string>> {
    const login = await this.login();
    if (!login) return {};
    const cached = await this.#cached(login);
    let t = cached;
    if (
      fresh || !t || Date.parse(t.expiresAt) - 30_000 <= this.now()
    ) t = await this.#exchange(login, cached?.step ?? -1);
    return { authorization: `Bearer ${t.token}` };
  }

  /**
   * Buys the first bearer token of a new login. The name's current step may
   * be used already (by an earlier login or another client of the same
   * name): then the next step's token, which the API also accepts.
   */
  async prime(): Promise<void> {
    const login = await this.login();
    if (!login) throw new CliError("no stored login");
    try {
      await this.#exchange(login, -1);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) throw err;
      await this.#exchange(login, totpCounter(this.now()));
    }
  }

  /** Buys a bearer token with the TOTP of a step not used before. */
  async #exchange(login: StoredLogin, lastStep: number): Promise<CachedToken> {
    const current = totpCounter(this.now());
    const step = Math.max(current, lastStep + 1);
    if (step > current + 1) {
      throw new CliError(
        "the TOTP tokens of this half minute are used up; retry in 30 s",
      );
    }
    const answer = await apiClient(connect(this.base, this.fetchFn)).auth
      .token({
        "X-Otp-Name": login.name,
        "X-Otp-Realm": login.realm,
        "X-Otp-Token": loginToken(login.seed, step),
      });
    const t: CachedToken = {
      api: login.api,
      name: login.name,
      realm: login.realm,
      token: answer.token,
      expiresAt: answer.expiresAt,
      step,
    };
    if (this.tokenPath) {
      await this.files.writePrivate(this.tokenPath, JSON.stringify(t) + "\n");
    }
    return t;
  }
}
