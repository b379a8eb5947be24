import { describe, expect, test } from "bun:test";
import { mongoForFile } from "../helpers/ferretdb.ts";
import { drained, expectExactlyOnce, mongoEnv, readyz, sendMany, storedIds } from "../helpers/outbox.ts";
import { spawnService, startTestService, tempDir } from "../helpers/service.ts";
import { type ToxiProxy, toxiproxyForFile } from "../helpers/toxiproxy.ts";
import { waitUntil } from "../helpers/wait.ts";

/** Network faults between the service and MongoDB, and a crash in the middle of a flush. */

const fx = mongoForFile();
const toxiproxy = toxiproxyForFile();

/** A fresh Toxiproxy proxy in front of the file's FerretDB (they all go with the server in afterAll). */
const proxy = (): Promise<ToxiProxy> => toxiproxy.proxy({ host: fx.mongo.host, port: fx.mongo.port });

const errorsOf = async (svc: Parameters<typeof readyz>[0]) =>
  (await readyz(svc)).body.checks.mongo.flush_errors ?? 0;

describe("MongoDB behind a misbehaving network", () => {
  test("blackhole, then reset, then pass: acked messages land exactly once", async () => {
    const p = await proxy();
    const dbName = `${fx.mongo.dbName}_net`;
    const svc = await startTestService({ env: mongoEnv(fx.mongo, p.uri, { MONGO_DB: dbName }) });
    fx.defer(() => svc.stop());
    const m = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    const conversationId = String((await m.next("ready")).conversation_id);
    const acked = await sendMany(m, 50, "pass");
    await drained(svc);

    // Blackhole: bytes vanish, nothing answers; only the driver's timeouts notice.
    await p.blackhole();
    const e0 = await errorsOf(svc);
    acked.push(...(await sendMany(m, 50, "blackhole")));
    await waitUntil(async () => (await errorsOf(svc)) > e0, {
      message: "a flush to time out in blackhole mode",
      timeoutMs: 20_000,
    });
    expect((await readyz(svc)).body.checks.outbox.backlog).toBeGreaterThan(0);

    // Reset: every connection is reset (RST) on its next bytes, new ones on their first.
    await p.resetPeer();
    const e1 = await errorsOf(svc);
    acked.push(...(await sendMany(m, 50, "reset")));
    await waitUntil(async () => (await errorsOf(svc)) > e1, {
      message: "a flush to fail in reset mode",
      timeoutMs: 20_000,
    });
    const during = await readyz(svc);
    expect(during.status).toBe(200);
    expect(during.body.checks.outbox.backlog).toBeGreaterThanOrEqual(100);

    await p.pass();
    await drained(svc, 25_000);
    const stored = await storedIds(fx.client, dbName, conversationId);
    const result = expectExactlyOnce(acked, stored);
    expect(result.counts.storedDistinct).toBe(150);
    m.close();
  }, 45_000);

  test("the service killed (SIGKILL) in the middle of a flush and restarted: everything acked arrives once", async () => {
    const p = await proxy();
    // Slow MongoDB and small batches, so the kill lands while a batch is on the wire.
    await p.latency(150);
    const dbName = `${fx.mongo.dbName}_crash`;
    const dir = tempDir();
    fx.defer(() => dir.remove());
    const env = mongoEnv(fx.mongo, p.uri, {
      MONGO_DB: dbName,
      MONGO_FLUSH_BATCH: "40",
      MONGO_SOCKET_TIMEOUT_MS: "5000",
    });
    const first = await spawnService({ dir: dir.path, env });
    fx.defer(() => void first.proc.kill("SIGKILL"));
    const m = await first.connect(10, { lesson_id: 5, student_id: 16 });
    const conversationId = String((await m.next("ready")).conversation_id);
    const acked = await sendMany(m, 400, "k");
    await waitUntil(
      async () => {
        const n = (await storedIds(fx.client, dbName, conversationId)).length;
        return n >= 80 && n < 400;
      },
      { message: "part of the backlog to reach MongoDB", timeoutMs: 20_000 },
    );
    expect(await first.kill("SIGKILL")).not.toBe(0);
    const partial = (await storedIds(fx.client, dbName, conversationId)).length;
    expect(partial).toBeLessThan(400);

    await p.pass();
    const second = await spawnService({ dir: dir.path, env });
    fx.defer(() => second.stop());
    await drained(second, 25_000);
    const stored = await storedIds(fx.client, dbName, conversationId);
    const result = expectExactlyOnce(acked, stored);
    expect(result.counts.storedDistinct).toBe(400);
    m.close();
  }, 45_000);

  test("SIGTERM flushes what it can within MONGO_SHUTDOWN_FLUSH_MS, and keeps the rest for the next start", async () => {
    const p = await proxy();
    const dbName = `${fx.mongo.dbName}_term`;
    const dir = tempDir();
    fx.defer(() => dir.remove());
    const env = mongoEnv(fx.mongo, p.uri, { MONGO_DB: dbName, MONGO_SHUTDOWN_FLUSH_MS: "2000" });
    const first = await spawnService({ dir: dir.path, env });
    const m = await first.connect(10, { lesson_id: 5, student_id: 15 });
    const conversationId = String((await m.next("ready")).conversation_id);
    await p.resetPeer();
    const acked = await sendMany(m, 30, "t");
    // MongoDB unreachable at shutdown: the stop stays bounded and exits cleanly.
    const t0 = Date.now();
    expect(await first.kill("SIGTERM")).toBe(0);
    expect(Date.now() - t0).toBeLessThan(8_000);
    expect(await storedIds(fx.client, dbName, conversationId)).toEqual([]);

    await p.pass();
    const second = await spawnService({ dir: dir.path, env });
    const m2 = await second.connect(10, { lesson_id: 5, student_id: 15 });
    await m2.next("ready");
    acked.push(...(await sendMany(m2, 10, "u")));
    // This time MongoDB answers: the last flush empties the outbox before exit.
    await p.latency(50);
    expect(await second.kill("SIGTERM")).toBe(0);
    const stored = await storedIds(fx.client, dbName, conversationId);
    expectExactlyOnce(acked, stored);
    expect(stored.length).toBe(40);
  }, 45_000);
});
