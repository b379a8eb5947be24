import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { removePrefix, requireRedis, SHARED_REDIS_URL, socketPool, testPrefix } from "../helpers/redis.ts";
import { startTestService, type TestService, UNTHROTTLED } from "../helpers/service.ts";
import type { Frame } from "../helpers/ws-client.ts";

/**
 * Edits and deletes across two instances sharing the Redis at 127.0.0.1:6379 (own key prefix):
 * the frames travel like messages, the receiving instance stores the change, and a client that
 * catches up on the other instance gets it.
 */

const prefix = testPrefix();
let a: TestService;
let b: TestService;
const pool = socketPool();
const env = (id: string) => ({
  ...UNTHROTTLED,
  REDIS_URL: SHARED_REDIS_URL,
  REDIS_PREFIX: prefix,
  INSTANCE_ID: id,
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

const ackOf = (clientId: string) => (f: Frame) => f.type === "ack" && f.client_id === clientId;

describe("edit and delete over Redis", () => {
  test("live on the other instance, stored there: REST and catch-up on B show the change made on A", async () => {
    const m = await pool.connect(a, 10, { lesson_id: 5, student_id: 15 });
    const s = await pool.connect(b, 15, { lesson_id: 5 });
    // The pool took each socket's `ready`.
    const conversation_id = m.frames.find((f) => f.type === "ready")?.conversation_id;
    m.send({ type: "message", text: "typo hree", client_id: "r-1" });
    const id = String((await m.next(ackOf("r-1"))).id);
    await s.next((f) => f.type === "message" && f.id === id);
    s.send({ type: "message", text: "what?", client_id: "r-2", reply_to: id });
    const reply = String((await s.next(ackOf("r-2"))).id);
    expect(await m.next((f) => f.type === "message" && f.id === reply)).toMatchObject({ reply_to: id });

    m.send({ type: "edit", message_id: id, text: "typo here", client_id: "e-1" });
    await m.next(ackOf("e-1"));
    expect(await s.next("message_edited", 10_000)).toMatchObject({ id, text: "typo here", conversation_id });

    // The student deletes their own message on B; the mentor on A hears it.
    s.send({ type: "delete", message_id: reply, client_id: "d-1" });
    await s.next(ackOf("d-1"));
    expect(await m.next("message_deleted", 10_000)).toMatchObject({ id: reply, conversation_id });

    // B stored the edit relayed from A; A stored the delete relayed from B.
    const onB = (await (await b.get(`/messages?conversation_id=${conversation_id}`, 15)).json()) as Frame[];
    expect(onB.find((x) => x.id === id)).toMatchObject({ text: "typo here" });
    const onA = (await (await a.get(`/messages?conversation_id=${conversation_id}`, 10)).json()) as Frame[];
    const tomb = onA.find((x) => x.id === reply)!;
    expect(tomb).toMatchObject({ deleted: true, reply_to: id });
    expect("text" in tomb).toBe(false);

    // Catch-up on B from before the edit includes the change made on A.
    const back = await pool.connect(b, 15, { lesson_id: 5, since: id });
    const changes = [await back.next("message_edited"), await back.next("message_deleted")];
    expect(changes.map((f) => f.id)).toEqual([id, reply]);
    const feed = (await (
      await b.get(`/messages/changes?conversation_id=${conversation_id}&after=${id}`, 15)
    ).json()) as { changes: Frame[] };
    expect(feed.changes.map((f) => [f.type, f.id])).toEqual([
      ["message_edited", id],
      ["message_deleted", reply],
    ]);
  }, 30_000);
});
