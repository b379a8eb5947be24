import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestService, type TestService, UNTHROTTLED } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";
import { waitUntil } from "../helpers/wait.ts";

/** Every REST route, over real HTTP, seeing only the caller's data. */

type Msg = {
  id: string;
  conversation_id: string;
  sender_id: number;
  text: string;
  created_at: string;
  viewed_by?: number;
};
type Conv = {
  id: string;
  lesson_id: number;
  mentor_id: number;
  student_id: number;
  created_at: string;
  last_message: Msg | null;
  unread_count: number;
};

let svc: TestService;
let conv15: string; // mentor 10 ↔ student 15, lesson 5
let conv16: string; // mentor 10 ↔ student 16, lesson 5
const ids: string[] = [];

const json = async <T>(path: string, user?: number, init?: RequestInit) => {
  const res = await svc.get(path, user, init);
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
};

beforeAll(async () => {
  svc = await startTestService({
    env: UNTHROTTLED,
  });
  const m = await svc.connect(10, { lesson_id: 5, student_id: 15 });
  conv15 = String((await m.next("ready")).conversation_id);
  for (let i = 0; i < 120; i++) {
    m.send({ type: "message", text: `m${i}` });
    ids.push(String((await m.next("ack")).id));
  }
  m.close();
  const s16 = await svc.connect(16, { lesson_id: 5 });
  conv16 = String((await s16.next("ready")).conversation_id);
  await Bun.sleep(2); // a later activity time for conv16
  s16.send({ type: "message", text: "hello from 16" });
  await s16.next("ack");
  s16.close();
});
afterAll(async () => {
  await svc.stop();
});

describe("GET /conversations", () => {
  test("the caller's conversations, newest activity first, with last_message and unread_count", async () => {
    const { status, body } = await json<Conv[]>("/conversations", 10);
    expect(status).toBe(200);
    expect(body.map((c) => c.id)).toEqual([conv16, conv15]);
    const c15 = body[1]!;
    expect(c15).toMatchObject({ lesson_id: 5, mentor_id: 10, student_id: 15, unread_count: 0 });
    expect(c15.last_message?.id).toBe(ids[119]);
    expect(body[0]!.unread_count).toBe(1); // 16 wrote to 10
  });

  test("the student sees only their own, with their unread count", async () => {
    const { body } = await json<Conv[]>("/conversations", 15);
    expect(body.map((c) => c.id)).toEqual([conv15]);
    expect(body[0]!.unread_count).toBe(120);
    expect((await json<Conv[]>("/conversations", 17)).body).toEqual([]);
  });

  test("filters narrow, never widen", async () => {
    expect((await json<Conv[]>("/conversations?student_id=15", 10)).body.map((c) => c.id)).toEqual([conv15]);
    expect((await json<Conv[]>("/conversations?lesson_id=6", 10)).body).toEqual([]);
    // A student filtering by another mentor or student gets nothing, not their data.
    expect((await json<Conv[]>("/conversations?mentor_id=11", 15)).body).toEqual([]);
    expect((await json<Conv[]>("/conversations?student_id=16", 15)).body).toEqual([]);
    expect((await json<Conv[]>("/conversations?mentor_id=10", 15)).body.map((c) => c.id)).toEqual([conv15]);
  });

  test("a user_id that disagrees with the token is refused; an agreeing one is fine", async () => {
    expect((await json("/conversations?user_id=16", 15)).status).toBe(403);
    expect((await json("/conversations?user_id=15", 15)).status).toBe(200);
  });

  test("bad filters are 400 naming the field", async () => {
    const { status, body } = await json<{ error: { code: string; message: string } }>(
      "/conversations?mentor_id=abc",
      10,
    );
    expect(status).toBe(400);
    expect(body.error.message).toContain("mentor_id");
  });
});

describe("GET /conversations/{id}", () => {
  test("a participant gets it", async () => {
    const { status, body } = await json<Conv>(`/conversations/${conv15}`, 15);
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: conv15, mentor_id: 10, student_id: 15 });
    expect(body.unread_count).toBe(120);
  });
  test("anyone else gets 404, as if it did not exist", async () => {
    expect((await json(`/conversations/${conv15}`, 16)).status).toBe(404);
    expect((await json(`/conversations/${conv15}`, 11)).status).toBe(404);
    expect((await json(`/conversations/${"0".repeat(24)}`, 10)).status).toBe(404);
  });
  test("a malformed id is 400", async () => {
    expect((await json("/conversations/not-an-id", 10)).status).toBe(400);
  });
});

describe("GET /messages", () => {
  test("latest page by default (50), in time order, seed's array shape", async () => {
    const { status, body } = await json<Msg[]>(`/messages?conversation_id=${conv15}`, 15);
    expect(status).toBe(200);
    expect(Array.isArray(body)).toBe(true);
    expect(body.map((m) => m.id)).toEqual(ids.slice(70));
    expect(body[0]).toMatchObject({ conversation_id: conv15, sender_id: 10, text: "m70" });
  });

  test("before walks back to the start without gap or overlap", async () => {
    const seen: string[] = [];
    let before: string | undefined;
    for (;;) {
      const q = `/messages?conversation_id=${conv15}&limit=33${before ? `&before=${before}` : ""}`;
      const page = (await json<Msg[]>(q, 10)).body;
      if (page.length === 0) break;
      seen.unshift(...page.map((m) => m.id));
      before = page[0]!.id;
    }
    expect(seen).toEqual(ids);
  });

  test("after walks forward; after+before is a window", async () => {
    const page = (await json<Msg[]>(`/messages?conversation_id=${conv15}&after=${ids[9]}&limit=5`, 10)).body;
    expect(page.map((m) => m.id)).toEqual(ids.slice(10, 15));
    const window = (
      await json<Msg[]>(`/messages?conversation_id=${conv15}&after=${ids[9]}&before=${ids[12]}`, 10)
    ).body;
    expect(window.map((m) => m.id)).toEqual(ids.slice(10, 12));
    const end = (await json<Msg[]>(`/messages?conversation_id=${conv15}&after=${ids[119]}`, 10)).body;
    expect(end).toEqual([]);
  });

  test.each([
    ["limit=0", "limit"],
    ["limit=201", "limit"],
    ["limit=x", "limit"],
    ["before=123", "before"],
  ])("%s is 400 naming %s", async (q, field) => {
    const { status, body } = await json<{ error: { message: string } }>(
      `/messages?conversation_id=${conv15}&${q}`,
      10,
    );
    expect(status).toBe(400);
    expect(body.error.message).toContain(field);
  });

  test("conversation_id is required", async () => {
    expect((await json("/messages", 10)).status).toBe(400);
  });

  test("a conversation you are not in is 404, for a student and for another mentor", async () => {
    expect((await json(`/messages?conversation_id=${conv15}`, 16)).status).toBe(404);
    expect((await json(`/messages?conversation_id=${conv15}`, 11)).status).toBe(404);
  });

  test("user_id that disagrees with the token is 403", async () => {
    expect((await json(`/messages?conversation_id=${conv15}&user_id=10`, 15)).status).toBe(403);
  });
});

describe("GET /presence", () => {
  test("for someone you share a conversation with", async () => {
    // 16 closed its socket in beforeAll; it leaves presence after PRESENCE_OFFLINE_DELAY_MS.
    await waitUntil(async () => !(await json<{ online: boolean }>("/presence?user_id=16", 10)).body.online, {
      message: "16 offline",
    });
    const seen = await json<{ online: boolean; last_seen?: string }>("/presence?user_id=16", 10);
    expect(seen.status).toBe(200);
    expect(seen.body.online).toBe(false);
    expect(Date.parse(String(seen.body.last_seen))).not.toBeNaN();
    // 15 has never connected: offline, and no last_seen to report.
    expect((await json("/presence?user_id=15", 10)).body).toEqual({ online: false });
  });
  test("not for strangers", async () => {
    expect((await json("/presence?user_id=16", 15)).status).toBe(403);
    expect((await json("/presence?user_id=17", 10)).status).toBe(403);
  });
  test("user_id is required", async () => {
    expect((await json("/presence", 10)).status).toBe(400);
  });
});

describe("authentication on every route", () => {
  const routes = [
    "/conversations",
    `/conversations/${"a".repeat(24)}`,
    `/messages?conversation_id=${"a".repeat(24)}`,
    "/presence?user_id=10",
  ];
  test.each(routes)("%s without a token is 401", async (path) => {
    const res = await fetch(`${svc.url}${path}`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain("Bearer");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
  });
  test.each(routes)("%s with a bad or expired token is 401", async (path) => {
    for (const token of [
      "nope",
      await mintToken(10, { secret: "y".repeat(40) }),
      await mintToken(10, { expiresInS: -60 }),
    ]) {
      const res = await fetch(`${svc.url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
      expect(res.status).toBe(401);
    }
  });
});

describe("operations", () => {
  test("/healthz, /readyz, /metrics", async () => {
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
    const ready = (await (await fetch(`${svc.url}/readyz`)).json()) as {
      ready: boolean;
      checks: Record<string, { ok: boolean }>;
    };
    expect(ready.ready).toBe(true);
    expect(ready.checks.sqlite!.ok).toBe(true);
    const metrics = await (await fetch(`${svc.url}/metrics`)).text();
    expect(metrics).toContain("chat_messages_in_total 121");
    expect(metrics).toContain("chat_ack_latency_seconds_count 121");
    expect(metrics).toContain("# TYPE chat_ws_connections gauge");
  });
  test("unknown routes are JSON 404", async () => {
    const res = await fetch(`${svc.url}/nope`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });
});
