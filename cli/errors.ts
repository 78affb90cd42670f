/**
 * The CLI's errors and their exit codes: `CliError` (1: the API or the
 * operation failed), `UsageError` (2: bad command line), `ApiError` (an
 * error answer of the API). `main()` prints them as `error: <message>`.
 *
 * @module
 */

/**
 * An error the CLI reports as `error: <message>` and exits with `exitCode`.
 *
 * @example
 * ```ts
 * throw new CliError("Cannot find vm web1: no VM has this id or name");
 * ```
 */
export class CliError extends Error {
  override name = "CliError";
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

/**
 * Bad command-line input: exit code 2. `topic` names the command whose help
 * applies; `showHelp` prints that help instead of a one-line hint.
 *
 * @example
 * ```ts
 * throw new UsageError("--cpus must be an integer from 1 to 64", ["vm", "create"]);
 * ```
 */
export class UsageError extends CliError {
  override name = "UsageError";
  constructor(
    message: string,
    readonly topic: string[] = [],
    readonly showHelp = false,
  ) {
    super(message, 2);
  }
}

/**
 * An error answer of the API, `{error: {status, code, message, field?}}`.
 *
 * @example
 * ```ts
 * const err = new ApiError(400, "invalid", "image not found", "image");
 * err.message; // "image not found (field: image)"
 * ```
 */
export class ApiError extends CliError {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(field ? `${message} (field: ${field})` : message);
  }
}
