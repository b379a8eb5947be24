import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ChatClient, type ChatClientOptions, ChatError, type Message } from "../../src/client/index.ts";
import { startTestService, type TestService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";

/** The SDK against the real service over real sockets: send/ack, events, history, errors. */

let svc: TestService;
const clients: ChatClient[] = [];

beforeAll(async () => {
  svc = await startTestService({ env: { MAX_MESSAGE_CHARS: "50" } });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  await svc.stop();
});

function client(userId: number, opts: Partial<ChatClientOptions> = {}): ChatClient {
  const c = new ChatClient({
    url: svc.url,
    token: () => mintToken(userId),
    lessonId: 5,
    studentId: 15,
    ...opts,
  });
  clients.push(c);
  return c;
}

/** Resolves when `pred` holds, re-checked on every event of `type`; fails with what it saw. */
function waitFor<T>(
  c: ChatClient,
  type: "message" | "typing" | "viewed" | "presence",
  pred: (v: T) => boolean,
) {
  const seen: T[] = [];
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching ${type} event in 10 s; saw ${JSON.stringify(seen)}`));
    }, 10_000);
    const off = c.on(type, (v) => {
      seen.push(v as T);
      if (pred(v as T)) {
        clearTimeout(timer);
        off();
        resolve(v as T);
      }
    });
  });
}

describe("ChatClient", () => {
  test("connects with the bearer subprotocol, sends, acks, and the peer receives it once", async () => {
    const mentor = client(10);
    const student = client(15, { studentId: undefined });
    const [readyM, readyS] = await Promise.all([mentor.connect(), student.connect()]);
    expect(readyM.conversation_id).toBe(readyS.conversation_id);
    expect(readyS).toMatchObject({ user_id: 15, mentor_id: 10, student_id: 15, lesson_id: 5 });

    const got: Message[] = [];
    mentor.on("message", (m) => got.push(m));
    const arrived = waitFor<Message>(mentor, "message", (m) => m.text === "hello from the SDK");
    const ack = await student.send("hello from the SDK");
    const m = await arrived;
    expect(ack.id).toBe(m.id);
    expect(ack.client_id).toBe(m.client_id!);
    expect(m.sender_id).toBe(15);
    await Bun.sleep(100);
    expect(got.filter((x) => x.id === m.id)).toHaveLength(1);
  });

  test("typing is debounced, viewed and presence arrive as events", async () => {
    const mentor = client(10);
    const student = client(15, { studentId: undefined, typingIdleMs: 200 });
    await mentor.connect();
    const typingFrames: boolean[] = [];
    mentor.on("typing", (t) => typingFrames.push(t.is_typing));
    const online = waitFor<{ user_id: number; online: boolean }>(mentor, "presence", (p) => p.online);
    await student.connect();
    expect((await online).user_id).toBe(15);

    const stopped = waitFor<{ is_typing: boolean }>(mentor, "typing", (t) => !t.is_typing);
    for (let i = 0; i < 5; i++) student.typing(); // five keystrokes: one `true`, then one `false`
    await stopped;
    expect(typingFrames).toEqual([true, false]);

    const ack = await student.send("please read me");
    const viewed = waitFor<{ message_id: string; viewer_id: number }>(student, "viewed", () => true);
    mentor.markViewed(ack.id);
    expect(await viewed).toMatchObject({ message_id: ack.id, viewer_id: 10 });

    const offline = waitFor<{ user_id: number; online: boolean }>(mentor, "presence", (p) => !p.online);
    student.close();
    expect((await offline).user_id).toBe(15);
  });

  test("an error frame naming the client_id rejects the send with the server's code", async () => {
    const student = client(15, { studentId: undefined });
    await student.connect();
    const err = await student.send("x".repeat(51)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChatError);
    expect((err as ChatError).code).toBe("too_long");
    expect(student.unacked).toBe(0);
    await expect(student.send("   ")).rejects.toMatchObject({ code: "empty" });
  });

  test("history pages go back with before= and count as seen", async () => {
    const mentor = client(10, { studentId: 16 });
    const student = client(16, { studentId: undefined });
    await Promise.all([mentor.connect(), student.connect()]);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await student.send(`page ${i}`)).id);
    const latest = await mentor.history({ limit: 3 });
    expect(latest.map((m) => m.text)).toEqual(["page 4", "page 5", "page 6"]);
    const older = await mentor.history({ before: latest[0]!.id, limit: 3 });
    expect(older.map((m) => m.text)).toEqual(["page 1", "page 2", "page 3"]);
    const newer = await mentor.history({ after: ids[4]!, limit: 10 });
    expect(newer.map((m) => m.id)).toEqual(ids.slice(5));
    const conversations = await mentor.rest.conversations({ lessonId: 5 });
    expect(conversations.map((c) => c.student_id).sort()).toEqual([15, 16]);
    expect(await mentor.rest.presence(16)).toMatchObject({ online: true });
  });

  test("a bad token is fatal: connect rejects with unauthorized instead of retrying forever", async () => {
    const c = client(15, { studentId: undefined, token: "not-a-jwt" });
    const err = await c.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChatError);
    expect((err as ChatError).status).toBe(401);
    expect(c.state).toBe("closed");
  });

  test("the query-string token transport works too", async () => {
    const c = client(15, { studentId: undefined, tokenIn: "query" });
    expect((await c.connect()).user_id).toBe(15);
  });
});
