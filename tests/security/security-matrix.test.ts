import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { conversationIdFor } from "../../src/ids.ts";
import { INBOUND_TYPES } from "../../src/protocol/frames.ts";
import { ALL_CALLERS, BAD_CALLERS, type CallerName, rawUpgrade, tokenFor } from "../helpers/hostile.ts";
import { type InProcessService, startTestService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";
import { type Frame, TestSocket } from "../helpers/ws-client.ts";

/**
 * The authorisation matrix: every REST route and every WebSocket action, for every kind of
 * caller, with the answer it must get. The route list comes from the app itself and the frame
 * list from INBOUND_TYPES, so a new route or frame without rows fails the coverage tests.
 *
 * Cast (TEST_DIRECTORY): lesson 5 is taught by mentor 10 to students 15 and 16; lesson 6 by
 * mentor 11. The conversation under test is (5, 10, 15); 16 has their own (5, 10, 16).
 */

const CONV = conversationIdFor(5, 10, 15);
const CONV_16 = conversationIdFor(5, 10, 16);

let svc: InProcessService;
let port: number;
let msgFrom10 = ""; // a message by the mentor in CONV
let msgFrom15 = ""; // a message by the student in CONV
let msgIn16 = ""; // a message in the other student's conversation
// Attachments, known only once uploaded: rows name them as @att10 / @att16 in their paths.
let att10 = ""; // uploaded by the mentor into CONV
let att16 = ""; // uploaded by the other student into their own conversation
const ATTACHMENT_BYTES = new TextEncoder().encode("lesson notes\n");

beforeAll(async () => {
  svc = await startTestService({
    // Hundreds of bad tokens from one address are the point here; the failed-login budget is
    // tested on its own in limits.test.ts.
    env: { AUTH_FAILURES_PER_MIN: "0", RATE_REST_PER_MIN: "100000", RATE_MESSAGES_BURST: "1000" },
  });
  port = Number(new URL(svc.url).port);
  const m = await svc.connect(10, { lesson_id: 5, student_id: 15 });
  m.send({ type: "message", text: "from mentor" });
  msgFrom10 = String((await m.next("ack")).id);
  const s = await svc.connect(15, { lesson_id: 5 });
  s.send({ type: "message", text: "from student" });
  msgFrom15 = String((await s.next("ack")).id);
  const o = await svc.connect(16, { lesson_id: 5 });
  o.send({ type: "message", text: "other conversation" });
  msgIn16 = String((await o.next("ack")).id);
  for (const sock of [m, s, o]) sock.close();
  const up = async (userId: number, conversationId: string) => {
    const res = await fetch(`${svc.url}/attachments?conversation_id=${conversationId}`, {
      method: "POST",
      body: ATTACHMENT_BYTES,
      headers: { Authorization: `Bearer ${await mintToken(userId)}`, "X-Filename": "notes.txt" },
    });
    return ((await res.json()) as { id: string }).id;
  };
  att10 = await up(10, CONV);
  att16 = await up(16, CONV_16);
});

afterAll(async () => {
  await svc?.stop();
});

// ---------------------------------------------------------------- REST

type Check = (body: unknown) => void;
interface RestRow {
  route: string; // "GET /conversations/:id", as app.routes names it
  path: string;
  /** POST rows send this body (an upload). */
  body?: Uint8Array<ArrayBuffer>;
  caller: CallerName;
  status: number;
  check?: Check;
}

const ids = (body: unknown) => (body as Array<{ id: string }>).map((x) => x.id).sort();
const PUBLIC_ROUTES: Array<[string, string]> = [
  ["GET /healthz", "/healthz"],
  ["GET /readyz", "/readyz"],
  // /metrics is public unless METRICS_TOKEN is set (rows for that below): it holds counts, no user data.
  ["GET /metrics", "/metrics"],
  // The API's own description: no data, same for everyone.
  ["GET /openapi.json", "/openapi.json"],
];

/** What each caller gets from each protected route; bad tokens all get 401. */
const uploaded = (b: unknown) =>
  expect(b).toMatchObject({ name: "file", mime: "text/plain", size: ATTACHMENT_BYTES.length });

const PROTECTED: Record<
  string,
  { path: string; body?: Uint8Array<ArrayBuffer>; answers: Partial<Record<CallerName, [number, Check?]>> }
> = {
  "POST /attachments": {
    path: `/attachments?conversation_id=${CONV}`,
    body: ATTACHMENT_BYTES,
    answers: { mentor: [201, uploaded], student: [201, uploaded], otherStudent: [404], otherMentor: [404] },
  },
  "GET /attachments/:id": {
    path: "/attachments/@att10",
    answers: {
      mentor: [200, (b) => expect(b).toBe("lesson notes\n")],
      student: [200, (b) => expect(b).toBe("lesson notes\n")],
      otherStudent: [404],
      otherMentor: [404],
    },
  },
  "GET /conversations": {
    path: "/conversations",
    answers: {
      mentor: [200, (b) => expect(ids(b)).toEqual([CONV, CONV_16].sort())],
      student: [200, (b) => expect(ids(b)).toEqual([CONV])],
      otherStudent: [200, (b) => expect(ids(b)).toEqual([CONV_16])],
      otherMentor: [200, (b) => expect(b).toEqual([])],
    },
  },
  "GET /conversations/:id": {
    path: `/conversations/${CONV}`,
    answers: {
      mentor: [200, (b) => expect((b as { id: string }).id).toBe(CONV)],
      student: [200, (b) => expect((b as { id: string }).id).toBe(CONV)],
      otherStudent: [404],
      otherMentor: [404],
    },
  },
  "GET /messages": {
    path: `/messages?conversation_id=${CONV}`,
    answers: {
      mentor: [200, (b) => expect(ids(b)).toEqual([msgFrom10, msgFrom15].sort())],
      student: [200, (b) => expect(ids(b)).toEqual([msgFrom10, msgFrom15].sort())],
      otherStudent: [404],
      otherMentor: [404],
    },
  },
  "GET /presence": {
    path: "/presence?user_id=15",
    answers: {
      mentor: [200, (b) => expect(typeof (b as { online: unknown }).online).toBe("boolean")],
      student: [200],
      otherStudent: [403],
      otherMentor: [403],
    },
  },
};

const restRows: RestRow[] = [];
for (const [route, path] of PUBLIC_ROUTES) {
  for (const caller of ALL_CALLERS) restRows.push({ route, path, caller, status: 200 });
}
for (const [route, { path, body, answers }] of Object.entries(PROTECTED)) {
  for (const caller of ALL_CALLERS) {
    const [status, check] = answers[caller] ?? [401];
    restRows.push({ route, path, caller, status, ...(body ? { body } : {}), ...(check ? { check } : {}) });
  }
}
// Attachments: each participant in their own conversation; ids that do not exist look the same.
restRows.push(
  {
    route: "POST /attachments",
    path: `/attachments?conversation_id=${CONV_16}`,
    body: ATTACHMENT_BYTES,
    caller: "otherStudent",
    status: 201,
  },
  {
    route: "POST /attachments",
    path: `/attachments?conversation_id=${CONV_16}`,
    body: ATTACHMENT_BYTES,
    caller: "student",
    status: 404,
  },
  {
    route: "POST /attachments",
    path: "/attachments?conversation_id=nope",
    body: ATTACHMENT_BYTES,
    caller: "mentor",
    status: 400,
  },
  { route: "GET /attachments/:id", path: "/attachments/@att16", caller: "otherStudent", status: 200 },
  { route: "GET /attachments/:id", path: "/attachments/@att16", caller: "mentor", status: 200 },
  { route: "GET /attachments/:id", path: "/attachments/@att16", caller: "student", status: 404 },
  {
    route: "GET /attachments/:id",
    path: "/attachments/65f0000000000000000000ff",
    caller: "mentor",
    status: 404,
  },
  { route: "GET /attachments/:id", path: "/attachments/nope", caller: "mentor", status: 400 },
);
// The original trusted query-string identities; here they may only repeat the token's user.
restRows.push(
  { route: "GET /conversations", path: "/conversations?user_id=15", caller: "mentor", status: 403 },
  { route: "GET /conversations", path: "/conversations?user_id=15", caller: "student", status: 200 },
  {
    route: "GET /conversations",
    path: "/conversations?mentor_id=10&student_id=15",
    caller: "otherMentor",
    status: 200,
    check: (b) => expect(b).toEqual([]), // filters narrow, never widen
  },
  {
    route: "GET /conversations",
    path: "/conversations?student_id=15",
    caller: "otherStudent",
    status: 200,
    check: (b) => expect(b).toEqual([]),
  },
  {
    route: "GET /conversations/:id",
    path: `/conversations/${CONV}?user_id=16`,
    caller: "student",
    status: 403,
  },
  {
    route: "GET /messages",
    path: `/messages?conversation_id=${CONV}&user_id=15`,
    caller: "otherStudent",
    status: 403,
  },
  {
    route: "GET /messages",
    path: `/messages?conversation_id=${CONV_16}&user_id=16`,
    caller: "otherStudent",
    status: 200,
  },
  { route: "GET /presence", path: "/presence?user_id=17", caller: "mentor", status: 403 },
  { route: "GET /presence", path: "/presence", caller: "mentor", status: 400 },
);

async function restCall(row: RestRow): Promise<Response> {
  const token = await tokenFor(row.caller);
  const path = row.path.replace("@att10", att10).replace("@att16", att16);
  return fetch(`${svc.url}${path}`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    ...(row.body ? { method: "POST", body: row.body } : {}),
  });
}

describe("REST authorisation matrix", () => {
  for (const row of restRows) {
    test(`${row.route} ${row.path} as ${row.caller} → ${row.status}`, async () => {
      const res = await restCall(row);
      const text = await res.text();
      expect({ status: res.status, body: text.slice(0, 300) }).toMatchObject({ status: row.status });
      if (row.route === "GET /metrics") return;
      if (row.route === "GET /attachments/:id" && row.status === 200) {
        expect(res.headers.get("x-content-type-options")).toBe("nosniff");
        return row.check?.(text);
      }
      const body = JSON.parse(text);
      if (row.status >= 400) {
        expect(body).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
        if (row.status === 401) expect(res.headers.get("www-authenticate")).toContain("Bearer");
      }
      row.check?.(body);
    });
  }

  test("every route the app serves has rows for every caller", () => {
    const served = svc.app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`);
    expect(served.length).toBeGreaterThan(0);
    for (const route of new Set(served)) {
      const callers = new Set(restRows.filter((r) => r.route === route).map((r) => r.caller));
      expect({ route, missing: ALL_CALLERS.filter((c) => !callers.has(c)) }).toEqual({ route, missing: [] });
    }
    // And no row names a route that no longer exists.
    for (const row of restRows) expect(served).toContain(row.route);
  });
});

describe("/metrics with METRICS_TOKEN", () => {
  let guarded: InProcessService;
  beforeAll(async () => {
    guarded = await startTestService({ env: { METRICS_TOKEN: "scrape-secret-123" } });
  });
  afterAll(async () => {
    await guarded?.stop();
  });
  const rows: Array<[string, Record<string, string>, number]> = [
    ["no token", {}, 401],
    ["a user's token", {}, 401],
    ["the wrong token", { Authorization: "Bearer scrape-secret-124" }, 401],
    ["the metrics token", { Authorization: "Bearer scrape-secret-123" }, 200],
  ];
  for (const [name, headers, status] of rows) {
    test(`${name} → ${status}`, async () => {
      const h = name === "a user's token" ? { Authorization: `Bearer ${await mintToken(10)}` } : headers;
      const res = await fetch(`${guarded.url}/metrics`, { headers: h });
      expect(res.status).toBe(status);
      if (status === 200) expect(await res.text()).toContain("chat_ws_connections");
      else expect((await res.json()).error.code).toBe("unauthorized");
    });
  }
});

// ---------------------------------------------------------------- WebSocket upgrade

type TokenVia = "query" | "header" | "subprotocol";
interface ConnectRow {
  caller: CallerName;
  query: Record<string, string | number>;
  via?: TokenVia;
  /** 101 opens: then the conversation it must land in. */
  status: number;
  conversation?: string;
}

const connectRows: ConnectRow[] = [
  // The mentor: any enrolled student of a lesson they teach, and only that.
  { caller: "mentor", query: { lesson_id: 5, student_id: 15 }, status: 101, conversation: CONV },
  { caller: "mentor", query: { lesson_id: 5, student_id: 15, user_id: 10 }, status: 101, conversation: CONV },
  { caller: "mentor", query: { lesson_id: 5, student_id: 16 }, status: 101, conversation: CONV_16 },
  { caller: "mentor", query: { lesson_id: 5 }, status: 400 },
  { caller: "mentor", query: { lesson_id: 5, student_id: 17 }, status: 403 },
  { caller: "mentor", query: { lesson_id: 6, student_id: 17 }, status: 403 },
  { caller: "mentor", query: { lesson_id: 999, student_id: 15 }, status: 404 },
  { caller: "mentor", query: { lesson_id: 5, student_id: 15, user_id: 15 }, status: 403 },
  // The student: only their own conversation, in a lesson they are enrolled in.
  { caller: "student", query: { lesson_id: 5 }, status: 101, conversation: CONV },
  {
    caller: "student",
    query: { lesson_id: 5, student_id: 15, user_id: 15 },
    status: 101,
    conversation: CONV,
  },
  { caller: "student", query: { lesson_id: 5 }, via: "header", status: 101, conversation: CONV },
  { caller: "student", query: { lesson_id: 5 }, via: "subprotocol", status: 101, conversation: CONV },
  { caller: "student", query: { lesson_id: 5, student_id: 16 }, status: 403 },
  { caller: "student", query: { lesson_id: 5, user_id: 10 }, status: 403 },
  { caller: "student", query: { lesson_id: 6 }, status: 403 },
  { caller: "student", query: { lesson_id: 5, since: "nope" }, status: 400 },
  { caller: "student", query: { lesson_id: "5; DROP TABLE" }, status: 400 },
  { caller: "student", query: {}, status: 400 },
  // Another student of the lesson lands in their own conversation, never in 15's.
  { caller: "otherStudent", query: { lesson_id: 5 }, status: 101, conversation: CONV_16 },
  { caller: "otherStudent", query: { lesson_id: 5, student_id: 15 }, status: 403 },
  { caller: "otherStudent", query: { lesson_id: 5, user_id: 15 }, status: 403 },
  // A mentor of another lesson.
  { caller: "otherMentor", query: { lesson_id: 5, student_id: 15 }, status: 403 },
  { caller: "otherMentor", query: { lesson_id: 6, student_id: 15 }, status: 403 },
];
for (const caller of BAD_CALLERS) {
  for (const via of ["query", "header", "subprotocol"] as TokenVia[]) {
    if (caller === "noToken" && via !== "query") continue;
    connectRows.push({ caller, query: { lesson_id: 5 }, via, status: 401 });
  }
  connectRows.push({ caller, query: { lesson_id: 5, student_id: 15, user_id: 10 }, status: 401 });
}

async function connectArgs(row: ConnectRow) {
  const token = await tokenFor(row.caller);
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(row.query)) params.set(k, String(v));
  const headers: Record<string, string> = {};
  const via = row.via ?? "query";
  if (token && via === "query") params.set("token", token);
  if (token && via === "header") headers.Authorization = `Bearer ${token}`;
  if (token && via === "subprotocol") headers["Sec-WebSocket-Protocol"] = `bearer, ${token}`;
  return { path: `/ws?${params}`, headers, token, via };
}

describe("WebSocket upgrade matrix", () => {
  for (const row of connectRows) {
    const name = `${row.caller} ${JSON.stringify(row.query)} token via ${row.via ?? "query"} → ${row.status}`;
    test(name, async () => {
      const { path, headers, token, via } = await connectArgs(row);
      const answer = await rawUpgrade(port, path, headers);
      expect({ status: answer.status, body: answer.body }).toMatchObject({ status: row.status });
      if (row.status !== 101) {
        expect(JSON.parse(answer.body)).toEqual({
          error: { code: expect.any(String), message: expect.any(String) },
        });
        return;
      }
      if (via === "subprotocol") expect(answer.headers["sec-websocket-protocol"]).toBe("bearer");
      // Open it for real and check where it landed.
      const url = `${svc.wsUrl}${path.slice(3)}`;
      const init =
        via === "subprotocol"
          ? { protocols: ["bearer", token!] }
          : via === "header"
            ? { headers }
            : undefined;
      const sock = await TestSocket.open(url, init);
      const ready = await sock.next("ready");
      expect(ready.conversation_id).toBe(row.conversation!);
      if (via === "subprotocol") expect(sock.ws.protocol).toBe("bearer");
      sock.close();
    });
  }

  test("a plain GET /ws (no upgrade) → 400 with the error shape", async () => {
    const res = await fetch(`${svc.url}/ws?lesson_id=5&token=${await mintToken(15)}`);
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe("bad_request");
  });

  test("every caller has upgrade rows, and every token transport is tried", () => {
    for (const caller of ALL_CALLERS) expect(connectRows.some((r) => r.caller === caller)).toBe(true);
    for (const via of ["query", "header", "subprotocol"]) {
      expect(connectRows.some((r) => (r.via ?? "query") === via && r.status === 101)).toBe(true);
      expect(connectRows.some((r) => (r.via ?? "query") === via && r.status === 401)).toBe(true);
    }
  });
});

// ---------------------------------------------------------------- inbound frames

interface FrameRow {
  type: (typeof INBOUND_TYPES)[number];
  name: string;
  as: "mentor" | "student";
  frame: () => Promise<unknown> | unknown;
  /** What the sender gets back (an error code, or a frame type); `null` means nothing. */
  reply: { error: string } | { type: string } | null;
  /** What the other participant gets (a frame type), if anything. */
  peer?: string;
  /** The server closes the sender's socket with this code. */
  closes?: number;
}

const frameRows: FrameRow[] = [
  {
    type: "message",
    name: "valid",
    as: "student",
    frame: () => ({ type: "message", text: "hi" }),
    reply: { type: "ack" },
    peer: "message",
  },
  {
    type: "message",
    name: "valid",
    as: "mentor",
    frame: () => ({ type: "message", text: "hello", client_id: "m-1" }),
    reply: { type: "ack" },
    peer: "message",
  },
  {
    type: "message",
    name: "blank",
    as: "student",
    frame: () => ({ type: "message", text: "   " }),
    reply: { error: "empty" },
  },
  {
    type: "message",
    name: "too long",
    as: "mentor",
    frame: () => ({ type: "message", text: "x".repeat(4001) }),
    reply: { error: "too_long" },
  },
  {
    type: "message",
    name: "text not a string",
    as: "student",
    frame: () => ({ type: "message", text: 5 }),
    reply: { error: "bad_frame" },
  },
  {
    type: "message",
    name: "sender_id smuggled in",
    as: "student",
    frame: () => ({ type: "message", text: "x", sender_id: 10 }),
    reply: { error: "bad_frame" },
  },
  {
    type: "message",
    name: "conversation_id smuggled in",
    as: "mentor",
    frame: () => ({ type: "message", text: "x", conversation_id: CONV_16 }),
    reply: { error: "bad_frame" },
  },
  {
    type: "typing",
    name: "valid",
    as: "student",
    frame: () => ({ type: "typing", is_typing: true }),
    reply: null,
    peer: "typing",
  },
  {
    type: "typing",
    name: "valid",
    as: "mentor",
    frame: () => ({ type: "typing", is_typing: false }),
    reply: null,
    peer: "typing",
  },
  {
    type: "typing",
    name: "not a boolean",
    as: "student",
    frame: () => ({ type: "typing", is_typing: "yes" }),
    reply: { error: "bad_frame" },
  },
  {
    type: "viewed",
    name: "the other's message",
    as: "student",
    frame: () => ({ type: "viewed", message_id: msgFrom10 }),
    reply: { type: "viewed" },
    peer: "viewed",
  },
  {
    type: "viewed",
    name: "the other's message",
    as: "mentor",
    frame: () => ({ type: "viewed", message_id: msgFrom15 }),
    reply: { type: "viewed" },
    peer: "viewed",
  },
  {
    type: "viewed",
    name: "own message",
    as: "mentor",
    frame: () => ({ type: "viewed", message_id: msgFrom10 }),
    reply: { error: "forbidden" },
  },
  {
    type: "viewed",
    name: "own message",
    as: "student",
    frame: () => ({ type: "viewed", message_id: msgFrom15 }),
    reply: { error: "forbidden" },
  },
  {
    type: "viewed",
    name: "a message of another conversation",
    as: "mentor",
    frame: () => ({ type: "viewed", message_id: msgIn16 }),
    reply: { error: "not_found" },
  },
  {
    type: "viewed",
    name: "not an id",
    as: "student",
    frame: () => ({ type: "viewed", message_id: "../../etc" }),
    reply: { error: "bad_frame" },
  },
  {
    type: "auth",
    name: "fresh token, same user",
    as: "student",
    frame: () => mintToken(15).then((token) => ({ type: "auth", token })),
    reply: { type: "auth_ok" },
  },
  {
    type: "auth",
    name: "fresh token, same user",
    as: "mentor",
    frame: () => mintToken(10).then((token) => ({ type: "auth", token })),
    reply: { type: "auth_ok" },
  },
  {
    type: "auth",
    name: "empty token",
    as: "student",
    frame: () => ({ type: "auth", token: "" }),
    reply: { error: "bad_frame" },
  },
  { type: "ping", name: "valid", as: "student", frame: () => ({ type: "ping" }), reply: { type: "pong" } },
  { type: "ping", name: "valid", as: "mentor", frame: () => ({ type: "ping" }), reply: { type: "pong" } },
  {
    type: "ping",
    name: "extra field",
    as: "mentor",
    frame: () => ({ type: "ping", user_id: 11 }),
    reply: { error: "bad_frame" },
  },
];
for (const caller of BAD_CALLERS.filter((c) => c !== "noToken")) {
  frameRows.push({
    type: "auth",
    name: `${caller} token`,
    as: "student",
    frame: () => tokenFor(caller).then((token) => ({ type: "auth", token })),
    reply: { error: "unauthorized" },
  });
}
for (const other of ["mentor", "otherStudent", "otherMentor"] as CallerName[]) {
  frameRows.push({
    type: "auth",
    name: `a valid token of ${other} (another user)`,
    as: other === "mentor" ? "student" : "mentor",
    frame: () => tokenFor(other).then((token) => ({ type: "auth", token })),
    reply: { error: "forbidden" },
    closes: 1008,
  });
}

describe("inbound frame matrix (mentor and student in conversation (5, 10, 15))", () => {
  // A bystander in another conversation of the same lesson, (5, 10, 16), must hear none of it.
  // All it may get is its own snapshot on connect: the presence of its mentor, 10. Nobody else
  // joins or leaves (5, 10, 16) while the rows run, so any later presence frame is a leak.
  let bystander: TestSocket;
  let snapshot: Frame;
  beforeAll(async () => {
    bystander = await svc.connect(16, { lesson_id: 5 });
    await bystander.next("ready");
    snapshot = await bystander.next((f) => f.type === "presence" && f.user_id === 10);
  });
  afterAll(() => bystander?.close());

  for (const row of frameRows) {
    test(`${row.type}: ${row.name} as ${row.as}`, async () => {
      const me = row.as === "mentor" ? 10 : 15;
      const peerId = me === 10 ? 15 : 10;
      const sender = await svc.connect(me, { lesson_id: 5, student_id: 15 });
      const peer = await svc.connect(peerId, { lesson_id: 5, student_id: 15 });
      await Promise.all([sender.next("ready"), peer.next("ready")]);
      // Settle the presence chatter before the frame under test.
      await sender.next((f) => f.type === "presence" && f.online === true);
      sender.send(await row.frame());
      if (row.reply && "error" in row.reply) {
        const err = await sender.next("error");
        expect({ code: err.code, message: typeof err.message }).toEqual({
          code: row.reply.error,
          message: "string",
        });
      } else if (row.reply) {
        await sender.next(row.reply.type);
      }
      if (row.closes) {
        expect((await sender.closedWith()).code).toBe(row.closes);
      } else {
        // The connection stays usable after any refusal.
        sender.send({ type: "ping" });
        await sender.next("pong");
        if (!row.reply) expect(sender.all("error")).toEqual([]);
      }
      if (row.peer) {
        const got = await peer.next(row.peer);
        if (got.conversation_id !== undefined) expect(got.conversation_id).toBe(CONV);
      }
      sender.close();
      peer.close();
    });
  }

  test("the bystander heard nothing from the conversation", async () => {
    bystander.send({ type: "ping" });
    await bystander.next("pong");
    // Presence frames carry no conversation_id, so they are caught by type.
    const leaked = bystander.frames.filter(
      (f: Frame) =>
        f !== snapshot &&
        (["message", "typing", "viewed", "presence"].includes(f.type) || f.conversation_id === CONV),
    );
    expect(leaked).toEqual([]);
  });

  test("every inbound frame type has rows for both participants", () => {
    for (const type of INBOUND_TYPES) {
      const callers = new Set(frameRows.filter((r) => r.type === type).map((r) => r.as));
      expect({ type, callers: [...callers].sort() }).toEqual({ type, callers: ["mentor", "student"] });
    }
  });

  test("callers who are not participants never get a socket to send frames on", async () => {
    for (const caller of ALL_CALLERS.filter((c) => c !== "mentor" && c !== "student")) {
      const token = await tokenFor(caller);
      const q = new URLSearchParams({ lesson_id: "5", student_id: "15", ...(token ? { token } : {}) });
      const answer = await rawUpgrade(port, `/ws?${q}`);
      expect({ caller, status: answer.status }).toEqual({
        caller,
        status: caller === "otherStudent" || caller === "otherMentor" ? 403 : 401,
      });
    }
  });
});
