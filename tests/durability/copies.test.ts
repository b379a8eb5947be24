import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { ObjectId } from "mongodb";
import { mongoForFile } from "../helpers/ferretdb.ts";
import { drained, expectExactlyOnce, mongoEnv, sendMany, storedIds } from "../helpers/outbox.ts";
import {
  isMessage,
  ownRedis,
  removePrefix,
  requireRedis,
  SHARED_REDIS_URL,
  testPrefix,
} from "../helpers/redis.ts";
import { type ChildService, spawnService, type TestService, tempDir } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";
import type { TestSocket } from "../helpers/ws-client.ts";

/**
 * Losing an instance loses nothing another instance holds (issue #18): instances as child
 * processes on one Redis, MongoDB (FerretDB) down while messages are acked, then one instance
 * killed with SIGKILL and its data folder deleted, then MongoDB back. The queue checker's
 * verdict over MongoDB: acked = stored, nothing twice, nothing unexpected.
 */

const fx = mongoForFile();
const prefixes: string[] = [];
beforeAll(() => requireRedis());
afterAll(async () => {
  for (const p of prefixes) await removePrefix(p);
});

interface Copies {
  copies: number;
  wanted: number;
  fallback?: string;
  peers?: number;
  acks_two_copies?: number;
  acks_one_copy?: number;
}
const copiesOf = async (svc: Pick<TestService, "get">) =>
  ((await (await svc.get("/readyz")).json()) as { checks: { copies: Copies } }).checks.copies;

/** One instance in a cluster of the test's own: its own folder, one Redis prefix, one MongoDB database. */
async function cluster(dbName: string, env: Record<string, string>) {
  const prefix = testPrefix();
  prefixes.push(prefix);
  const dirs: Array<ReturnType<typeof tempDir>> = [];
  const started: ChildService[] = [];
  fx.defer(() => {
    for (const s of started) s.proc.kill("SIGKILL");
    for (const d of dirs) d.remove();
  });
  return async (name: string) => {
    const dir = tempDir(`copies-${name}-`);
    dirs.push(dir);
    const svc = await spawnService({
      dir: dir.path,
      env: mongoEnv(fx.mongo, fx.mongo.uri, {
        MONGO_DB: dbName,
        REDIS_URL: SHARED_REDIS_URL,
        REDIS_PREFIX: prefix,
        INSTANCE_ID: name,
        ...env,
      }),
    });
    started.push(svc);
    return svc;
  };
}

/** SIGKILL, then the volume goes with the host. */
async function lose(svc: ChildService) {
  await svc.kill("SIGKILL");
  rmSync(svc.dir, { recursive: true, force: true });
}

const ready = async (sock: TestSocket) => String((await sock.next("ready", 10_000)).conversation_id);

async function messageDoc(dbName: string, id: string) {
  return fx.client
    .db(dbName)
    .collection("messages")
    .findOne({ _id: new ObjectId(id) });
}

describe("every copy counts (ACK_COPIES=1)", () => {
  test("A acks 50 while MongoDB is down, B relays them; A and its volume are lost; MongoDB gets all 50 and A's read mark, once", async () => {
    const dbName = `${fx.mongo.dbName}_one`;
    await fx.mongo.stop();
    const start = await cluster(dbName, { COPY_FLUSH_DELAY_MS: "1500" });
    const [a, b] = [await start("a1"), await start("b1")];
    const student = await b.connect(15, { lesson_id: 5 });
    const conversationId = await ready(student);
    const mentor = await a.connect(10, { lesson_id: 5, student_id: 15 });
    expect(await ready(mentor)).toBe(conversationId);

    // A read mark made on A of a message B accepted: B holds the mark only as a copy.
    const fromStudent = await sendMany(student, 1, "s");
    await mentor.next(isMessage(fromStudent[0]), 10_000);
    mentor.send({ type: "viewed", message_id: fromStudent[0] });
    await student.next("viewed", 10_000);

    const acked = await sendMany(mentor, 50, "m");
    for (const id of acked) await student.next(isMessage(id), 10_000);

    await lose(a);
    await fx.mongo.start();
    await drained(b, 30_000);

    const stored = await storedIds(fx.client, dbName, conversationId);
    const verdict = expectExactlyOnce([...acked, ...fromStudent], stored);
    expect(verdict.counts.storedDistinct).toBe(51);
    expect((await messageDoc(dbName, fromStudent[0]!))?.viewed_by).toBe(10);
    expect(await fx.client.db(dbName).collection("conversations").countDocuments()).toBe(1);
    student.close();
  }, 90_000);

  test("in normal operation the origin's confirmation withdraws every copy: MongoDB gets each message once, from A", async () => {
    const dbName = `${fx.mongo.dbName}_normal`;
    const start = await cluster(dbName, { COPY_FLUSH_DELAY_MS: "2000" });
    const [a, b] = [await start("a2"), await start("b2")];
    const student = await b.connect(15, { lesson_id: 5 });
    const conversationId = await ready(student);
    const mentor = await a.connect(10, { lesson_id: 5, student_id: 15 });
    await ready(mentor);
    const acked = await sendMany(mentor, 30, "n");
    for (const id of acked) await student.next(isMessage(id), 10_000);
    mentor.send({ type: "viewed", message_id: (await sendMany(student, 1, "r"))[0] });
    await drained(a, 30_000);
    // Past the copies' due time: any copy not withdrawn would have been written by now.
    await Bun.sleep(3_000);
    await drained(b, 30_000);
    const metrics = await (await b.get("/metrics")).text();
    const value = (series: string) => Number(new RegExp(`^${series} (\\S+)$`, "m").exec(metrics)?.[1] ?? 0);
    expect(value('chat_outbox_flushed_total\\{kind="relayed_message"\\}')).toBe(0);
    expect(value('chat_outbox_flushed_total\\{kind="relayed_viewed"\\}')).toBe(0);
    expect(value('chat_copies_withdrawn_total\\{kind="message"\\}')).toBe(30);
    expectExactlyOnce(
      acked,
      (await storedIds(fx.client, dbName, conversationId)).filter((id) => acked.includes(id)),
    );
    mentor.close();
    student.close();
  }, 90_000);
});

describe("a second durable copy before the ack (ACK_COPIES=2)", () => {
  test("three instances; A holds one conversation alone and half of another; A and its volume are lost while MongoDB is down; nothing acked is lost", async () => {
    const dbName = `${fx.mongo.dbName}_two`;
    await fx.mongo.stop();
    const start = await cluster(dbName, {
      ACK_COPIES: "2",
      ACK_COPY_TIMEOUT_MS: "5000",
      COPY_FLUSH_DELAY_MS: "1500",
    });
    const [a, b, c] = [await start("a3"), await start("b3"), await start("c3")];
    await waitUntil(async () => (await copiesOf(a)).peers === 2 || undefined, {
      message: "A to hear both peers",
      timeoutMs: 10_000,
    });

    // Shared: mentor on A, student on B. Alone: both sockets of lesson 6 on A.
    const student = await b.connect(15, { lesson_id: 5 });
    const shared = await ready(student);
    const mentor = await a.connect(10, { lesson_id: 5, student_id: 15 });
    await ready(mentor);
    const mentor6 = await a.connect(11, { lesson_id: 6, student_id: 17 });
    const alone = await ready(mentor6);
    const student6 = await a.connect(17, { lesson_id: 6 });
    await ready(student6);

    const ackedShared = await sendMany(mentor, 30, "x");
    const ackedAlone = [...(await sendMany(mentor6, 30, "y")), ...(await sendMany(student6, 10, "z"))];
    const onA = await copiesOf(a);
    expect(onA).toMatchObject({ wanted: 2, copies: 2, acks_two_copies: 70 });
    expect(onA.acks_one_copy ?? 0).toBe(0);

    await lose(a);
    await fx.mongo.start();
    await Promise.all([drained(b, 40_000), drained(c, 40_000)]);

    const verdictShared = expectExactlyOnce(ackedShared, await storedIds(fx.client, dbName, shared));
    const verdictAlone = expectExactlyOnce(ackedAlone, await storedIds(fx.client, dbName, alone));
    expect(verdictShared.counts.storedDistinct).toBe(30);
    expect(verdictAlone.counts.storedDistinct).toBe(40);
    const conversations = fx.client.db(dbName).collection("conversations");
    expect(await conversations.countDocuments({ _id: new ObjectId(alone) })).toBe(1);
    student.close();
  }, 120_000);

  test("with one instance the ack goes out at once with one copy and /readyz says why", async () => {
    const dbName = `${fx.mongo.dbName}_single`;
    const start = await cluster(dbName, { ACK_COPIES: "2", ACK_COPY_TIMEOUT_MS: "5000" });
    const only = await start("solo");
    await Bun.sleep(3_500); // longer than a peer's hello stays fresh: nobody else is there
    expect(await copiesOf(only)).toMatchObject({
      wanted: 2,
      copies: 1,
      fallback: "no peer instance",
      peers: 0,
    });
    const m = await only.connect(10, { lesson_id: 5, student_id: 16 });
    await ready(m);
    const t0 = performance.now();
    await sendMany(m, 5, "solo");
    // Far under ACK_COPY_TIMEOUT_MS: with nobody to ask, nobody is waited for.
    expect(performance.now() - t0).toBeLessThan(2_500);
    expect((await copiesOf(only)).acks_one_copy).toBe(5);
    m.close();
  }, 60_000);

  test("with Redis down the ack goes out with one copy, /readyz says so, and two copies come back with Redis", async () => {
    const redis = await ownRedis();
    fx.defer(() => redis.kill());
    const dirs = [tempDir("copies-bus-a-"), tempDir("copies-bus-b-")];
    fx.defer(() => {
      for (const d of dirs) d.remove();
    });
    const env = mongoEnv(fx.mongo, fx.mongo.uri, {
      MONGO_DB: `${fx.mongo.dbName}_bus`,
      REDIS_URL: redis.url,
      ACK_COPIES: "2",
      ACK_COPY_TIMEOUT_MS: "5000",
    });
    const [a, b] = await Promise.all(dirs.map((d) => spawnService({ dir: d.path, env })));
    fx.defer(() => {
      a!.proc.kill("SIGKILL");
      b!.proc.kill("SIGKILL");
    });
    await waitUntil(async () => (await copiesOf(a!)).copies === 2 || undefined, {
      message: "A to hear B",
      timeoutMs: 10_000,
    });
    const m = await a!.connect(10, { lesson_id: 5, student_id: 16 });
    await ready(m);
    await sendMany(m, 3, "up");
    expect((await copiesOf(a!)).acks_two_copies).toBe(3);

    await redis.kill();
    await waitUntil(async () => (await copiesOf(a!)).fallback === "bus down" || undefined, {
      message: "A's /readyz to report the bus down",
      timeoutMs: 10_000,
    });
    const t0 = performance.now();
    await sendMany(m, 3, "down");
    expect(performance.now() - t0).toBeLessThan(2_500);
    expect(await copiesOf(a!)).toMatchObject({ copies: 1, acks_one_copy: 3, acks_two_copies: 3 });

    await redis.start();
    await waitUntil(
      async () => ((await copiesOf(a!)).copies === 2 && (await copiesOf(b!)).copies === 2) || undefined,
      {
        message: "two copies again once Redis is back (each instance hears the other)",
        timeoutMs: 15_000,
      },
    );
    await sendMany(m, 2, "back");
    expect((await copiesOf(a!)).acks_two_copies).toBe(5);
    m.close();
  }, 60_000);
});
