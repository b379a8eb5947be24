import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { openStore } from "../../src/store/sqlite/index.ts";
import { openDatabase } from "../../src/store/sqlite/open.ts";
import { SCHEMA_VERSION } from "../../src/store/sqlite/schema.ts";
import { mongoForFile } from "../helpers/ferretdb.ts";
import { drained, expectExactlyOnce, mongoEnv, restHistory, sendMany, storedIds } from "../helpers/outbox.ts";
import { startTestService, type TestService, tempDir, UNTHROTTLED } from "../helpers/service.ts";
import { STORED_MESSAGES } from "../helpers/stored-messages.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * Local retention with MongoDB as the record (FerretDB): confirmed messages leave SQLite, the
 * file shrinks, and history, unread counts, last_message, resume and client_id retries stay
 * correct across the boundary. Unflushed messages, and everything without MongoDB, stay.
 */

const fx = mongoForFile();

async function service(extra: Record<string, string>, mongo = true): Promise<TestService> {
  const env = mongo ? mongoEnv(fx.mongo, fx.mongo.uri, extra) : { ...UNTHROTTLED, ...extra };
  const svc = await startTestService({ env });
  fx.defer(() => svc.stop());
  return svc;
}

/** Rows in the service's own SQLite file (read-only, beside the running service). */
function localCount(svc: TestService, sql = `SELECT count(*) AS n FROM ${STORED_MESSAGES}`): number {
  const db = new Database(join(svc.dir, "chat.db"), { readonly: true });
  try {
    return (db.query(sql).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

const localCountIs = (svc: TestService, n: number, what: string) =>
  waitUntil(() => localCount(svc) === n || undefined, { message: what, timeoutMs: 20_000 });

async function conversations(svc: TestService, userId: number) {
  const res = await svc.get("/conversations", userId);
  expect(res.status).toBe(200);
  return (await res.json()) as Array<{
    id: string;
    unread_count: number;
    last_message: { id: string } | null;
  }>;
}

describe("local retention (LOCAL_RETENTION_DAYS, MongoDB confirmed)", () => {
  test("confirmed messages leave SQLite; history, unread, last_message, resume and client_id stay right", async () => {
    const svc = await service({ LOCAL_RETENTION_DAYS: "0", LOCAL_SWEEP_INTERVAL_S: "1" });
    const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    const student = await svc.connect(15, { lesson_id: 5 });
    const conversationId = String((await mentor.next("ready")).conversation_id);
    await student.next("ready");
    const fromMentor = await sendMany(mentor, 300, "m");
    const fromStudent = await sendMany(student, 20, "s");
    student.send({ type: "viewed", message_id: fromMentor[99] });
    await student.next("viewed");
    await drained(svc);
    // Everything but the conversation's newest message leaves (ids of this second stay a second).
    await localCountIs(svc, 1, "retention to evict every confirmed message but the newest");

    const all = [...fromMentor, ...fromStudent];
    expect((await restHistory(svc, 10, conversationId)).map((m) => m.id)).toEqual(all);
    const [forMentor] = await conversations(svc, 10);
    const [forStudent] = await conversations(svc, 15);
    expect(forMentor!.last_message!.id).toBe(fromStudent[19]!);
    expect(forMentor!.unread_count).toBe(20);
    expect(forStudent!.unread_count).toBe(200);

    // A resend of an evicted message's client_id is the same message, not a second one.
    mentor.send({ type: "message", text: "m 5", client_id: "m5" });
    const dup = await mentor.next("ack");
    expect({ id: dup.id, duplicate: dup.duplicate }).toEqual({ id: fromMentor[5], duplicate: true });

    // Resume from an evicted id: every later message, in order, once.
    const resumed = await svc.connect(15, { lesson_id: 5, since: fromMentor[10]! });
    await resumed.next("ready");
    const replay: string[] = [];
    for (let i = 0; i < 309; i++) replay.push(String((await resumed.next("message", 10_000)).id));
    expect(replay).toEqual(all.slice(11));

    // A read mark on a kept message covers the evicted ones too.
    mentor.send({ type: "message", text: "latest", client_id: "m-latest" });
    const latest = String((await mentor.next((f) => f.type === "ack" && f.client_id === "m-latest")).id);
    student.send({ type: "viewed", message_id: latest });
    await student.next((f) => f.type === "viewed" && f.message_id === latest);
    expect((await conversations(svc, 15))[0]!.unread_count).toBe(0);

    await drained(svc);
    expectExactlyOnce([...all, latest], await storedIds(fx.client, fx.mongo.dbName, conversationId));
    for (const s of [mentor, student, resumed]) s.close();
  });

  test("messages MongoDB has not confirmed stay, and leave once it has", async () => {
    const svc = await service({ LOCAL_RETENTION_DAYS: "0", LOCAL_SWEEP_INTERVAL_S: "1" });
    const mentor = await svc.connect(11, { lesson_id: 6, student_id: 17 });
    const conversationId = String((await mentor.next("ready")).conversation_id);
    await drained(svc);
    await fx.mongo.stop();
    try {
      const acked = await sendMany(mentor, 50, "down");
      await Bun.sleep(3000); // three sweeps with MongoDB down
      expect(localCount(svc)).toBe(50);
      await fx.mongo.start();
      await drained(svc);
      await localCountIs(svc, 1, "the flushed backlog to be evicted");
      expectExactlyOnce(acked, await storedIds(fx.client, fx.mongo.dbName, conversationId));
    } finally {
      if (
        !(await fx.client
          .db("admin")
          .command({ ping: 1 })
          .catch(() => false))
      )
        await fx.mongo.start();
    }
    mentor.close();
  });

  test("without MongoDB nothing is removed: SQLite is the record", async () => {
    const svc = await service({ LOCAL_RETENTION_DAYS: "0", LOCAL_SWEEP_INTERVAL_S: "1" }, false);
    const mentor = await svc.connect(10, { lesson_id: 5, student_id: 16 });
    await mentor.next("ready");
    await sendMany(mentor, 40, "x");
    await Bun.sleep(2500);
    expect(localCount(svc)).toBe(40);
    mentor.close();
  });

  test("LOCAL_MAX_MB: the oldest confirmed go until the file is under it, and the file shrinks", async () => {
    // FerretDB on SQLite filters 4,000 documents slower than the 500 ms the other tests allow.
    const svc = await service({
      LOCAL_MAX_MB: "1",
      LOCAL_SWEEP_INTERVAL_S: "1",
      MONGO_READ_TIMEOUT_MS: "10000",
    });
    const mentor = await svc.connect(10, { lesson_id: 5, student_id: 16 }); // its own conversation in the shared database
    const conversationId = String((await mentor.next("ready")).conversation_id);
    const text = "y".repeat(600);
    const acked: string[] = [];
    for (let batch = 0; batch < 8; batch++) {
      for (let i = 0; i < 500; i++) mentor.send({ type: "message", text, client_id: `b${batch}-${i}` });
      for (let i = 0; i < 500; i++) acked.push(String((await mentor.next("ack", 15_000)).id));
    }
    await drained(svc);
    // The database's pages first (the data may still sit in the WAL), then the files themselves.
    const file = join(svc.dir, "chat.db");
    const onDisk = () => statSync(file).size + (existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0);
    await waitUntil(
      async () => {
        const metrics = await (await svc.get("/metrics")).text();
        const bytes = Number(/chat_local_db_bytes (\d+)/.exec(metrics)?.[1] ?? Number.NaN);
        return bytes <= 1024 * 1024 && onDisk() <= 1024 * 1024 ? true : undefined;
      },
      { message: "chat.db and its WAL to shrink under 1 MiB (LOCAL_MAX_MB=1)", timeoutMs: 30_000 },
    );
    const kept = localCount(svc);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(acked.length);
    // The kept ones are the newest.
    const newestKept = localCount(
      svc,
      `SELECT count(*) AS n FROM ${STORED_MESSAGES} WHERE id >= (SELECT min(id) FROM ${STORED_MESSAGES})`,
    );
    expect(newestKept).toBe(kept);
    const hist = (await restHistory(svc, 10, conversationId)).map((m) => m.id);
    expect(hist).toEqual(acked);
    expectExactlyOnce(acked, await storedIds(fx.client, fx.mongo.dbName, conversationId));
    mentor.close();
  }, 120_000);
});

describe("the retention schema step on a file written before retention", () => {
  test("a file of schema 5 (before step 6 added retention), without incremental vacuum, opens, migrates, and is converted by compact()", () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, "old.db");
      const db = openDatabase(path);
      db.exec("DROP TABLE evicted_summary; DROP TABLE evicted_client_ids");
      db.run("UPDATE meta SET value = '5' WHERE key = 'schema_version'");
      db.run("PRAGMA auto_vacuum = NONE");
      db.run("VACUUM");
      expect((db.query("PRAGMA auto_vacuum").get() as { auto_vacuum: number }).auto_vacuum).toBe(0);
      db.close();
      const store = openStore({ path, outboxKinds: ["message"] });
      store.retention.compact();
      store.close();
      const again = new Database(path, { readonly: true });
      expect(again.query("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({
        value: String(SCHEMA_VERSION),
      });
      expect(again.query("PRAGMA auto_vacuum").get()).toEqual({ auto_vacuum: 2 });
      expect(again.query("SELECT count(*) AS n FROM evicted_summary").get()).toEqual({ n: 0 });
      again.close();
    } finally {
      dir.remove();
    }
  });
});

describe("the disk guard's WAL truncation", () => {
  test("a reader that blocks it makes it throw at once (the guard retries), and it cuts the WAL once the reader is gone", () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, "chat.db");
      const store = openStore({ path });
      const other = new Database(path);
      other.run("INSERT INTO meta (key, value) VALUES ('probe', 'x')");
      const wal = `${path}-wal`;
      expect(statSync(wal).size).toBeGreaterThan(0);
      const reader = new Database(path, { readonly: true });
      reader.run("BEGIN");
      reader.query("SELECT count(*) FROM meta").get();
      const started = performance.now();
      expect(() => store.retention.checkpoint()).toThrow(/blocked the WAL checkpoint/);
      // It must not wait out the busy timeout (5 s) on the event loop.
      expect(performance.now() - started).toBeLessThan(1000);
      expect(statSync(wal).size).toBeGreaterThan(0);
      reader.run("COMMIT");
      store.retention.checkpoint();
      expect(statSync(wal).size).toBe(0);
      reader.close();
      other.close();
      store.close();
    } finally {
      dir.remove();
    }
  });
});
