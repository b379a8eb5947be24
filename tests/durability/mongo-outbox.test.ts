import { describe, expect, test } from "bun:test";
import { ObjectId } from "mongodb";
import { conversationIdFor } from "../../src/ids.ts";
import { mongoForFile } from "../helpers/ferretdb.ts";
import {
  drained,
  expectExactlyOnce,
  mongoEnv,
  readyz,
  restHistory,
  sendMany,
  storedIds,
} from "../helpers/outbox.ts";
import { startTestService, type TestService, tempDir } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";

/** The outbox flusher against a real MongoDB-wire server (FerretDB), with the service in-process. */

const fx = mongoForFile();

async function service(extra: Record<string, string> = {}, dir?: string): Promise<TestService> {
  const svc = await startTestService({ env: mongoEnv(fx.mongo, fx.mongo.uri, extra), dir });
  fx.defer(() => svc.stop());
  return svc;
}

const db = () => fx.client.db(fx.mongo.dbName);

describe("MongoDB as the system of record", () => {
  test("messages, read marks and the conversation arrive in MongoDB exactly once", async () => {
    const svc = await service();
    const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    const student = await svc.connect(15, { lesson_id: 5 });
    const conversationId = String((await mentor.next("ready")).conversation_id);
    await student.next("ready");
    expect(conversationId).toBe(conversationIdFor(5, 10, 15));

    const acked = await sendMany(mentor, 300, "m");
    // A resend with the same client_id is acked with the same id and stored once.
    acked.push(...(await sendMany(mentor, 20, "m")));
    acked.push(...(await sendMany(student, 50, "s")));
    // Read up to the 150th mentor message, then all of them.
    student.send({ type: "viewed", message_id: acked[149] });
    await student.next("viewed");
    student.send({ type: "viewed", message_id: acked[299] });
    await student.next((f) => f.type === "viewed" && f.message_id === acked[299]);

    const ready = await drained(svc);
    expect(ready.checks.mongo.flushed_messages).toBe(350);

    const stored = await storedIds(fx.client, fx.mongo.dbName, conversationId);
    const result = expectExactlyOnce(acked, stored);
    expect(result.counts.storedDistinct).toBe(350);

    const conv = await db()
      .collection("conversations")
      .find({ lesson_id: 5, mentor_id: 10, student_id: 15 })
      .toArray();
    expect(conv.map((c) => (c._id as ObjectId).toHexString())).toEqual([conversationId]);
    expect(conv[0]!.created_at).toBeInstanceOf(Date);

    const viewed = await db()
      .collection("messages")
      .countDocuments({ conversation_id: new ObjectId(conversationId), viewed_by: 15 });
    expect(viewed).toBe(300);
    const unviewedStudent = await db()
      .collection("messages")
      .countDocuments({ conversation_id: new ObjectId(conversationId), sender_id: 15, viewed_by: null });
    expect(unviewedStudent).toBe(50);
    // Same marks as the local store reports.
    const local = await restHistory(svc, 10, conversationId);
    expect(local.filter((m) => m.viewed_by === 15).length).toBe(300);

    const indexes = await db().collection("conversations").indexes();
    expect(indexes.find((i) => i.unique)?.key).toEqual({ lesson_id: 1, mentor_id: 1, student_id: 1 });
    const msgIndexes = await db().collection("messages").indexes();
    expect(msgIndexes.some((i) => JSON.stringify(i.key) === '{"conversation_id":1,"_id":1}')).toBe(true);

    const metrics = await (await svc.get("/metrics")).text();
    expect(metrics).toContain('chat_outbox_flushed_total{kind="message"} 350');
    expect(metrics).toContain("chat_mongo_connected 1");
    expect(metrics).toMatch(/chat_outbox_last_flush_timestamp_seconds \d{10}/);
    mentor.close();
    student.close();
  }, 30_000);

  test("MongoDB stopped under traffic: chat and history go on, backlog grows, then drains by itself", async () => {
    const svc = await service();
    const mentor = await svc.connect(10, { lesson_id: 5, student_id: 16 });
    const conversationId = String((await mentor.next("ready")).conversation_id);
    const acked = await sendMany(mentor, 50, "before");
    await drained(svc);

    await fx.mongo.stop();
    acked.push(...(await sendMany(mentor, 100, "during-a")));
    const down = await waitUntil(
      async () => {
        const r = await readyz(svc);
        return r.body.checks.mongo.ok === false ? r : undefined;
      },
      { message: "readiness to report MongoDB down", timeoutMs: 20_000 },
    );
    expect(down.status).toBe(200);
    expect(down.body.ready).toBe(true);
    const b1 = down.body.checks.outbox.backlog;
    expect(b1).toBeGreaterThanOrEqual(100);
    acked.push(...(await sendMany(mentor, 100, "during-b")));
    const r2 = await readyz(svc);
    expect(r2.body.checks.outbox.backlog).toBe(b1 + 100);
    expect(r2.body.checks.outbox.oldest_age_s).toBeGreaterThan(0);
    // History comes from SQLite while MongoDB is away, and a student can still connect and read.
    expect((await restHistory(svc, 16, conversationId)).map((m) => m.id)).toEqual(acked);
    const student = await svc.connect(16, { lesson_id: 5, since: acked[0]! });
    expect(String((await student.next("ready")).conversation_id)).toBe(conversationId);
    student.send({ type: "viewed", message_id: acked[acked.length - 1] });
    await student.next("viewed");
    const metricsDown = await (await svc.get("/metrics")).text();
    expect(metricsDown).toContain("chat_mongo_connected 0");
    expect(metricsDown).toMatch(/chat_outbox_flush_errors_total [1-9]/);

    await fx.mongo.start();
    await drained(svc, 25_000);
    const stored = await storedIds(fx.client, fx.mongo.dbName, conversationId);
    expectExactlyOnce(acked, stored);
    expect(
      await db()
        .collection("messages")
        .countDocuments({ conversation_id: new ObjectId(conversationId), viewed_by: 16 }),
    ).toBe(250);
    mentor.close();
    student.close();
  }, 45_000);

  test("a conversation the original service made (random id) is adopted at connect", async () => {
    const legacy = new ObjectId();
    await db()
      .collection("conversations")
      .insertOne({ _id: legacy, lesson_id: 6, mentor_id: 11, student_id: 17, created_at: new Date() });
    // Made by another process a minute ago: ids order by time across processes only across seconds.
    const oldMessage = ObjectId.createFromTime(Math.floor(Date.now() / 1000) - 60);
    await db().collection("messages").insertOne({
      _id: oldMessage,
      conversation_id: legacy,
      sender_id: 17,
      text: "from the Go service",
      created_at: new Date(),
    });

    // MongoDB is up at connect: the id is looked up by the triple, and its history comes along.
    const svc = await service();
    const a = await svc.connect(11, { lesson_id: 6, student_id: 17 });
    expect(String((await a.next("ready")).conversation_id)).toBe(legacy.toHexString());
    const acked = await sendMany(a, 5, "a");
    const history = await restHistory(svc, 17, legacy.toHexString());
    expect(history.map((m) => m.id)).toEqual([oldMessage.toHexString(), ...acked]);
    await drained(svc);
    expect((await storedIds(fx.client, fx.mongo.dbName, legacy.toHexString())).sort()).toEqual(
      [oldMessage.toHexString(), ...acked].sort(),
    );
    expect(await db().collection("conversations").countDocuments({ lesson_id: 6 })).toBe(1);
    a.close();
  }, 30_000);

  test("made locally during an outage, then reconciled on the unique index: the local id moves to MongoDB's", async () => {
    const dbName = `${fx.mongo.dbName}_remap`;
    const legacy = new ObjectId();
    await fx.client
      .db(dbName)
      .collection("conversations")
      .insertOne({ _id: legacy, lesson_id: 5, mentor_id: 10, student_id: 15, created_at: new Date() });
    await fx.mongo.stop();
    const svc = await service({ MONGO_DB: dbName });
    const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    const localId = String((await mentor.next("ready")).conversation_id);
    expect(localId).toBe(conversationIdFor(5, 10, 15));
    const student = await svc.connect(15, { lesson_id: 5 });
    await student.next("ready");
    const acked = await sendMany(mentor, 30, "x");
    student.send({ type: "viewed", message_id: acked[9] });
    await student.next("viewed");

    await fx.mongo.start();
    // Sockets on the old id are told to reconnect; they come back on MongoDB's id.
    expect((await mentor.closedWith(20_000)).code).toBe(1012);
    await drained(svc);
    const again = await svc.connect(10, { lesson_id: 5, student_id: 15, since: acked[4]! });
    expect(String((await again.next("ready")).conversation_id)).toBe(legacy.toHexString());
    expect(String((await again.next("message")).id)).toBe(acked[5]!);
    // The old id still resolves, to the adopted conversation.
    const old = await svc.get(`/conversations/${localId}`, 10);
    expect(((await old.json()) as { id: string }).id).toBe(legacy.toHexString());

    const stored = await storedIds(fx.client, dbName, legacy.toHexString());
    const result = expectExactlyOnce(acked, stored);
    expect(result.counts.storedDistinct).toBe(30);
    expect(await fx.client.db(dbName).collection("conversations").countDocuments()).toBe(1);
    expect(await fx.client.db(dbName).collection("messages").countDocuments({ viewed_by: 15 })).toBe(10);
    again.close();
    student.close();
  }, 45_000);

  test("two instances (two SQLite files) share one MongoDB: one conversation, every message under it", async () => {
    const dbName = `${fx.mongo.dbName}_pair`;
    const a = await service({ MONGO_DB: dbName });
    const b = await service({ MONGO_DB: dbName });
    const onA = await a.connect(10, { lesson_id: 5, student_id: 16 });
    const onB = await b.connect(16, { lesson_id: 5 });
    const idA = String((await onA.next("ready")).conversation_id);
    const idB = String((await onB.next("ready")).conversation_id);
    expect(idB).toBe(idA);
    const acked = [...(await sendMany(onA, 40, "a")), ...(await sendMany(onB, 40, "b"))];
    await drained(a);
    await drained(b);
    const stored = await storedIds(fx.client, dbName, idA);
    expectExactlyOnce(acked, stored);
    expect(stored.length).toBe(80);
    expect(await fx.client.db(dbName).collection("conversations").countDocuments()).toBe(1);
    // Each instance's history includes the other's messages, read through from MongoDB.
    expect((await restHistory(a, 10, idA)).length).toBe(80);
    expect((await restHistory(b, 16, idA)).length).toBe(80);
    onA.close();
    onB.close();
  }, 30_000);

  test("a fresh instance (new SQLite) serves a conversation that only MongoDB has", async () => {
    const dbName = `${fx.mongo.dbName}_fresh`;
    const first = await service({ MONGO_DB: dbName });
    const m = await first.connect(10, { lesson_id: 5, student_id: 15 });
    const id = String((await m.next("ready")).conversation_id);
    const acked = await sendMany(m, 250, "f");
    await drained(first);
    m.close();

    const dir = tempDir();
    fx.defer(() => dir.remove());
    const fresh = await service({ MONGO_DB: dbName }, dir.path);
    const list = (await (await fresh.get("/conversations", 15)).json()) as Array<{ id: string }>;
    expect(list.map((c) => c.id)).toEqual([id]);
    expect((await restHistory(fresh, 15, id)).map((x) => x.id)).toEqual(acked);
    // Resume on the fresh instance starts right after the cursor.
    const s = await fresh.connect(15, { lesson_id: 5, since: acked[247]! });
    await s.next("ready");
    expect([String((await s.next("message")).id), String((await s.next("message")).id)]).toEqual(
      acked.slice(248),
    );
    s.close();
  }, 30_000);
});
