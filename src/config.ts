import { z } from "zod";

/**
 * The environment, as a schema. Parsed once in main.ts and passed down frozen; nothing else
 * reads process.env, so a test can build the service from a plain object.
 */

const intIn = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, "expected a whole number")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const optionalUrl = (protocols: string[]) =>
  z
    .string()
    .trim()
    .url("expected a URL")
    .refine(
      (u) => protocols.some((p) => u.startsWith(p)),
      `expected a URL starting with ${protocols.join(" or ")}`,
    )
    .optional();

const csv = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .optional();

const boolFlag = z
  .enum(["1", "0", "true", "false", "yes", "no", "on", "off"], { message: "expected true or false" })
  .transform((v) => ["1", "true", "yes", "on"].includes(v));

export const envSchema = z
  .object({
    PORT: intIn(0, 65535).default(8080),
    HOST: z.string().trim().min(1).default("0.0.0.0"),
    SQLITE_PATH: z.string().trim().min(1).default("./data/chat.db"),
    // FULL survives a host crash; NORMAL only a process crash. Benchmarks compare both.
    SQLITE_SYNCHRONOUS: z.enum(["FULL", "NORMAL", "OFF"]).default("FULL"),
    MONGO_URI: optionalUrl(["mongodb://", "mongodb+srv://"]),
    MONGO_DB: z.string().trim().min(1).default("chat"),
    // Short on purpose: the service is local-first, so a slow MongoDB must fail fast and let the
    // flusher back off rather than stall anything that waits on it.
    MONGO_CONNECT_TIMEOUT_MS: intIn(100, 120_000).default(2000),
    MONGO_SOCKET_TIMEOUT_MS: intIn(100, 600_000).default(10_000),
    MONGO_READ_TIMEOUT_MS: intIn(50, 60_000).default(800),
    MONGO_FLUSH_BATCH: intIn(1, 10_000).default(500),
    MONGO_FLUSH_POLL_MS: intIn(10, 60_000).default(1000),
    MONGO_RETRY_MAX_MS: intIn(10, 600_000).default(5000),
    MONGO_SHUTDOWN_FLUSH_MS: intIn(0, 600_000).default(3000),
    DJANGO_BASE_URL: optionalUrl(["http://", "https://"]),
    DJANGO_FORWARD_COOKIES: csv.default(["device_id"]),
    DJANGO_TIMEOUT_MS: intIn(100, 60_000).default(3000),
    IDENTITY_CACHE_TTL_MS: intIn(0, 3_600_000).default(30_000),
    JWT_SECRET: z.string().min(16, "expected at least 16 characters").optional(),
    JWT_JWKS_URL: optionalUrl(["http://", "https://"]),
    JWT_CLOCK_TOLERANCE_S: intIn(0, 300).default(5),
    DIRECTORY_FILE: z.string().trim().min(1).optional(),
    REDIS_URL: optionalUrl(["redis://", "rediss://"]),
    // Every key and channel starts with it, so several deployments (or test runs) share one Redis.
    REDIS_PREFIX: z
      .string()
      .trim()
      .regex(/^[\w.:-]{1,64}$/, "expected 1-64 letters, digits or _ . : -")
      .default("chat:"),
    // Names this instance in bus envelopes and presence keys; unset means a random one per start.
    INSTANCE_ID: z
      .string()
      .trim()
      .regex(/^[\w.-]{1,64}$/, "expected 1-64 letters, digits or _ . -")
      .optional(),
    // A crashed instance's users stop counting as online this long after its last heartbeat.
    PRESENCE_TTL_S: intIn(3, 3600).default(15),
    ALLOWED_ORIGINS: csv,
    MAX_MESSAGE_CHARS: intIn(1, 100_000).default(4000),
    // A frame carries at most MAX_MESSAGE_CHARS characters of up to 4 UTF-8 bytes each,
    // plus JSON escaping; 64 KiB leaves room without letting a client park megabytes.
    MAX_FRAME_BYTES: intIn(1024, 16 * 1024 * 1024).default(65_536),
    HEARTBEAT_IDLE_S: intIn(5, 960).default(60),
    RATE_MESSAGES_PER_S: intIn(1, 100_000).default(20),
    RATE_MESSAGES_BURST: intIn(1, 100_000).default(40),
    RATE_USER_MESSAGES_PER_S: intIn(1, 100_000).default(40),
    RATE_USER_MESSAGES_BURST: intIn(1, 100_000).default(80),
    RATE_REST_PER_MIN: intIn(1, 1_000_000).default(600),
    // Failed logins (401) per client address per minute, REST and upgrade together; 0 is off.
    AUTH_FAILURES_PER_MIN: intIn(0, 1_000_000).default(60),
    MAX_CONNECTIONS_PER_USER: intIn(1, 10_000).default(20),
    SEND_BUFFER_LIMIT_BYTES: intIn(1024, 1 << 30).default(1 << 20),
    SHUTDOWN_GRACE_MS: intIn(0, 600_000).default(10_000),
    // How long /readyz answers 503 before connections are closed, so a load balancer stops
    // routing here first. Part of SHUTDOWN_GRACE_MS, not added to it.
    SHUTDOWN_DRAIN_DELAY_MS: intIn(0, 600_000).default(0),
    METRICS_TOKEN: z.string().min(8).optional(),
    // Attachments (docs/attachments.md). The bytes live beside the SQLite file unless moved.
    ATTACHMENT_DIR: z.string().trim().min(1).optional(),
    ATTACHMENT_MAX_MB: intIn(1, 1024).default(10),
    // Sniffed types accepted; text/plain covers source files. Anything else is refused with 415.
    ATTACHMENT_TYPES: csv.default([
      "image/png",
      "image/jpeg",
      "image/gif",
      "image/webp",
      "application/pdf",
      "text/plain",
      "application/zip",
    ]),
    // An upload no message refers to is removed this long after it was made.
    ATTACHMENT_UNSENT_TTL_S: intIn(1, 30 * 86_400).default(86_400),
    // Retry-After on a 503 for an attachment another instance has not yet copied to GridFS.
    ATTACHMENT_RETRY_AFTER_S: intIn(1, 3600).default(2),
    DEMO_PAGE: boolFlag.default(false),
    LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  })
  .superRefine((env, ctx) => {
    if (env.SHUTDOWN_DRAIN_DELAY_MS >= env.SHUTDOWN_GRACE_MS && env.SHUTDOWN_DRAIN_DELAY_MS > 0) {
      ctx.addIssue({
        code: "custom",
        path: ["SHUTDOWN_DRAIN_DELAY_MS"],
        message: "must be shorter than SHUTDOWN_GRACE_MS, which it is part of",
      });
    }
    if (env.JWT_SECRET && env.JWT_JWKS_URL) {
      ctx.addIssue({
        code: "custom",
        path: ["JWT_JWKS_URL"],
        message: "set JWT_SECRET or JWT_JWKS_URL, not both",
      });
    }
    if (env.DJANGO_BASE_URL && env.DIRECTORY_FILE) {
      ctx.addIssue({
        code: "custom",
        path: ["DIRECTORY_FILE"],
        message: "set DJANGO_BASE_URL or DIRECTORY_FILE, not both",
      });
    }
  });

export type Config = Readonly<z.infer<typeof envSchema>>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Empty strings mean "unset": shells and orchestrators often export `VAR=` for absent values. */
function withoutEmpty(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v.trim() !== "") out[key] = v;
  }
  return out;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = envSchema.safeParse(withoutEmpty(env));
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = String(i.path[0] ?? "environment");
        // Never echo the value: it may be a secret.
        return `${name}: ${i.message}`;
      }),
    );
  }
  return Object.freeze(parsed.data);
}
