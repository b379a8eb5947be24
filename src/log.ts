/**
 * Structured JSON logs, one object a line. Tokens must never reach a log line, so every
 * record goes through `redact`, which drops credential-looking fields and scrubs query strings.
 */

export type Level = "debug" | "info" | "warn" | "error";
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

const SECRET_KEY = /token|authorization|secret|password|cookie|sec-websocket-protocol/i;
const TOKEN_IN_TEXT = /((?:token|access_token|authorization)=)[^&\s"]+/gi;
// Bearer values in quoted headers, and the `bearer, <token>` WebSocket subprotocol.
const BEARER_IN_TEXT = /(\bbearer(?:\s+|\s*,\s*))[^\s",;)]+/gi;
// The signature may be empty: an `alg: none` token is still a credential someone tried.
const JWT_LIKE = /eyJ[\w-]+\.[\w-]+\.[\w-]*/g;

export function redactText(s: string): string {
  return s
    .replace(TOKEN_IN_TEXT, "$1[redacted]")
    .replace(BEARER_IN_TEXT, "$1[redacted]")
    .replace(JWT_LIKE, "[redacted-jwt]");
}

export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return redactText(value);
  if (value instanceof Error) {
    return { name: value.name, message: redactText(value.message) };
  }
  if (depth > 4 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) ? "[redacted]" : redact(v, depth + 1);
  }
  return out;
}

export function createLogger(opts: { level: Level; write?: (line: string) => void; base?: Fields }): Logger {
  const write = opts.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const min = rank[opts.level];
  const base = opts.base ?? {};
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (rank[level] < min) return;
    const record = redact({ ts: new Date().toISOString(), level, msg, ...base, ...fields });
    write(JSON.stringify(record));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ level: opts.level, write, base: { ...base, ...fields } }),
  };
}

export const silentLogger: Logger = createLogger({ level: "error", write: () => {} });
