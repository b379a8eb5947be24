import { z } from "zod";

/**
 * One zod schema per environment variable, with its description (--help and the reference in
 * docs/configuration.md are read from them). config.ts joins them into the environment's schema,
 * checks the variables that depend on each other and fills in the defaults that do.
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

/** Seconds, fractions allowed: tests and demos want a notification delay well under a second. */
const secondsIn = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, "expected a number of seconds, like 60 or 0.5")
    .transform(Number)
    .pipe(z.number().min(min).max(max));

/** What `NOTIFY_ACTION_URL` may refer to. */
export const ACTION_URL_FIELDS = ["lesson_id", "student_id", "mentor_id", "conversation_id"] as const;

const boolFlag = z
  .enum(["1", "0", "true", "false", "yes", "no", "on", "off"], { message: "expected true or false" })
  .transform((v) => ["1", "true", "yes", "on"].includes(v));

// An entry is matched as a parsed origin (src/auth/origin.ts): anything else would never match.
const ORIGIN_ENTRY = /^(\*|https?:\/\/(\*\.)?([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:\d{1,5})?\/?)$/i;

function checkOrigins(list: string[] | undefined, ctx: z.RefinementCtx): void {
  for (const entry of list ?? []) {
    if (!ORIGIN_ENTRY.test(entry)) {
      ctx.addIssue({
        code: "custom",
        message: `"${entry}" is not an origin: expected scheme://host[:port] (https://school.example), https://*.school.example or *`,
      });
    }
  }
}

export const TRIAL_HOST = "127.0.0.1";
export const SERVER_HOST = "0.0.0.0";

const serverFields = {
  PORT: intIn(0, 65535).default(8080).describe("HTTP and WebSocket port (0 picks a free one)"),
  // No schema default: it depends on whether a key or Django is configured (see loadConfig).
  HOST: z
    .string()
    .trim()
    .min(1)
    .optional()
    .meta({
      description: "listen address",
      shownDefault: `${TRIAL_HOST} on the embedded default (no Django, no key), else ${SERVER_HOST}`,
    }),
  SQLITE_PATH: z
    .string()
    .trim()
    .min(1)
    .default("./data/chat.db")
    .describe("local store and outbox; the folder is created"),
  // FULL survives a host crash; NORMAL only a process crash. Benchmarks compare both.
  SQLITE_SYNCHRONOUS: z
    .enum(["FULL", "NORMAL", "OFF"])
    .default("FULL")
    .describe("FULL survives a host crash, NORMAL a process crash only"),
  // Off by default: on the 2-core bench box the thread shares the server's core, and under load
  // it delivered less than the sync on the loop (docs/performance.md). Tests run both paths.
  SQLITE_SYNC_THREAD: boolFlag
    .default(false)
    .describe(
      "with FULL: commit without waiting for the disk, fdatasync the WAL on a thread before any ack, checkpoint on a thread",
    ),
  // An fdatasync costs ~100 µs of kernel CPU here and ~0.3 ms of the loop's time: one per turn,
  // at a few messages each, they were most of the cost per message at 10k/s. Spacing them lets
  // each cover more (docs/performance-log.md#commits-spaced-by-their-sync).
  SQLITE_SYNC_INTERVAL_MS: intIn(0, 100)
    .default(1)
    .describe(
      "with FULL: the least time between two syncs of the WAL, each commit's own or the thread's (0: every turn commits at once)",
    ),
};

/** How much the local store keeps, and the disk it leaves free (docs/storage.md). */
const localBoundsFields = {
  LOCAL_RETENTION_DAYS: intIn(0, 36_500)
    .default(30)
    .describe(
      "with MongoDB: messages it confirmed are removed from SQLite after this many days (without MongoDB nothing is removed)",
    ),
  LOCAL_MAX_MB: intIn(1, 10_000_000)
    .optional()
    .describe(
      "with MongoDB: past this size the oldest confirmed messages leave SQLite first; unset means no limit",
    ),
  LOCAL_SWEEP_INTERVAL_S: intIn(1, 86_400)
    .default(60)
    .describe("how often retention and LOCAL_MAX_MB are applied"),
  // Below it new messages are refused as `unavailable` (retryable) and /readyz is 503, so a
  // full disk is a clear, recoverable state rather than a stream of failing commits.
  DISK_MIN_FREE_MB: intIn(0, 10_000_000)
    .default(256)
    .describe(
      "free space the SQLite volume must keep; below it new messages are refused (0 turns the check off)",
    ),
};

const mongoFields = {
  MONGO_URI: optionalUrl(["mongodb://", "mongodb+srv://"]).describe(
    "MongoDB system of record; unset means SQLite alone",
  ),
  MONGO_DB: z.string().trim().min(1).default("chat").describe("MongoDB database name"),
  // Short on purpose: the service is local-first, so a slow MongoDB must fail fast and let the
  // flusher back off rather than stall anything that waits on it.
  MONGO_CONNECT_TIMEOUT_MS: intIn(100, 120_000).default(2000).describe("MongoDB connect timeout"),
  MONGO_SOCKET_TIMEOUT_MS: intIn(100, 600_000).default(10_000).describe("MongoDB socket timeout"),
  MONGO_READ_TIMEOUT_MS: intIn(50, 60_000)
    .default(800)
    .describe("longest wait for a history read from MongoDB before answering from SQLite"),
  MONGO_FLUSH_BATCH: intIn(1, 10_000).default(500).describe("outbox rows written to MongoDB per batch"),
  MONGO_FLUSH_POLL_MS: intIn(10, 60_000).default(1000).describe("how often the outbox is checked when idle"),
  MONGO_RETRY_MAX_MS: intIn(10, 600_000).default(5000).describe("longest backoff between failed flushes"),
  MONGO_SHUTDOWN_FLUSH_MS: intIn(0, 600_000)
    .default(3000)
    .describe("time given to a last outbox flush on shutdown"),
};

const identityFields = {
  DJANGO_BASE_URL: optionalUrl(["http://", "https://"]).describe(
    "identity backend; unset means the local directory",
  ),
  DJANGO_FORWARD_COOKIES: csv
    .default(["device_id"])
    .describe("comma-separated cookies passed from the client's request to Django"),
  DJANGO_TIMEOUT_MS: intIn(100, 60_000).default(3000).describe("timeout of each identity call"),
  IDENTITY_CACHE_TTL_MS: intIn(0, 3_600_000).default(30_000).describe("how long identity answers are cached"),
  JWT_SECRET: z
    .string()
    .min(16, "expected at least 16 characters")
    .optional()
    .describe(
      "HS256 key for local token checks (the Django site's SECRET_KEY); unset means a generated dev key beside the SQLite file",
    ),
  JWT_JWKS_URL: optionalUrl(["http://", "https://"]).describe(
    "JWKS URL for RS256/ES256 tokens (instead of JWT_SECRET)",
  ),
  JWT_CLOCK_TOLERANCE_S: intIn(0, 300).default(5).describe("allowed clock skew for exp"),
  DIRECTORY_FILE: z
    .string()
    .trim()
    .min(1)
    .optional()
    .describe("JSON users and lessons for running without Django; unset means examples/directory.json"),
};

/** Several instances behind one Redis (docs/scaling.md). */
const instanceFields = {
  REDIS_URL: optionalUrl(["redis://", "rediss://"]).describe(
    "shared fan-out and presence bus for several instances",
  ),
  // Every key and channel starts with it, so several deployments (or test runs) share one Redis.
  REDIS_PREFIX: z
    .string()
    .trim()
    .regex(/^[\w.:-]{1,64}$/, "expected 1-64 letters, digits or _ . : -")
    .default("chat:")
    .describe("prefix of every Redis key and channel"),
  INSTANCE_ID: z
    .string()
    .trim()
    .regex(/^[\w.-]{1,64}$/, "expected 1-64 letters, digits or _ . -")
    .optional()
    .describe("this instance's name on the bus; unset means a random one per start"),
  PRESENCE_OFFLINE_DELAY_MS: intIn(0, 600_000)
    .default(5000)
    .describe(
      "a user whose last socket closed is announced offline only after this long without a reconnect",
    ),
  PRESENCE_TTL_S: intIn(3, 3600)
    .default(15)
    .describe("a crashed instance's users go offline this long after its last heartbeat"),
  ACK_COPIES: z
    .enum(["1", "2"], { message: "expected 1 or 2" })
    .default("1")
    .transform(Number)
    .describe(
      "durable copies before a message is acked: 1 = this instance's SQLite; 2 = also another instance's (falls back to 1 with no peer or no Redis)",
    ),
  ACK_COPY_TIMEOUT_MS: intIn(50, 60_000)
    .default(1000)
    .describe("with ACK_COPIES=2: longest an ack waits for a peer's copy before it goes out with one copy"),
  COPY_FLUSH_DELAY_MS: intIn(100, 86_400_000)
    .default(15_000)
    .describe(
      "a relayed copy is written to MongoDB only if its origin has not confirmed its own write within this time",
    ),
};

/** Offline notifications through the platform's notification service (docs/notifications.md). */
const notifyFields = {
  NOTIFY_DELAY_S: secondsIn(0.05, 86_400)
    .default(60)
    .describe(
      "how long a message may stay unread before its recipient is notified (seconds, fractions allowed)",
    ),
  NOTIFY_STREAM: z
    .string()
    .trim()
    .regex(/^[\w.:{}-]{1,128}$/, "expected 1-128 letters, digits or _ . : { } -")
    .optional()
    .describe("Redis stream the platform's notification service reads; unset means no stream sink"),
  NOTIFY_REDIS_URL: optionalUrl(["redis://", "rediss://"]).describe(
    "Redis holding NOTIFY_STREAM; unset means REDIS_URL",
  ),
  NOTIFY_URL: optionalUrl(["http://", "https://"]).describe(
    "the notification service's POST /publish URL; unset means no HTTP sink",
  ),
  NOTIFY_TOKEN: z.string().min(1).optional().describe("bearer token sent to NOTIFY_URL"),
  NOTIFY_INCLUDE_TEXT: boolFlag
    .default(true)
    .describe("quote the message's opening characters; false sends a neutral line"),
  NOTIFY_ACTION_URL: z
    .string()
    .trim()
    .min(1)
    .refine(
      (t) =>
        [...t.matchAll(/\{(\w*)\}/g)].every((m) => (ACTION_URL_FIELDS as readonly string[]).includes(m[1]!)),
      `expected placeholders among ${ACTION_URL_FIELDS.map((f) => `{${f}}`).join(", ")}`,
    )
    .default("/lessons/{lesson_id}/chat?student_id={student_id}")
    .describe("the notification's link; {lesson_id}, {student_id}, {mentor_id}, {conversation_id} filled in"),
  NOTIFY_TIMEOUT_MS: intIn(100, 60_000).default(5000).describe("how long one notification send may take"),
  NOTIFY_RETRY_MAX_MS: intIn(100, 3_600_000)
    .default(60_000)
    .describe("ceiling of the backoff while a notification sink fails"),
};

const limitFields = {
  ALLOWED_ORIGINS: csv
    .superRefine(checkOrigins)
    .describe(
      "comma-separated origin allow-list for WebSocket and CORS (https://*.example.org allowed); unset allows any",
    ),
  MAX_MESSAGE_CHARS: intIn(1, 100_000).default(4000).describe("longest message text, in characters"),
  EDIT_WINDOW_S: intIn(0, 31_536_000)
    .default(86_400)
    .describe("a sender may edit a message this long after sending it (0: never); deleting has no window"),
  // A frame carries at most MAX_MESSAGE_CHARS characters of up to 4 UTF-8 bytes each,
  // plus JSON escaping; 64 KiB leaves room without letting a client park megabytes.
  MAX_FRAME_BYTES: intIn(1024, 16 * 1024 * 1024)
    .default(65_536)
    .describe("largest inbound frame; larger closes with 1009"),
  HEARTBEAT_IDLE_S: intIn(5, 960).default(60).describe("a connection silent this long (no pong) is dropped"),
  RATE_MESSAGES_PER_S: intIn(1, 100_000).default(20).describe("frames per second per connection"),
  RATE_MESSAGES_BURST: intIn(1, 100_000).default(40).describe("frame burst per connection"),
  RATE_USER_MESSAGES_PER_S: intIn(1, 100_000)
    .default(40)
    .describe("messages per second per user, across connections"),
  RATE_USER_MESSAGES_BURST: intIn(1, 100_000)
    .default(80)
    .describe("message burst per user, across connections"),
  RATE_REST_PER_MIN: intIn(1, 1_000_000).default(600).describe("REST requests per minute per user"),
  // Failed logins (401) per client address per minute, REST and upgrade together; 0 is off.
  AUTH_FAILURES_PER_MIN: intIn(0, 1_000_000)
    .default(60)
    .describe("failed logins (401) per minute per client address; 0 turns it off"),
  MAX_CONNECTIONS_PER_USER: intIn(1, 10_000).default(20).describe("open sockets per user on one instance"),
  // Every upgrade attempt is charged, refused or not: a refused one costs Django calls too.
  UPGRADES_PER_MIN_PER_USER: intIn(0, 1_000_000)
    .default(60)
    .describe("WebSocket upgrade attempts per minute per user, before lesson checks; 0 turns it off"),
  UPGRADES_PER_MIN_PER_ADDRESS: intIn(0, 1_000_000)
    .default(600)
    .describe(
      "WebSocket upgrade attempts per minute per client address, before any identity call; 0 turns it off",
    ),
  SEND_BUFFER_LIMIT_BYTES: intIn(1024, 1 << 30)
    .default(1 << 20)
    .describe("a socket whose unsent data passes this is closed"),
};

const operationFields = {
  SHUTDOWN_GRACE_MS: intIn(0, 600_000).default(10_000).describe("how long SIGTERM may take to drain"),
  // How long /readyz answers 503 before connections are closed, so a load balancer stops
  // routing here first. Part of SHUTDOWN_GRACE_MS, not added to it.
  SHUTDOWN_DRAIN_DELAY_MS: intIn(0, 600_000)
    .default(0)
    .describe("unready this long before closing connections; counts inside the grace"),
  METRICS_TOKEN: z.string().min(8).optional().describe("when set, /metrics needs Authorization: Bearer <it>"),
};

/** Attachments (docs/attachments.md). */
const attachmentFields = {
  ATTACHMENT_DIR: z.string().trim().min(1).optional().meta({
    description: "where attachment bytes are kept locally (content-addressed)",
    shownDefault: "attachments/ beside SQLITE_PATH",
  }),
  ATTACHMENT_MAX_MB: intIn(1, 1024).default(10).describe("largest upload in MiB; larger is refused with 413"),
  ATTACHMENT_TYPES: csv
    .default([
      "image/png",
      "image/jpeg",
      "image/gif",
      "image/webp",
      "application/pdf",
      "text/plain",
      "application/zip",
    ])
    .describe("sniffed types accepted, comma-separated (text/plain covers source files); others get 415"),
  ATTACHMENT_UNSENT_TTL_S: intIn(1, 30 * 86_400)
    .default(86_400)
    .describe("an upload no message refers to is removed this long after it was made"),
  ATTACHMENT_RETRY_AFTER_S: intIn(1, 3600)
    .default(2)
    .describe("Retry-After of the 503 for an attachment another instance has not yet copied to GridFS"),
};

const demoAndLogFields = {
  DEMO_PAGE: boolFlag.optional().meta({
    description: "serve the demo web client at /demo",
    shownDefault: "true on the embedded default (no Django, no key), else false",
  }),
  DEMO_MINT_PUBLIC: boolFlag
    .default(false)
    .describe(
      "let the demo mint dev tokens while HOST is not a loopback address (requests must still come straight from this machine)",
    ),
  LOG_LEVEL: z
    .enum(["debug", "info", "warn", "error"])
    .default("info")
    .describe("debug, info, warn or error; logs are JSON lines on stdout"),
};

/** Every variable; the order of the groups is the order of --help. */
export const envFields = {
  ...serverFields,
  ...localBoundsFields,
  ...mongoFields,
  ...identityFields,
  ...instanceFields,
  ...notifyFields,
  ...limitFields,
  ...operationFields,
  ...attachmentFields,
  ...demoAndLogFields,
};
