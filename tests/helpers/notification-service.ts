import { RedisClient, type Server } from "bun";
import { SHARED_REDIS_URL } from "./redis.ts";

/**
 * Stand-ins for the platform's notification service (dilshod1405/neosoft-notification, Go): its
 * `POST /publish` and its consumer-group reader of `notifications_stream`. Both read a
 * notification with the service's types, so anything it would refuse is refused here: `id` and
 * `user_id` must be JSON integers that fit an int64 (a string, a fraction, an exponent or a value
 * past 2^63-1 is a 400, as Go's encoding/json makes it), the text fields strings, `metadata` any
 * JSON. Stricter than the service on one point: every field must be present, so a payload that
 * loses a field fails a test instead of arriving as Go's zero value.
 */

export interface ReceivedNotification {
  id: number;
  user_id: number;
  type: string;
  title: string;
  message: string;
  metadata: Record<string, unknown>;
  action_url: string;
  created_at: string;
  /** `id` exactly as it was written in the JSON text. */
  rawId: string;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const STRING_FIELDS = ["type", "title", "message", "action_url", "created_at"] as const;

/** The raw JSON text of each member of a top-level object (JSON.parse would round big integers). */
function topLevelMembers(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\r\n".includes(text[i]!)) i++;
  };
  const string = () => {
    const start = i++;
    while (text[i] !== '"') {
      if (i >= text.length) throw new Error("unterminated string");
      i += text[i] === "\\" ? 2 : 1;
    }
    i++;
    return text.slice(start, i);
  };
  const value = () => {
    const start = i;
    let depth = 0;
    for (; i < text.length; i++) {
      const ch = text[i]!;
      if (ch === '"') {
        string();
        i--;
      } else if (ch === "{" || ch === "[") depth++;
      else if (ch === "}" || ch === "]") {
        if (depth === 0) break;
        depth--;
      } else if (ch === "," && depth === 0) break;
    }
    return text.slice(start, i).trim();
  };
  ws();
  if (text[i] !== "{") throw new Error("not an object");
  i++;
  ws();
  if (text[i] === "}") return out;
  for (;;) {
    ws();
    const key = JSON.parse(string()) as string;
    ws();
    if (text[i++] !== ":") throw new Error("expected :");
    ws();
    out.set(key, value());
    if (text[i] === ",") {
      i++;
      continue;
    }
    if (text[i] === "}") return out;
    throw new Error("expected , or }");
  }
}

/** Parses like the Go service's `json.Unmarshal` into its Notification struct; throws what it would refuse. */
export function parsePlatformNotification(text: string): ReceivedNotification {
  const parsed = JSON.parse(text) as unknown;
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("body is not a JSON object");
  }
  const raw = topLevelMembers(text);
  const obj = parsed as Record<string, unknown>;
  for (const field of ["id", "user_id"]) {
    const token = raw.get(field);
    if (token === undefined) throw new Error(`${field} is missing`);
    if (!/^-?(0|[1-9]\d*)$/.test(token)) throw new Error(`${field} is not an int64: ${token}`);
    const n = BigInt(token);
    if (n < INT64_MIN || n > INT64_MAX) throw new Error(`${field} overflows int64: ${token}`);
  }
  for (const field of STRING_FIELDS) {
    if (typeof obj[field] !== "string") throw new Error(`${field} is not a string`);
  }
  if (!("metadata" in obj)) throw new Error("metadata is missing");
  return { ...(obj as unknown as Omit<ReceivedNotification, "rawId">), rawId: raw.get("id")! };
}

export interface PublishStandIn {
  url: string;
  received: ReceivedNotification[];
  /** Bodies answered 400, with the reason. */
  refused: Array<{ body: string; reason: string }>;
  /** Closes the listener: connections are refused, as when the service is down. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): void;
  close(): Promise<void>;
}

/** `POST /publish` on 127.0.0.1; with `token`, a request without `Bearer <token>` gets 401. */
export function startPublishStandIn(opts: { token?: string; port?: number } = {}): PublishStandIn {
  const received: ReceivedNotification[] = [];
  const refused: Array<{ body: string; reason: string }> = [];
  const serve = (port: number): Server<undefined> =>
    Bun.serve({
      hostname: "127.0.0.1",
      port,
      async fetch(req) {
        const path = new URL(req.url).pathname;
        if (path !== "/publish" || req.method !== "POST") return new Response("not found", { status: 404 });
        if (opts.token && req.headers.get("authorization") !== `Bearer ${opts.token}`) {
          return Response.json({ error: "unauthorized" }, { status: 401 });
        }
        const body = await req.text();
        try {
          received.push(parsePlatformNotification(body));
        } catch (err) {
          refused.push({ body, reason: String(err) });
          return Response.json({ error: "invalid json" }, { status: 400 });
        }
        return Response.json({ status: "sent" });
      },
    });
  let server: Server<undefined> | null = serve(opts.port ?? 0);
  const port = server.port!;
  return {
    url: `http://127.0.0.1:${port}/publish`,
    received,
    refused,
    async down() {
      await server?.stop(true);
      server = null;
    },
    up() {
      server ??= serve(port);
    },
    async close() {
      await server?.stop(true);
      server = null;
    },
  };
}

export interface StreamReader {
  stream: string;
  /** Every notification read so far, in stream order (each acknowledged once parsed). */
  received: ReceivedNotification[];
  /** Entries whose `data` the service could not have read. */
  refused: Array<{ data: string; reason: string }>;
  /** One XREADGROUP (blocking up to `blockMs`); returns what it read. */
  read(blockMs?: number): Promise<ReceivedNotification[]>;
  close(): Promise<void>;
}

/**
 * Reads `stream` the way the platform's service does: it creates `group` at `$` with MKSTREAM
 * when it starts, then loops on XREADGROUP ... STREAMS <stream> > and XACKs each entry.
 */
export async function startStreamReader(opts: {
  stream: string;
  group?: string;
  url?: string;
}): Promise<StreamReader> {
  const group = opts.group ?? "notif_group";
  const client = new RedisClient(opts.url ?? SHARED_REDIS_URL, {
    autoReconnect: false,
    connectionTimeout: 2000,
  });
  await client.connect();
  try {
    await client.send("XGROUP", ["CREATE", opts.stream, group, "$", "MKSTREAM"]);
  } catch (err) {
    if (!String(err).includes("BUSYGROUP")) throw err;
  }
  const received: ReceivedNotification[] = [];
  const refused: Array<{ data: string; reason: string }> = [];
  return {
    stream: opts.stream,
    received,
    refused,
    async read(blockMs = 100) {
      const reply = (await client.send("XREADGROUP", [
        "GROUP",
        group,
        "notif_worker_1",
        "COUNT",
        "100",
        "BLOCK",
        String(blockMs),
        "STREAMS",
        opts.stream,
        ">",
      ])) as null | Record<string, Array<[string, string[]]>> | Array<[string, Array<[string, string[]]>]>;
      if (!reply) return [];
      // RESP3 answers a map of stream → entries; RESP2 an array of [stream, entries].
      const streams = Array.isArray(reply) ? reply : Object.entries(reply);
      const got: ReceivedNotification[] = [];
      for (const [, entries] of streams) {
        for (const [entryId, fields] of entries) {
          const at = fields.indexOf("data");
          const data = at >= 0 ? fields[at + 1]! : "";
          try {
            got.push(parsePlatformNotification(data));
          } catch (err) {
            refused.push({ data, reason: String(err) });
          }
          await client.send("XACK", [opts.stream, group, entryId]);
        }
      }
      received.push(...got);
      return got;
    },
    async close() {
      try {
        await client.send("DEL", [opts.stream]);
      } finally {
        client.close();
      }
    },
  };
}

/** A stream name of this test's own on the shared Redis. */
export function testStream(): string {
  return `test:notify:${crypto.randomUUID().slice(0, 8)}`;
}
