import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestService, type TestService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";
import { TestSocket } from "../helpers/ws-client.ts";

/** The WebSocket contract end to end: real server, real sockets, temp SQLite file. */

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService();
});
afterAll(async () => {
  await svc.stop();
});

const mentor = (extra: Record<string, string | number> = {}) =>
  svc.connect(10, { lesson_id: 5, student_id: 15, ...extra });
const student = (extra: Record<string, string | number> = {}) => svc.connect(15, { lesson_id: 5, ...extra });

describe("chat", () => {
  test("mentor and student chat both ways; the sender gets an ack and the echo", async () => {
    const m = await mentor();
    const s = await student();
    const ready = await m.next("ready");
    expect(ready.conversation_id).toBe((await s.next("ready")).conversation_id);

    m.send({ type: "message", text: "  Hello Sam  ", client_id: "m-1" });
    const ack = await m.next("ack");
    expect(ack).toMatchObject({ client_id: "m-1" });
    expect(ack.id).toMatch(/^[0-9a-f]{24}$/);
    const echo = await m.next("message");
    const got = await s.next("message");
    for (const f of [echo, got]) {
      expect(f).toMatchObject({
        id: ack.id,
        sender_id: 10,
        text: "Hello Sam",
        conversation_id: ready.conversation_id,
      });
      expect(f.created_at).toBe(ack.created_at);
    }

    s.send({ type: "message", text: "Hi!" });
    const sAck = await s.next("ack");
    expect(sAck.client_id).toBeUndefined();
    expect(await m.next("message")).toMatchObject({ id: sAck.id, sender_id: 15, text: "Hi!" });
    m.close();
    s.close();
  });

  test("typing reaches only the other side", async () => {
    const m = await mentor();
    const s = await student();
    await m.next("ready");
    s.send({ type: "typing", is_typing: true });
    expect(await m.next("typing")).toMatchObject({ sender_id: 15, is_typing: true });
    // A ping round trip on the sender proves the typing frame would have arrived by now.
    s.send({ type: "ping" });
    await s.next("pong");
    await Bun.sleep(50);
    expect(s.all("typing")).toHaveLength(0);
    m.close();
    s.close();
  });

  test("viewed marks up to a message, only from the other side, and is broadcast", async () => {
    const m = await mentor();
    const s = await student();
    const ids: string[] = [];
    for (const text of ["one", "two", "three"]) {
      m.send({ type: "message", text });
      ids.push(String((await m.next("ack")).id));
    }
    s.send({ type: "viewed", message_id: ids[1] });
    const receipt = await m.next("viewed");
    expect(receipt).toMatchObject({ message_id: ids[1], viewer_id: 15 });
    expect(Date.parse(String(receipt.viewed_at))).not.toBeNaN();
    await s.next("viewed");

    const conversationId = String((await m.next("ready")).conversation_id);
    const page = (await (
      await svc.get(`/messages?conversation_id=${conversationId}&limit=200`, 15)
    ).json()) as Array<{
      id: string;
      viewed_by?: number;
    }>;
    const byId = new Map(page.map((p) => [p.id, p]));
    expect(byId.get(ids[0]!)?.viewed_by).toBe(15);
    expect(byId.get(ids[1]!)?.viewed_by).toBe(15);
    expect(byId.get(ids[2]!)?.viewed_by).toBeUndefined();

    // The sender cannot mark their own message; an unknown id is not found.
    m.send({ type: "viewed", message_id: ids[2] });
    expect(await m.next("error")).toMatchObject({ code: "forbidden", ref: ids[2] });
    m.send({ type: "viewed", message_id: "0".repeat(24) });
    expect(await m.next("error")).toMatchObject({ code: "not_found" });
    m.close();
    s.close();
  });

  test("presence on connect and disconnect", async () => {
    // Lesson 6 (mentor 11, student 17) is used by no other test, so nobody else is online.
    const s = await svc.connect(17, { lesson_id: 6 });
    expect(await s.next("presence")).toMatchObject({ user_id: 11, online: false });
    const m = await svc.connect(11, { lesson_id: 6, student_id: 17 });
    expect(await m.next("presence")).toMatchObject({ user_id: 17, online: true });
    expect(await s.next((f) => f.type === "presence" && f.online === true)).toMatchObject({ user_id: 11 });
    m.close();
    const offline = await s.next((f) => f.type === "presence" && f.online === false);
    expect(offline.user_id).toBe(11);
    expect(Date.parse(String(offline.last_seen))).not.toBeNaN();
    const rest = (await (await svc.get("/presence?user_id=11", 17)).json()) as {
      online: boolean;
      last_seen: string;
    };
    expect(rest.online).toBe(false);
    expect(rest.last_seen).toBe(String(offline.last_seen));
    s.close();
  });

  test("resume with since: no gap, no duplicate", async () => {
    const m = await svc.connect(10, { lesson_id: 5, student_id: 16 });
    let s = await svc.connect(16, { lesson_id: 5 });
    m.send({ type: "message", text: "before" });
    await m.next("ack");
    const first = await s.next("message");
    s.close();
    const sent: string[] = [];
    for (let i = 0; i < 30; i++) {
      m.send({ type: "message", text: `while away ${i}` });
      sent.push(String((await m.next("ack")).id));
    }
    s = await svc.connect(16, { lesson_id: 5, since: String(first.id) });
    // Sent while the resume is being read: must arrive live, once, after the backlog.
    m.send({ type: "message", text: "live" });
    sent.push(String((await m.next("ack")).id));
    const received: string[] = [];
    while (received.length < sent.length) received.push(String((await s.next("message")).id));
    expect(received).toEqual(sent);
    s.send({ type: "ping" });
    await s.next("pong");
    expect(s.all("message")).toHaveLength(sent.length);
    m.close();
    s.close();
  });

  test("the same client_id twice stores one message and acks both with one id", async () => {
    const m = await mentor();
    const s = await student();
    m.send({ type: "message", text: "once", client_id: "dup-1" });
    m.send({ type: "message", text: "once", client_id: "dup-1" });
    const a1 = await m.next("ack");
    const a2 = await m.next("ack");
    expect(a2.id).toBe(a1.id);
    expect(a2.duplicate).toBe(true);
    // Again after a reconnect, as a client resending an unacked message would.
    m.close();
    const m2 = await mentor();
    m2.send({ type: "message", text: "once", client_id: "dup-1" });
    expect((await m2.next("ack")).id).toBe(a1.id);
    const convId = String((await m2.next("ready")).conversation_id);
    const page = (await (
      await svc.get(`/messages?conversation_id=${convId}&limit=200`, 10)
    ).json()) as Array<{
      client_id?: string;
    }>;
    expect(page.filter((p) => p.client_id === "dup-1")).toHaveLength(1);
    s.send({ type: "ping" });
    await s.next("pong");
    expect(s.all("message").filter((f) => f.client_id === "dup-1")).toHaveLength(1);
    m2.close();
    s.close();
  });

  test("a fresh token in an auth frame keeps the connection; another user's is refused", async () => {
    const m = await mentor();
    m.send({ type: "auth", token: await mintToken(10) });
    expect(Date.parse(String((await m.next("auth_ok")).expires_at))).toBeGreaterThan(Date.now());
    m.send({ type: "auth", token: "garbage" });
    expect(await m.next("error")).toMatchObject({ code: "unauthorized" });
    m.send({ type: "auth", token: await mintToken(15) });
    expect(await m.next("error")).toMatchObject({ code: "forbidden" });
    expect((await m.closedWith()).code).toBe(1008);
  });
});

describe("bad frames get an error frame and the connection survives", () => {
  const cases: Array<[string, unknown, string]> = [
    ["not JSON", "{nope", "bad_json"],
    ["a JSON string", '"hello"', "unknown_type"],
    ["null", "null", "unknown_type"],
    ["an array", "[1,2]", "unknown_type"],
    ["unknown type", { type: "shout", text: "x" }, "unknown_type"],
    ["missing type", { text: "x" }, "unknown_type"],
    // text became optional with attachments (docs/attachments.md): a message with neither is empty.
    ["message without text or attachments", { type: "message" }, "empty"],
    ["attachments that are not ids", { type: "message", attachments: ["x"] }, "bad_frame"],
    ["text of the wrong type", { type: "message", text: 42 }, "bad_frame"],
    ["empty text", { type: "message", text: "   " }, "empty"],
    ["too long", { type: "message", text: "x".repeat(4001) }, "too_long"],
    ["bad client_id", { type: "message", text: "x", client_id: "" }, "bad_frame"],
    ["extra field", { type: "message", text: "x", admin: true }, "bad_frame"],
    ["typing without flag", { type: "typing" }, "bad_frame"],
    ["typing with a string", { type: "typing", is_typing: "yes" }, "bad_frame"],
    ["viewed with a bad id", { type: "viewed", message_id: "123" }, "bad_frame"],
    ["viewed without id", { type: "viewed" }, "bad_frame"],
    ["auth without token", { type: "auth" }, "bad_frame"],
  ];
  test.each(cases)("%s", async (_name, frame, code) => {
    const m = await mentor();
    await m.next("ready");
    m.send(frame);
    const err = await m.next("error");
    expect(err.code).toBe(code);
    expect(typeof err.message).toBe("string");
    m.send({ type: "message", text: "still here" });
    expect((await m.next("ack")).id).toMatch(/^[0-9a-f]{24}$/);
    m.close();
  });

  test("binary frames are refused with an error", async () => {
    const m = await mentor();
    m.ws.send(new Uint8Array([1, 2, 3]));
    expect(await m.next("error")).toMatchObject({ code: "bad_frame" });
    m.close();
  });
});

describe("connect refusals", () => {
  const refused = async (url: string, init?: RequestInit) => {
    const res = await fetch(url, {
      ...init,
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        ...init?.headers,
      },
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    return { status: res.status, body };
  };
  const ws = (q: Record<string, string | number>) =>
    `${svc.url}/ws?${new URLSearchParams(q as Record<string, string>)}`;

  test.each([
    ["no token", async () => ({ lesson_id: 5, student_id: 15 }), 401],
    [
      "bad signature",
      async () => ({ lesson_id: 5, token: await mintToken(15, { secret: "x".repeat(32) }) }),
      401,
    ],
    ["expired", async () => ({ lesson_id: 5, token: await mintToken(15, { expiresInS: -120 }) }), 401],
    [
      "refresh token",
      async () => ({ lesson_id: 5, token: await mintToken(15, { tokenType: "refresh" }) }),
      401,
    ],
    ["unknown lesson", async () => ({ lesson_id: 99, token: await mintToken(15) }), 404],
    ["wrong lesson for the student", async () => ({ lesson_id: 6, token: await mintToken(15) }), 403],
    [
      "mentor of another lesson",
      async () => ({ lesson_id: 5, student_id: 15, token: await mintToken(11) }),
      403,
    ],
    ["mentor without student_id", async () => ({ lesson_id: 5, token: await mintToken(10) }), 400],
    [
      "mentor naming a student not enrolled",
      async () => ({ lesson_id: 5, student_id: 17, token: await mintToken(10) }),
      403,
    ],
    [
      "student opening another student's conversation",
      async () => ({ lesson_id: 5, student_id: 16, token: await mintToken(15) }),
      403,
    ],
    [
      "user_id that disagrees with the token",
      async () => ({ lesson_id: 5, user_id: 16, token: await mintToken(15) }),
      403,
    ],
    ["lesson_id not a number", async () => ({ lesson_id: "five", token: await mintToken(15) }), 400],
    ["bad since", async () => ({ lesson_id: 5, since: "zzz", token: await mintToken(15) }), 400],
  ])("%s → %d", async (_name, query, status) => {
    const r = await refused(ws(await query()));
    expect(r.status).toBe(status);
    expect(r.body.error.message.length).toBeGreaterThan(0);
  });

  test("a user_id that agrees with the token is accepted (seed clients send it)", async () => {
    const s = await svc.connect(15, { lesson_id: 5, user_id: 15 });
    expect((await s.next("ready")).user_id).toBe(15);
    s.close();
  });

  test("token from the Authorization header or the bearer subprotocol", async () => {
    const token = await mintToken(15);
    const viaHeader = await TestSocket.open(`${svc.wsUrl}?lesson_id=5`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect((await viaHeader.next("ready")).user_id).toBe(15);
    const viaProtocol = await TestSocket.open(`${svc.wsUrl}?lesson_id=5`, { protocols: ["bearer", token] });
    expect(viaProtocol.ws.protocol).toBe("bearer");
    expect((await viaProtocol.next("ready")).user_id).toBe(15);
    viaHeader.close();
    viaProtocol.close();
  });
});
