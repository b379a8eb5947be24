import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type MongoClient, ObjectId } from "mongodb";
import { conversationIdFor } from "../../src/ids.ts";
import { download, downloadedBytes, uploaded } from "../helpers/attachments.ts";
import { type MongoHandle, startMongo } from "../helpers/ferretdb.ts";
import { bigPng, makePdf, makePng, sha256Hex } from "../helpers/files.ts";
import { drained, mongoEnv } from "../helpers/outbox.ts";
import { checkQueue } from "../helpers/queue-checker.ts";
import {
  isMessage,
  removePrefix,
  requireRedis,
  SHARED_REDIS_URL,
  socketPool,
  testPrefix,
} from "../helpers/redis.ts";
import { spawnService, startTestService, type TestService, tempDir } from "../helpers/service.ts";
import { type ToxiProxy, toxiproxyForFile } from "../helpers/toxiproxy.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * Attachments with MongoDB GridFS behind (FerretDB): every upload reaches GridFS exactly once
 * through an outage and through a kill -9 after the 201; two instances over Redis, where the
 * other instance answers 503 + Retry-After until the bytes are in GridFS, then serves them.
 */

const CONV = conversationIdFor(5, 10, 15);
let mongo: MongoHandle;
let client: MongoClient;
const cleanups: Array<() => Promise<void> | void> = [];
const pool = socketPool();
const toxiproxy = toxiproxyForFile();

beforeAll(async () => {
  mongo = await startMongo();
  client = await mongo.client({ serverSelectionTimeoutMS: 5_000 });
});

afterAll(async () => {
  pool.closeAll();
  for (const c of cleanups.reverse()) await c();
  await mongo?.destroy();
});

const files = () => client.db(mongo.dbName).collection("attachments.files");

/** Ids in GridFS, one entry per files document (so a duplicate would show). */
async function gridIds(ids: string[]): Promise<string[]> {
  const docs = await files()
    .find({ _id: { $in: ids.map((id) => new ObjectId(id)) } }, { projection: { _id: 1 } })
    .toArray();
  return docs.map((d) => (d._id as ObjectId).toHexString());
}

/** The bytes GridFS holds for an id, read back with the driver's own bucket. */
async function gridBytes(id: string): Promise<Uint8Array> {
  const { GridFSBucket } = await import("mongodb");
  const bucket = new GridFSBucket(client.db(mongo.dbName), { bucketName: "attachments" });
  const parts: Buffer[] = [];
  for await (const chunk of bucket.openDownloadStream(new ObjectId(id))) parts.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(parts));
}

async function service(env: Record<string, string> = {}, dir?: string): Promise<TestService> {
  const svc = await startTestService({ env: mongoEnv(mongo, mongo.uri, env), dir });
  cleanups.push(() => svc.stop());
  return svc;
}

describe("GridFS behind the local store", () => {
  test("every attachment reaches GridFS exactly once across a MongoDB outage", async () => {
    const svc = await service();
    const mentor = await pool.connect(svc, 10, { lesson_id: 5, student_id: 15 });
    const sent: Array<{ id: string; bytes: Uint8Array }> = [];
    const send = async (n: number, seed: number) => {
      for (let i = 0; i < n; i++) {
        const bytes = i % 2 ? makePdf(`page ${seed + i}`) : bigPng(300_000 + i * 1000, seed + i);
        const a = await uploaded(svc.url, 10, CONV, bytes, { name: `f${seed + i}` });
        mentor.send({ type: "message", text: `file ${seed + i}`, attachments: [a.id] });
        await mentor.next("ack");
        sent.push({ id: a.id, bytes });
      }
    };
    await send(3, 0);
    await drained(svc);
    await mongo.stop();
    // Uploads and downloads go on from the local volume while MongoDB is away.
    await send(6, 100);
    expect(await downloadedBytes(svc.url, 15, sent.at(-1)!.id)).toEqual(sent.at(-1)!.bytes);
    await mongo.start();
    await drained(svc, 30_000);
    const ids = sent.map((s) => s.id);
    const verdict = checkQueue({ sent: ids, acked: ids, stored: await gridIds(ids) });
    expect({ lost: verdict.lost, duplicated: verdict.duplicated, unexpected: verdict.unexpected }).toEqual({
      lost: [],
      duplicated: [],
      unexpected: [],
    });
    for (const s of sent) expect(sha256Hex(await gridBytes(s.id))).toBe(sha256Hex(s.bytes));
    // The MongoDB message documents name their attachments too.
    const doc = await client.db(mongo.dbName).collection("messages").findOne({ text: "file 105" });
    expect((doc?.attachments as Array<{ id: string }>)?.map((a) => a.id)).toEqual([sent[8]!.id]);
  }, 60_000);

  test("kill -9 between the 201 and the flush: the copy happens after the restart", async () => {
    const dir = tempDir("attach-kill-");
    cleanups.push(() => dir.remove());
    // MongoDB is reachable only through a proxy that is cut while the upload is taken.
    const proxy = await toxiproxy.proxy({ host: mongo.host, port: mongo.port });
    await proxy.resetPeer();
    const env = mongoEnv(mongo, proxy.uri);
    const first = await spawnService({ dir: dir.path, env });
    const sock = await first.connect(15, { lesson_id: 5 });
    await sock.next("ready");
    const bytes = bigPng(2_500_000, 77);
    const a = await uploaded(first.url, 15, CONV, bytes, { name: "before-crash.png" });
    sock.send({ type: "message", attachments: [a.id], client_id: "k1" });
    await sock.next("ack");
    expect(await first.kill("SIGKILL")).not.toBe(0);
    await proxy.pass();
    const second = await spawnService({ dir: dir.path, env });
    cleanups.push(() => second.stop());
    expect(await downloadedBytes(second.url, 10, a.id)).toEqual(bytes);
    await waitUntil(async () => (await gridIds([a.id])).length === 1, {
      message: "the copy to reach GridFS",
      timeoutMs: 30_000,
    });
    expect(sha256Hex(await gridBytes(a.id))).toBe(a.sha256);
  }, 60_000);
});

describe("two instances", () => {
  const prefix = testPrefix();
  let proxy: ToxiProxy;
  let a: TestService;
  let b: TestService;

  beforeAll(async () => {
    await requireRedis();
    // A reaches MongoDB through a proxy the test can cut; B directly.
    proxy = await toxiproxy.proxy({ host: mongo.host, port: mongo.port });
    const redis = { REDIS_URL: SHARED_REDIS_URL, REDIS_PREFIX: prefix };
    a = await startTestService({ env: mongoEnv(mongo, proxy.uri, { ...redis, INSTANCE_ID: "A" }) });
    b = await startTestService({ env: mongoEnv(mongo, mongo.uri, { ...redis, INSTANCE_ID: "B" }) });
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
      () => removePrefix(prefix),
    );
  });

  test("uploaded on A, relayed to B: 503 + Retry-After until GridFS has it, then the same bytes", async () => {
    const mentor = await pool.connect(a, 10, { lesson_id: 5, student_id: 15 });
    const student = await pool.connect(b, 15, { lesson_id: 5 });
    await proxy.resetPeer();
    const png = bigPng(1_200_000, 91);
    const up = await uploaded(a.url, 10, CONV, png, { name: "from-a.png" });
    mentor.send({ type: "message", text: "look", attachments: [up.id] });
    const ack = await mentor.next("ack");
    const relayed = await student.next(isMessage(ack.id), 10_000);
    expect(relayed.attachments).toEqual([
      { id: up.id, name: "from-a.png", size: png.length, mime: "image/png" },
    ]);
    const early = await download(b.url, 15, up.id);
    expect(early.status).toBe(503);
    expect(Number(early.headers.get("retry-after"))).toBeGreaterThan(0);
    // Strangers still get 404 on B, not a hint that it exists.
    expect((await download(b.url, 16, up.id)).status).toBe(404);
    await proxy.pass();
    await drained(a, 30_000);
    expect(await downloadedBytes(b.url, 15, up.id)).toEqual(png);
    const ranged = await download(b.url, 15, up.id, { range: "bytes=300000-600000" });
    expect(ranged.status).toBe(206);
    expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(png.slice(300_000, 600_001));
    expect(ranged.headers.get("etag")).toBe(`"${up.sha256}"`);
  }, 60_000);

  test("an instance that never heard of an attachment serves it from GridFS, to participants only", async () => {
    const c = await service();
    const pdf = makePdf("shared");
    const up = await uploaded(b.url, 15, CONV, pdf, { name: "notes.pdf" });
    await drained(b, 20_000);
    expect(await downloadedBytes(c.url, 10, up.id)).toEqual(pdf);
    expect((await download(c.url, 11, up.id)).status).toBe(404);
    expect((await download(c.url, 15, "65f0000000000000000000ee")).status).toBe(404);
    const png = makePng(5, 5, 5);
    const local = await uploaded(c.url, 10, CONV, png);
    expect(await downloadedBytes(c.url, 15, local.id)).toEqual(png);
  }, 60_000);
});
