/**
 * Structured JSON-line logging to stderr. Fields such as `task`, `vm` and
 * `host` are passed as an object and merged into the line.
 *
 * @example
 * ```ts
 * const log = logger({ host: "h1" });
 * log.info("task claimed", { task: "t-1" });
 * ```
 */
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

const levels = { debug: 10, info: 20, warn: 30, error: 40 } as const;
type Level = keyof typeof levels;

function minLevel(): number {
  const env = Deno.env.get("UCLOUD_LOG_LEVEL") as Level | undefined;
  return levels[env ?? "info"] ?? levels.info;
}

/** Returns a logger writing JSON lines with `base` merged into each line. */
export function logger(base: Fields = {}): Logger {
  const min = minLevel();
  const write = (level: Level, msg: string, fields?: Fields) => {
    if (levels[level] < min) return;
    const line = JSON.stringify({
      ts: new Date().toISOString(),
      level,
      msg,
      ...base,
      ...fields,
    });
    console.error(line);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (f) => logger({ ...base, ...f }),
  };
}
