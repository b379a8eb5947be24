import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MongoBulkWriteError, type MongoClient, MongoServerError, ObjectId, type WriteError } from "mongodb";
import { type MongoHandle, startMongo } from "../helpers/ferretdb.ts";

interface Msg {
  _id: ObjectId;
  room: string;
  seq: number;
  body?: string;
}

const asArray = (e: MongoBulkWriteError): WriteError[] =>
  Array.isArray(e.writeErrors) ? [...e.writeErrors] : [e.writeErrors as WriteError];

async function bulkError(p: Promise<unknown>): Promise<MongoBulkWriteError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MongoBulkWriteError);
  return err as MongoBulkWriteError;
}

describe("FerretDB as the MongoDB system of record", () => {
  let mongo: MongoHandle;
  let client: MongoClient;

  beforeAll(async () => {
    mongo = await startMongo();
    client = await mongo.client();
  });

  afterAll(async () => {
    await mongo?.destroy();
  });

  const db = () => client.db(mongo.dbName);

  test("inserts and reads back documents with explicit ObjectId _id", async () => {
    const msgs = db().collection<Msg>("explicit_ids");
    const ids = [new ObjectId(), new ObjectId()];
    const res = await msgs.insertMany(ids.map((_id, seq) => ({ _id, room: "r", seq })));
    expect(Object.values(res.insertedIds).map(String)).toEqual(ids.map(String));
    const back = await msgs.find().sort({ seq: 1 }).toArray();
    expect(back.map((d) => d._id.toHexString())).toEqual(ids.map((id) => id.toHexString()));
  });

  test("insertMany ordered:false with duplicate _ids: E11000 per duplicate, the rest inserted", async () => {
    // This is the idempotent-flush contract: re-sending a batch that partly landed must insert the
    // missing documents and report the rest as duplicates, never fail the whole batch.
    const msgs = db().collection<Msg>("dup_insert");
    const ids = Array.from({ length: 5 }, () => new ObjectId());
    await msgs.insertOne({ _id: ids[1]!, room: "r", seq: 1 });
    const batch = [
      { _id: ids[0]!, room: "r", seq: 0 },
      { _id: ids[1]!, room: "r", seq: 1 }, // already stored
      { _id: ids[2]!, room: "r", seq: 2 },
      { _id: ids[2]!, room: "r", seq: 2 }, // duplicate within the batch
      { _id: ids[3]!, room: "r", seq: 3 },
    ];
    const err = await bulkError(msgs.insertMany(batch, { ordered: false }));

    expect(err.code).toBe(11000);
    expect(err.insertedCount).toBe(3);
    const writeErrors = asArray(err);
    expect(writeErrors.map((w) => [w.index, w.code])).toEqual([
      [1, 11000],
      [3, 11000],
    ]);
    // FerretDB 1.24 quirk: errmsg names only the collection ("E11000 duplicate key error collection:
    // db.coll"), with no index name or dup key, and keyPattern/keyValue are absent. Match on code only.
    for (const w of writeErrors) {
      expect(w.errmsg).toBe(`E11000 duplicate key error collection: ${mongo.dbName}.dup_insert`);
      expect(w.errInfo).toBeUndefined();
    }
    expect(Object.keys(err.insertedIds).map(Number)).toEqual([0, 2, 4]);
    expect(await msgs.countDocuments()).toBe(4);
  });

  test("insertMany ordered:false keeps going across the server's 100-document insert batches", async () => {
    const msgs = db().collection<Msg>("dup_insert_big");
    const ids = Array.from({ length: 350 }, () => new ObjectId());
    const preexisting = [50, 150, 250, 349];
    await msgs.insertMany(preexisting.map((i) => ({ _id: ids[i]!, room: "r", seq: i })));
    const err = await bulkError(
      msgs.insertMany(
        ids.map((_id, seq) => ({ _id, room: "r", seq })),
        { ordered: false },
      ),
    );
    expect(asArray(err).map((w) => w.index)).toEqual(preexisting);
    expect(err.insertedCount).toBe(346);
    expect(await msgs.countDocuments()).toBe(350);
  });

  test("insertMany ordered:true stops at the first duplicate", async () => {
    const msgs = db().collection<Msg>("dup_insert_ordered");
    const dup = new ObjectId();
    await msgs.insertOne({ _id: dup, room: "r", seq: 0 });
    const err = await bulkError(
      msgs.insertMany([
        { _id: new ObjectId(), room: "r", seq: 1 },
        { _id: dup, room: "r", seq: 0 },
        { _id: new ObjectId(), room: "r", seq: 2 },
      ]),
    );
    expect(asArray(err).map((w) => [w.index, w.code])).toEqual([[1, 11000]]);
    expect(err.insertedCount).toBe(1);
    expect(await msgs.countDocuments()).toBe(2);
  });

  test("insertOne duplicate is a plain MongoServerError 11000, not a bulk error", async () => {
    const msgs = db().collection<Msg>("dup_single");
    const _id = new ObjectId();
    await msgs.insertOne({ _id, room: "r", seq: 0 });
    const err = await msgs.insertOne({ _id, room: "r", seq: 0 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MongoServerError);
    expect(err).not.toBeInstanceOf(MongoBulkWriteError);
    expect((err as MongoServerError).code).toBe(11000);
    expect((err as MongoServerError).keyValue).toBeUndefined();
  });

  test("bulkWrite updateOne upsert with $setOnInsert inserts once and never overwrites", async () => {
    const rooms = db().collection<{ _id: string; createdBy: string; lastSeq: number }>("upsert_rooms");
    const res = await rooms.bulkWrite([
      {
        updateOne: {
          filter: { _id: "room1" },
          update: { $setOnInsert: { createdBy: "alice" }, $max: { lastSeq: 1 } },
          upsert: true,
        },
      },
      {
        updateOne: {
          filter: { _id: "room1" },
          update: { $setOnInsert: { createdBy: "bob" }, $max: { lastSeq: 5 } },
          upsert: true,
        },
      },
    ]);
    expect(res.upsertedCount).toBe(1);
    expect(res.matchedCount).toBe(1);
    expect(res.upsertedIds).toEqual({ 0: "room1" });
    expect(await rooms.findOne({ _id: "room1" })).toEqual({ _id: "room1", createdBy: "alice", lastSeq: 5 });
  });

  test("FerretDB 1.24 quirk: upsertedIds are keyed by upsert count, not by operation index", async () => {
    const rooms = db().collection<{ _id: string; n: number }>("upsert_index");
    await rooms.insertOne({ _id: "existing", n: 0 });
    const res = await rooms.bulkWrite([
      { updateOne: { filter: { _id: "existing" }, update: { $set: { n: 1 } }, upsert: true } },
      { updateOne: { filter: { _id: "fresh" }, update: { $set: { n: 1 } }, upsert: true } },
    ]);
    expect(res.upsertedCount).toBe(1);
    // Real MongoDB reports { 1: "fresh" }. Code must not map upsertedIds back to operations by key.
    expect(res.upsertedIds).toEqual({ 0: "fresh" });
  });

  test("unique compound index is created and enforced", async () => {
    const msgs = db().collection<Msg>("unique_room_seq");
    const name = await msgs.createIndex({ room: 1, seq: 1 }, { unique: true, name: "room_seq_unique" });
    expect(name).toBe("room_seq_unique");
    const idx = (await msgs.indexes()).find((i) => i.name === "room_seq_unique");
    expect(idx).toMatchObject({ key: { room: 1, seq: 1 }, unique: true });

    await msgs.insertOne({ _id: new ObjectId(), room: "a", seq: 1 });
    // Same seq in another room, or another seq in the same room, is fine.
    await msgs.insertOne({ _id: new ObjectId(), room: "b", seq: 1 });
    await msgs.insertOne({ _id: new ObjectId(), room: "a", seq: 2 });

    const err = await bulkError(
      msgs.insertMany(
        [
          { _id: new ObjectId(), room: "a", seq: 1 },
          { _id: new ObjectId(), room: "a", seq: 3 },
        ],
        { ordered: false },
      ),
    );
    expect(asArray(err).map((w) => [w.index, w.code])).toEqual([[0, 11000]]);
    expect(await msgs.countDocuments({ room: "a" })).toBe(3);
  });

  test("upsert that collides with a unique index fails with 11000", async () => {
    const msgs = db().collection<Msg>("unique_upsert");
    await msgs.createIndex({ room: 1, seq: 1 }, { unique: true });
    await msgs.insertOne({ _id: new ObjectId(), room: "a", seq: 1, body: "first" });

    // The filter does not match the stored doc (different body), so the upsert inserts and collides.
    const single = await msgs
      .updateOne({ room: "a", seq: 1, body: "second" }, { $set: { body: "second" } }, { upsert: true })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(single).toBeInstanceOf(MongoServerError);
    expect((single as MongoServerError).code).toBe(11000);
    const stored = await msgs.find({ room: "a" }).toArray();
    expect(stored.map(({ room, seq, body }) => ({ room, seq, body }))).toEqual([
      { room: "a", seq: 1, body: "first" },
    ]);
  });

  test("FerretDB 1.24 quirk: an update batch stops at the first error even with ordered:false", async () => {
    const msgs = db().collection<Msg>("unique_upsert_bulk");
    await msgs.createIndex({ room: 1, seq: 1 }, { unique: true });
    await msgs.insertOne({ _id: new ObjectId(), room: "a", seq: 1 });
    const err = await bulkError(
      msgs.bulkWrite(
        [
          { updateOne: { filter: { room: "a", seq: 0 }, update: { $set: { body: "x" } }, upsert: true } },
          {
            updateOne: {
              filter: { room: "a", seq: 1, body: "y" },
              update: { $set: { body: "y" } },
              upsert: true,
            },
          },
          { updateOne: { filter: { room: "a", seq: 2 }, update: { $set: { body: "z" } }, upsert: true } },
        ],
        { ordered: false },
      ),
    );
    // Real MongoDB: one writeError at index 1, ops 0 and 2 upserted (upsertedCount 2).
    // FerretDB: the whole update command fails: the error is reported at index 0, op 0 *was* applied
    // but is not reported as upserted, and op 2 never ran.
    expect(asArray(err).map((w) => [w.index, w.code])).toEqual([[0, 11000]]);
    expect(err.upsertedCount).toBe(0);
    const seqs = (await msgs.find({ room: "a" }).sort({ seq: 1 }).toArray()).map((d) => d.seq);
    expect(seqs).toEqual([0, 1]);
  });

  test("transactions and change streams are not available", async () => {
    const watchErr = await db()
      .collection("nope")
      .aggregate([{ $changeStream: {} }])
      .toArray()
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(watchErr).toBeInstanceOf(MongoServerError);
    expect((watchErr as MongoServerError).code).toBe(238); // NotImplemented

    const session = client.startSession();
    try {
      const txnErr = await session
        .withTransaction(async () => {
          await db().collection("nope").insertOne({ x: 1 }, { session });
        })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(txnErr).toBeInstanceOf(MongoServerError);
    } finally {
      await session.endSession();
    }
  });
});

describe("FerretDB outage: stop, write fails fast, start, same client recovers", () => {
  let mongo: MongoHandle;

  beforeAll(async () => {
    mongo = await startMongo();
  });

  afterAll(async () => {
    await mongo?.destroy();
  });

  test("bounded failure while down, recovery on the same port and data", async () => {
    const client = await mongo.client({
      serverSelectionTimeoutMS: 1_000,
      socketTimeoutMS: 1_000,
      connectTimeoutMS: 1_000,
      heartbeatFrequencyMS: 500,
    });
    const msgs = client.db(mongo.dbName).collection<{ _id: string }>("outage");
    await msgs.insertOne({ _id: "before" });

    await mongo.stop();
    const t0 = performance.now();
    const err = await msgs.insertOne({ _id: "during" }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    const failMs = performance.now() - t0;
    expect(err).not.toBeNull();
    expect(failMs).toBeLessThan(3_000);

    const t1 = performance.now();
    await mongo.start();
    const restartMs = performance.now() - t1;
    expect(restartMs).toBeLessThan(10_000);

    // Server selection waits for the monitor to see the server again, so one call suffices.
    await msgs.insertOne({ _id: "after" });
    const ids = (await msgs.find().sort({ _id: 1 }).toArray()).map((d) => d._id);
    // Same data dir: the pre-outage write survived; the failed one never happened.
    expect(ids).toEqual(["after", "before"]);
    console.info(
      `outage: write failed after ${failMs.toFixed(0)} ms; restart took ${restartMs.toFixed(0)} ms`,
    );
  }, 20_000);

  test("kill (SIGKILL) then start keeps acknowledged writes", async () => {
    const client = await mongo.client({ serverSelectionTimeoutMS: 2_000, heartbeatFrequencyMS: 500 });
    const msgs = client.db(mongo.dbName).collection<{ _id: string }>("crash");
    await msgs.insertMany([{ _id: "a" }, { _id: "b" }]);
    await mongo.kill();
    await mongo.start();
    expect((await msgs.find().sort({ _id: 1 }).toArray()).map((d) => d._id)).toEqual(["a", "b"]);
  }, 20_000);
});
