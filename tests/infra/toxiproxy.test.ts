import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MongoClient, MongoNetworkError, MongoNetworkTimeoutError } from "mongodb";
import { type MongoHandle, startMongo } from "../helpers/ferretdb.ts";
import { startToxiproxy, type ToxiProxy, type ToxiproxyServer } from "../helpers/toxiproxy.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * Pins the fault shapes of tests/helpers/toxiproxy.ts as a MongoDB client sees them, the ones
 * tests/durability/mongo-faults.test.ts relies on: blackhole ends in the driver's socket timeout and nothing
 * reaches the server; a reset fails an in-flight operation at once; latency costs a delay each way;
 * bandwidth slows a large write; down refuses connections; pass recovers the same client.
 */

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value?: T; error?: Error }> {
  const t0 = performance.now();
  try {
    const value = await fn();
    return { ms: performance.now() - t0, value };
  } catch (error) {
    return { ms: performance.now() - t0, error: error as Error };
  }
}

describe("Toxiproxy in front of FerretDB", () => {
  let mongo: MongoHandle;
  let server: ToxiproxyServer;
  let proxy: ToxiProxy;
  let client: MongoClient;

  beforeAll(async () => {
    mongo = await startMongo();
    server = await startToxiproxy();
    proxy = await server.createProxy("mongo", { host: mongo.host, port: mongo.port });
    // Short timeouts so each fault shows up in about a second; heartbeat at the driver minimum so
    // recovery after a fault is noticed quickly.
    client = new MongoClient(proxy.uri, {
      directConnection: true,
      serverSelectionTimeoutMS: 1_500,
      socketTimeoutMS: 1_000,
      connectTimeoutMS: 1_000,
      heartbeatFrequencyMS: 500,
    });
    await client.connect();
  });

  afterAll(async () => {
    await client?.close().catch(() => {});
    await server?.stop();
    await mongo?.destroy();
  });

  const coll = () => client.db(mongo.dbName).collection<{ _id: string; n: number; pad?: string }>("proxy");

  /** One operation may still land on a stale pooled connection; the driver then clears the pool. */
  const recovered = (id: string) =>
    waitUntil(
      async () => {
        await coll().insertOne({ _id: id, n: 1 });
        return true;
      },
      { message: `an insert through the proxy to succeed again (${id})`, timeoutMs: 5_000, intervalMs: 100 },
    );

  test("pass forwards the wire protocol both ways, on a kernel-chosen port", async () => {
    await proxy.pass();
    expect(proxy.port).toBeGreaterThan(0);
    await coll().insertOne({ _id: "p1", n: 1 });
    expect(await coll().findOne({ _id: "p1" })).toEqual({ _id: "p1", n: 1 });
    const listed = (await server.proxies()).mongo!;
    expect({ enabled: listed.enabled, toxics: listed.toxics }).toEqual({ enabled: true, toxics: [] });
  });

  test("blackhole: operations hang until the client's socket timeout, and nothing reaches the server", async () => {
    await proxy.blackhole();
    expect((await proxy.toxics()).map((t) => `${t.type}/${t.stream}`).sort()).toEqual([
      "timeout/downstream",
      "timeout/upstream",
    ]);
    const r = await timed(() => coll().insertOne({ _id: "b1", n: 1 }));
    expect(r.error).toBeInstanceOf(MongoNetworkTimeoutError);
    // Lower bound proves the proxy really held the connection rather than refusing it.
    expect(r.ms).toBeGreaterThanOrEqual(900);
    expect(r.ms).toBeLessThan(5_000);
    await proxy.pass();
    await recovered("r1");
    // The blackholed insert never reached the server.
    expect(await coll().findOne({ _id: "b1" })).toBeNull();
  });

  test("resetPeer: the next operation on a pooled connection fails at once, not after socketTimeoutMS; new ones fail fast too", async () => {
    // A separate client with a long socket timeout: only a reset can make it fail fast.
    const patient = new MongoClient(proxy.uri, {
      directConnection: true,
      serverSelectionTimeoutMS: 1_500,
      socketTimeoutMS: 20_000,
      heartbeatFrequencyMS: 500,
      // The driver retries once after a network error, which would turn the reset into a
      // server-selection wait; we want to see the raw failure.
      retryReads: false,
      retryWrites: false,
    });
    try {
      await proxy.pass();
      await patient.connect();
      await patient.db("admin").command({ ping: 1 });
      await proxy.resetPeer();
      // reset_peer acts on the next bytes a connection carries: the request itself.
      const r = await timed(() =>
        patient.db(mongo.dbName).collection<{ _id: string }>("proxy").findOne({ _id: "p1" }),
      );
      expect(r.error).toBeInstanceOf(MongoNetworkError);
      expect(r.error).not.toBeInstanceOf(MongoNetworkTimeoutError);
      expect(r.ms).toBeLessThan(1_000);
      // A new connection is reset on its first bytes (the handshake), so an operation fails within
      // serverSelectionTimeoutMS, not socketTimeoutMS.
      const r2 = await timed(() => patient.db("admin").command({ ping: 1 }));
      expect(r2.error).toBeDefined();
      expect(r2.ms).toBeLessThan(4_000);
    } finally {
      await patient.close().catch(() => {});
    }
    await proxy.pass();
    await recovered("r2");
  });

  test("disabling the proxy cuts an in-flight operation at once", async () => {
    // Toxiproxy cannot reset a connection whose bytes sit in a toxic (adding a toxic hands the
    // held bytes on first); closing every connection, as setEnabled(false) does, can.
    const patient = new MongoClient(proxy.uri, {
      directConnection: true,
      serverSelectionTimeoutMS: 1_500,
      socketTimeoutMS: 20_000,
      retryReads: false,
      retryWrites: false,
    });
    try {
      await proxy.pass();
      await patient.connect();
      await patient.db("admin").command({ ping: 1 });
      await proxy.latency(2_000);
      const pending = timed(() =>
        patient.db(mongo.dbName).collection<{ _id: string }>("proxy").findOne({ _id: "p1" }),
      );
      await Bun.sleep(100);
      await proxy.setEnabled(false);
      const r = await pending;
      expect(r.error).toBeInstanceOf(MongoNetworkError);
      expect(r.error).not.toBeInstanceOf(MongoNetworkTimeoutError);
      expect(r.ms).toBeLessThan(1_000);
    } finally {
      await patient.close().catch(() => {});
    }
    await proxy.pass();
    await recovered("r4");
  });

  test("latency adds the delay in each direction", async () => {
    await proxy.pass();
    const admin = client.db("admin");
    await admin.command({ ping: 1 });
    const base = await timed(() => admin.command({ ping: 1 }));
    await proxy.latency(150);
    const slow = await timed(() => admin.command({ ping: 1 }));
    await proxy.pass();
    expect(base.error).toBeUndefined();
    expect(slow.error).toBeUndefined();
    // Request and reply are each delayed, so a round trip costs at least two delays.
    expect(slow.ms).toBeGreaterThanOrEqual(290);
    expect(slow.ms).toBeLessThan(1_500);
  });

  test("bandwidth caps throughput: 100 KB at 50 KB/s takes about two seconds", async () => {
    const patient = new MongoClient(proxy.uri, { directConnection: true, socketTimeoutMS: 10_000 });
    try {
      await proxy.pass();
      await patient.connect();
      await proxy.bandwidth(50);
      const r = await timed(() =>
        patient
          .db(mongo.dbName)
          .collection<{ _id: string; pad: string }>("proxy")
          .insertOne({ _id: "w1", pad: "x".repeat(100 * 1024) }),
      );
      expect(r.error).toBeUndefined();
      expect(r.ms).toBeGreaterThanOrEqual(1_500);
      expect(r.ms).toBeLessThan(8_000);
    } finally {
      await proxy.pass();
      await patient.close().catch(() => {});
    }
  });

  test("down refuses connections at once; enabling it again listens on the same port", async () => {
    const fresh = new MongoClient(proxy.uri, {
      directConnection: true,
      serverSelectionTimeoutMS: 1_500,
      connectTimeoutMS: 1_000,
      socketTimeoutMS: 1_000,
    });
    try {
      await proxy.down();
      expect((await server.proxies()).mongo!.enabled).toBe(false);
      // A plain TCP connect is refused: nothing listens on the port any more.
      const refused = await timed(() =>
        Bun.connect({ hostname: proxy.host, port: proxy.port, socket: { data() {} } }),
      );
      expect((refused.error as Error & { code?: string }).code).toBe("ECONNREFUSED");
      expect(refused.ms).toBeLessThan(1_000);
      const r = await timed(() =>
        fresh
          .db(mongo.dbName)
          .collection("proxy")
          .insertOne({ _id: "d1" } as never),
      );
      expect(r.error).toBeDefined();
      expect(r.ms).toBeLessThan(4_000);
    } finally {
      await fresh.close().catch(() => {});
    }
    await proxy.pass();
    await recovered("r3");
    expect(await coll().findOne({ _id: "d1" })).toBeNull();
  });
});
