import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { conversationIdFor } from "../../src/ids.ts";
import { INBOUND_TYPES } from "../../src/protocol/frames.ts";
import { MAX_FAILED_AUTH_FRAMES } from "../../src/ws/session.ts";
import { ALL_CALLERS, rawUpgrade, tokenFor } from "../helpers/hostile.ts";
import { type InProcessService, startTestService, UNTHROTTLED } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";
import type { Frame, TestSocket } from "../helpers/ws-client.ts";

/**
 * Property-based fuzzing against a running server: thousands of random and malformed frames,
 * REST requests and upgrades. The server must answer every one in the documented shape, never
 * with a 5xx or a crash, and the stored messages must be exactly the acked ones.
 * Counts are printed at the end; the seed is printed by fast-check on failure.
 */

const CONV = conversationIdFor(5, 10, 15);
const counts = { frames: 0, rest: 0, upgrades: 0 };
let svc: InProcessService;
let port: number;
let mentorToken = "";

beforeAll(async () => {
  svc = await startTestService({
    env: {
      AUTH_FAILURES_PER_MIN: "0",
      ...UNTHROTTLED,
      RATE_REST_PER_MIN: "1000000",
      MAX_CONNECTIONS_PER_USER: "1000",
    },
  });
  port = Number(new URL(svc.url).port);
  mentorToken = await mintToken(10);
});

afterAll(async () => {
  console.log(
    `fuzz cases run: ${counts.frames} WebSocket frames, ${counts.rest} REST requests, ${counts.upgrades} upgrades (${counts.frames + counts.rest + counts.upgrades} in all)`,
  );
  await svc?.stop();
});

// ---------------------------------------------------------------- arbitraries

const hugeNumber = fc.constantFrom(
  1e308,
  -1e308,
  2 ** 53 + 1,
  -(2 ** 63),
  Number.MAX_SAFE_INTEGER,
  0,
  -1,
  1.5,
  "1e309",
  "NaN",
);
const weirdString = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme" }),
  fc.string({ unit: "binary" }),
  fc.constantFrom(
    "",
    " ",
    "\u0000",
    "\u202e",
    "💥".repeat(50),
    "a".repeat(5000),
    "\ud800",
    "<script>",
    "%00",
  ),
);
const anyValue = fc.oneof(
  { depthSize: "small" },
  weirdString,
  hugeNumber,
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 3 }),
);
const dangerousKey = fc.constantFrom("__proto__", "constructor", "prototype", "toString", "hasOwnProperty");
const key = fc.oneof(
  fc.constantFrom(
    "type",
    "text",
    "client_id",
    "is_typing",
    "message_id",
    "reply_to",
    "token",
    "sender_id",
    "conversation_id",
  ),
  dangerousKey,
  fc.string({ maxLength: 10 }),
);
let knownIds: string[] = [];
const value = fc.oneof(
  anyValue,
  fc.constantFrom(...INBOUND_TYPES),
  fc.constant("").map(() => knownIds[0] ?? "000000000000000000000000"),
  fc.stringMatching(/^[0-9a-f]{24}$/),
);

/** JSON objects written by hand, so duplicate and `__proto__` keys reach the server verbatim. */
const rawObject = fc
  .tuple(
    fc.option(fc.constantFrom(...INBOUND_TYPES, "MESSAGE", "unknown", "__proto__")),
    fc.array(fc.tuple(key, value), { maxLength: 6 }),
  )
  .map(([type, entries]) => {
    const parts = entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? "null"}`);
    if (type !== null) parts.unshift(`"type":${JSON.stringify(type)}`);
    return `{${parts.join(",")}}`;
  });

/** Frames that are nearly right: a valid type with one field wrong, missing or extra. */
const nearlyValid = fc
  .oneof(
    fc.record({
      type: fc.constant("message"),
      text: fc.oneof(weirdString, anyValue),
      client_id: fc.option(fc.oneof(fc.stringMatching(/^[\w.:-]{1,64}$/), anyValue), { nil: undefined }),
    }),
    fc.record({ type: fc.constant("typing"), is_typing: anyValue }),
    fc.record({ type: fc.constant("viewed"), message_id: value }),
    fc.record({
      type: fc.constant("edit"),
      message_id: value,
      text: fc.oneof(weirdString, anyValue),
      client_id: fc.option(fc.stringMatching(/^[\w.:-]{1,64}$/), { nil: undefined }),
    }),
    fc.record({
      type: fc.constant("delete"),
      message_id: value,
      client_id: fc.option(fc.oneof(fc.stringMatching(/^[\w.:-]{1,64}$/), anyValue), { nil: undefined }),
    }),
    fc.record({
      type: fc.constant("message"),
      text: fc.constant("a reply"),
      reply_to: value,
    }),
    fc.record({
      type: fc.constant("auth"),
      token: fc.oneof(
        weirdString,
        fc.constant("").map(() => mentorToken),
      ),
    }),
    fc.record({ type: fc.constant("ping") }, { requiredKeys: [] }),
  )
  .map((o) => JSON.stringify(o));

const deeplyNested = fc
  .tuple(fc.integer({ min: 1, max: 6_000 }), fc.constantFrom("[", '{"type":'))
  .map(([depth, open]) => open.repeat(depth) + (open === "[" ? "]" : "1}").repeat(depth));

// Frames over MAX_FRAME_BYTES (64 KiB) close the socket with 1009 by design (limits.test.ts).
const underFrameLimit = (f: string | Uint8Array) =>
  (typeof f === "string" ? Buffer.byteLength(f) : f.length) < 60_000;

const anyFrame = fc
  .oneof(
    { weight: 4, arbitrary: rawObject },
    { weight: 4, arbitrary: nearlyValid },
    { weight: 2, arbitrary: fc.json().map((j) => j) },
    { weight: 1, arbitrary: weirdString },
    { weight: 1, arbitrary: deeplyNested },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  )
  .filter(underFrameLimit);

// ---------------------------------------------------------------- WebSocket frames

/** `auth` frames that will be refused: the socket closes at the third, by design (budgets.test.ts). */
function refusedAuths(frames: Array<string | Uint8Array>): number {
  let n = 0;
  for (const f of frames) {
    if (typeof f !== "string") continue;
    try {
      const o = JSON.parse(f) as { type?: unknown; token?: unknown };
      if (o?.type === "auth" && o.token !== mentorToken) n++;
    } catch {
      // not JSON: not an auth frame
    }
  }
  return n;
}

function checkReply(f: Frame): void {
  expect(typeof f.type).toBe("string");
  if (f.type === "error") {
    expect(typeof f.code).toBe("string");
    expect(typeof f.message).toBe("string");
    expect((f.message as string).length).toBeGreaterThan(0);
  }
}

describe("fuzzing inbound frames", () => {
  let sender: TestSocket;
  let peer: TestSocket;
  const acked = new Map<string, string | undefined>(); // id → client_id

  beforeAll(async () => {
    peer = await svc.connect(15, { lesson_id: 5 });
    for (let i = 0; i < 3; i++) {
      peer.send({ type: "message", text: `seed ${i}`, client_id: `seed-${i}` });
      const ack = await peer.next("ack");
      acked.set(String(ack.id), String(ack.client_id));
    }
    knownIds = [...acked.keys()];
    sender = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    await sender.next("ready");
  });

  test("every frame gets a well-formed answer and the connection survives", async () => {
    let seen = sender.frames.length;
    let pings = 0;
    // Fewer refused `auth` frames a batch than close a socket; after a batch with any, a fresh socket.
    const batches = fc
      .array(anyFrame, { minLength: 1, maxLength: 25 })
      .filter((frames) => refusedAuths(frames) < MAX_FAILED_AUTH_FRAMES);
    await fc.assert(
      fc.asyncProperty(batches, async (frames) => {
        for (const f of frames) sender.ws.send(f);
        counts.frames += frames.length;
        // A ping after the batch: its pong means every frame before it was handled.
        const marker = `m${++pings}`;
        sender.send({ type: "message", text: marker, client_id: marker });
        counts.frames++;
        await sender.next((x) => x.type === "ack" && x.client_id === marker, 10_000);
        const replies = sender.frames.slice(seen);
        seen = sender.frames.length;
        for (const r of replies) {
          checkReply(r);
          // An edit's or a delete's ack names a message acked before; only new ids are messages.
          if (r.type === "ack" && !acked.has(String(r.id))) {
            acked.set(String(r.id), r.client_id as string | undefined);
          }
        }
        expect(sender.closed).toBeNull();
        if (refusedAuths(frames) > 0) {
          sender.close();
          sender = await svc.connect(10, { lesson_id: 5, student_id: 15 });
          await sender.next("ready");
          seen = sender.frames.length;
        }
      }),
      { numRuns: 2000 },
    );
    expect(counts.frames).toBeGreaterThan(10_000);
    // The server's own objects were not polluted by any `__proto__` key.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
  }, 60_000);

  test("stored messages are exactly the acked ones, each once", async () => {
    const stored: string[] = [];
    // No cursor gives the latest page; walk back with `before`.
    let before = "";
    for (;;) {
      const cursor = before ? `&before=${before}` : "";
      const res = await svc.get(`/messages?conversation_id=${CONV}&limit=200${cursor}`, 10);
      expect(res.status).toBe(200);
      const page = (await res.json()) as Array<{ id: string }>;
      stored.push(...page.map((m) => m.id));
      if (page.length < 200) break;
      before = page[0]!.id;
    }
    expect(new Set(stored).size).toBe(stored.length);
    expect(stored.sort()).toEqual([...acked.keys()].sort());
    // Same client_id, same message: no client_id is stored twice.
    const clientIds = [...acked.values()].filter((c) => c !== undefined);
    expect(new Set(clientIds).size).toBe(clientIds.length);
  });

  afterAll(() => {
    sender?.close();
    peer?.close();
  });
});

// ---------------------------------------------------------------- REST

const routePath = fc.oneof(
  fc.constantFrom(
    "/conversations",
    "/messages",
    "/messages/changes",
    "/presence",
    "/healthz",
    "/readyz",
    "/metrics",
    "/ws",
  ),
  fc
    .oneof(weirdString, fc.stringMatching(/^[0-9a-f]{24}$/), fc.constant(CONV))
    .map((id) => `/conversations/${encodeURIComponent(id.toWellFormed())}`),
  fc.webPath(),
  fc.constantFrom("/conversations/", "//conversations", "/conversations/%ZZ", "/../etc/passwd", "/%2e%2e/"),
);
const queryParam = fc.tuple(
  fc.oneof(
    fc.constantFrom(
      "user_id",
      "mentor_id",
      "student_id",
      "lesson_id",
      "conversation_id",
      "before",
      "after",
      "limit",
      "token",
      "__proto__",
      "constructor",
    ),
    fc.string({ maxLength: 8 }),
  ),
  fc.oneof(
    weirdString.map((s) => s.slice(0, 200)),
    hugeNumber.map(String),
    fc.constantFrom(CONV, "5", "10", "15", "-1", "0", "1e3", "0x10", "200", "201", "99999999999999999999"),
  ),
);
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,200}$/);
const authHeader = fc.oneof(
  fc.constant(undefined),
  fc
    // "noToken" is the undefined branch above.
    .constantFrom(...ALL_CALLERS.filter((c) => c !== "noToken" && c !== "otherStudent"))
    .map((c) => ({ caller: c })),
  headerValue.map((v) => ({ raw: v })),
);
const restCase = fc.record({
  method: fc.constantFrom("GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"),
  path: routePath,
  query: fc.array(queryParam, { maxLength: 6 }),
  auth: authHeader,
  cookie: fc.option(headerValue, { nil: undefined }),
  origin: fc.option(fc.oneof(headerValue, fc.webUrl()), { nil: undefined }),
});

describe("fuzzing REST", () => {
  test("every request gets a 2xx or a 4xx in the documented shape, never a 5xx", async () => {
    const tokens = new Map<string, string>();
    await fc.assert(
      fc.asyncProperty(restCase, async (c) => {
        const qs = new URLSearchParams(c.query).toString();
        const headers: Record<string, string> = {};
        if (c.auth && "caller" in c.auth) {
          const caller = c.auth.caller as Parameters<typeof tokenFor>[0];
          if (!tokens.has(caller)) tokens.set(caller, (await tokenFor(caller))!);
          headers.Authorization = `Bearer ${tokens.get(caller)}`;
        } else if (c.auth) headers.Authorization = c.auth.raw;
        if (c.cookie !== undefined) headers.Cookie = c.cookie;
        if (c.origin !== undefined) headers.Origin = c.origin;
        const res = await fetch(`${svc.url}${c.path}${qs ? `?${qs}` : ""}`, { method: c.method, headers });
        counts.rest++;
        const text = await res.text();
        const where = `${c.method} ${c.path}?${qs} → ${res.status} ${text.slice(0, 200)}`;
        expect({ where, ok: res.status < 500 }).toEqual({ where, ok: true });
        if (c.method === "HEAD" || res.status === 204) return;
        if (res.status >= 400) {
          expect({ where, body: JSON.parse(text) }).toEqual({
            where,
            body: { error: { code: expect.any(String), message: expect.any(String) } },
          });
        } else if (!c.path.startsWith("/metrics")) {
          JSON.parse(text);
        }
      }),
      { numRuns: 8000 },
    );
  }, 60_000);

  test("WebSocket upgrades with random query strings and headers: 101 or a 4xx with the error shape", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(queryParam, { maxLength: 6 }),
        fc.boolean(),
        fc.option(headerValue, { nil: undefined }),
        async (query, withToken, protocol) => {
          const params = new URLSearchParams(query);
          if (withToken) params.set("token", mentorToken);
          const headers: Record<string, string> = {};
          if (protocol !== undefined) headers["Sec-WebSocket-Protocol"] = protocol;
          const answer = await rawUpgrade(port, `/ws?${params}`, headers);
          counts.upgrades++;
          expect(answer.status === 101 || (answer.status >= 400 && answer.status < 500)).toBe(true);
          if (answer.status !== 101) {
            expect(JSON.parse(answer.body)).toEqual({
              error: { code: expect.any(String), message: expect.any(String) },
            });
          }
        },
      ),
      { numRuns: 1000 },
    );
  }, 60_000);

  test("the server is still healthy", async () => {
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${svc.url}/readyz`)).status).toBe(200);
  });
});
