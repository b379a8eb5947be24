import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  isMessage,
  presenceOf,
  presenceVia,
  removePrefix,
  requireRedis,
  SHARED_REDIS_URL,
  socketPool,
  testPrefix,
} from "../helpers/redis.ts";
import { startTestService, type TestService } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * Two instances, each with its own SQLite file, sharing the Redis at 127.0.0.1:6379 under a
 * key prefix of this run. Mentor 10 and students 15/16 of lesson 5 (tests/helpers/service.ts).
 */

const prefix = testPrefix();
let a: TestService;
let b: TestService;
const pool = socketPool();
const connect = pool.connect;

const env = (id: string) => ({
  REDIS_URL: SHARED_REDIS_URL,
  REDIS_PREFIX: prefix,
  INSTANCE_ID: id,
  RATE_MESSAGES_BURST: "500",
  RATE_USER_MESSAGES_PER_S: "500",
});

beforeAll(async () => {
  await requireRedis();
  a = await startTestService({ env: env("A") });
  b = await startTestService({ env: env("B") });
});

afterAll(async () => {
  pool.closeAll();
  await a?.stop();
  await b?.stop();
  await removePrefix(prefix);
});

describe("two instances over Redis", () => {
  test("readiness names the Redis bus", async () => {
    const r = (await (await a.get("/readyz")).json()) as { checks: { bus: Record<string, unknown> } };
    expect(r.checks.bus).toMatchObject({ ok: true, kind: "redis", state: "up" });
  });

  test("mentor on A and student on B chat, type, mark viewed and see each other", async () => {
    const student = await connect(b, 15, { lesson_id: 5 });
    const mentor = await connect(a, 10, { lesson_id: 5, student_id: 15 });

    // The mentor's snapshot of the student comes from the shared view; the student hears the
    // mentor arrive through the bus.
    await mentor.next(presenceOf(15, true), 5000);
    await student.next(presenceOf(10, true), 5000);

    mentor.send({ type: "message", text: "hello from A", client_id: "m-1" });
    const ack = await mentor.next("ack");
    const got = await student.next(isMessage(String(ack.id)), 5000);
    expect(got).toMatchObject({ sender_id: 10, text: "hello from A", client_id: "m-1" });

    student.send({ type: "message", text: "hi from B", client_id: "s-1" });
    const sAck = await student.next("ack");
    await mentor.next(isMessage(String(sAck.id)), 5000);

    student.send({ type: "typing", is_typing: true });
    expect(await mentor.next("typing", 5000)).toMatchObject({ sender_id: 15, is_typing: true });

    student.send({ type: "viewed", message_id: ack.id });
    expect(await mentor.next("viewed", 5000)).toMatchObject({ message_id: ack.id, viewer_id: 15 });

    // B kept a copy of A's message, read mark included: its own history shows both.
    await waitUntil(
      async () => {
        const res = await b.get(`/messages?conversation_id=${got.conversation_id}`, 15);
        const list = (await res.json()) as Array<{ id: string; viewed_by?: number }>;
        return list.length === 2 && list.find((m) => m.id === ack.id)?.viewed_by === 15;
      },
      { message: "B's history has the read mark" },
    );

    // Each frame arrived once.
    await Bun.sleep(300);
    expect(student.frames.filter(isMessage(String(ack.id)))).toHaveLength(1);
    expect(mentor.frames.filter(isMessage(String(ack.id)))).toHaveLength(1);
    expect(mentor.all("typing")).toHaveLength(1);

    // Presence over REST on either instance.
    expect((await presenceVia(b, 15, 10)).online).toBe(true);
    expect((await presenceVia(a, 10, 15)).online).toBe(true);

    mentor.close();
    await student.next(presenceOf(10, false), 5000);
    const after = await presenceVia(b, 15, 10);
    expect(after.online).toBe(false);
    expect(typeof after.last_seen).toBe("string");
    student.close();
  });

  test("frames from one instance keep their order on the other", async () => {
    const student = await connect(b, 16, { lesson_id: 5 });
    const mentor = await connect(a, 10, { lesson_id: 5, student_id: 16 });
    const n = 60;
    for (let i = 0; i < n; i++) mentor.send({ type: "message", text: `n${i}`, client_id: `o-${i}` });
    const texts: string[] = [];
    while (texts.length < n) {
      const f = await student.next((x) => x.type === "message" && x.sender_id === 10, 10_000);
      texts.push(String(f.text));
    }
    expect(texts).toEqual(Array.from({ length: n }, (_, i) => `n${i}`));
    mentor.close();
    student.close();
  });

  test("a user online on two instances stays online until the last device leaves", async () => {
    const mentor = await connect(a, 10, { lesson_id: 5, student_id: 15 });
    const onA = await connect(a, 15, { lesson_id: 5 });
    const onB = await connect(b, 15, { lesson_id: 5 });
    await mentor.next(presenceOf(15, true), 5000);
    const seen = mentor.frames.length;
    onB.close();
    await Bun.sleep(500);
    expect(mentor.frames.slice(seen).filter(presenceOf(15, false))).toHaveLength(0);
    expect((await presenceVia(a, 10, 15)).online).toBe(true);
    onA.close();
    await mentor.next(presenceOf(15, false), 5000);
    expect((await presenceVia(b, 10, 15)).online).toBe(false);
    mentor.close();
  });

  test("resume and client_id retries work on the other instance", async () => {
    const student = await connect(b, 15, { lesson_id: 5 });
    const mentor = await connect(a, 10, { lesson_id: 5, student_id: 15 });
    mentor.send({ type: "message", text: "first", client_id: "r-1" });
    const first = await mentor.next("ack");
    mentor.send({ type: "message", text: "second", client_id: "r-2" });
    const second = await mentor.next("ack");
    await student.next(isMessage(String(second.id)), 5000);
    mentor.close();

    // The mentor's reconnect lands on B: the backlog since "first" is there, and retrying
    // "second" with its client_id is recognised as the same message.
    const again = await connect(b, 10, { lesson_id: 5, student_id: 15, since: String(first.id) });
    expect(await again.next("message", 5000)).toMatchObject({ id: second.id, text: "second" });
    again.send({ type: "message", text: "second", client_id: "r-2" });
    expect(await again.next("ack")).toMatchObject({ id: second.id, duplicate: true });
    again.close();
    student.close();
  });
});
