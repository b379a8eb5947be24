import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import type { Socket, TCPSocketListener } from "bun";
import { MongoClient, MongoNetworkError, MongoNetworkTimeoutError } from "mongodb";
import { type MongoHandle, startMongo } from "../helpers/ferretdb.ts";
import { startProxy, type TcpProxy } from "../helpers/tcp-proxy.ts";

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value?: T; error?: Error }> {
  const t0 = performance.now();
  try {
    const value = await fn();
    return { ms: performance.now() - t0, value };
  } catch (error) {
    return { ms: performance.now() - t0, error: error as Error };
  }
}

describe("tcp proxy in front of FerretDB", () => {
  let mongo: MongoHandle;
  let proxy: TcpProxy;
  let client: MongoClient;

  beforeAll(async () => {
    mongo = await startMongo();
    proxy = await startProxy({ target: { host: mongo.host, port: mongo.port } });
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
    proxy?.close();
    await mongo?.destroy();
  });

  const coll = () => client.db(mongo.dbName).collection<{ _id: string; n: number }>("proxy");

  test("pass mode forwards the wire protocol both ways", async () => {
    proxy.setMode("pass");
    await coll().insertOne({ _id: "p1", n: 1 });
    expect(await coll().findOne({ _id: "p1" })).toEqual({ _id: "p1", n: 1 });
    const s = proxy.stats();
    expect(s.connections).toBeGreaterThan(0);
    expect(s.bytesToServer).toBeGreaterThan(0);
    expect(s.bytesToClient).toBeGreaterThan(0);
  });

  test("blackhole mode: operations hang until the client's socket timeout", async () => {
    proxy.setMode("blackhole");
    const r = await timed(() => coll().insertOne({ _id: "b1", n: 1 }));
    expect(r.error).toBeInstanceOf(MongoNetworkTimeoutError);
    // Lower bound proves the proxy really held the connection rather than refusing it.
    expect(r.ms).toBeGreaterThanOrEqual(900);
    expect(r.ms).toBeLessThan(5_000);
    expect(proxy.stats().bytesDropped).toBeGreaterThan(0);
  });

  test("reset mode: an in-flight operation fails at once, not after socketTimeoutMS", async () => {
    // A separate client with a long socket timeout: only an RST can make it fail fast.
    const patient = new MongoClient(proxy.uri, {
      directConnection: true,
      serverSelectionTimeoutMS: 1_500,
      socketTimeoutMS: 20_000,
      heartbeatFrequencyMS: 500,
      // The driver retries a read once after a network error, which would turn the RST into a
      // server-selection wait; we want to see the raw failure.
      retryReads: false,
      retryWrites: false,
    });
    try {
      proxy.setMode("pass");
      await patient.connect();
      await patient.db("admin").command({ ping: 1 });
      // Delay keeps the request in flight long enough to reset it mid-operation.
      proxy.setMode("delay", { delayMs: 2_000 });
      const pending = timed(() =>
        patient.db(mongo.dbName).collection<{ _id: string }>("proxy").findOne({ _id: "p1" }),
      );
      await Bun.sleep(100);
      proxy.setMode("reset");
      const r = await pending;
      expect(r.error).toBeInstanceOf(MongoNetworkError);
      expect(r.error).not.toBeInstanceOf(MongoNetworkTimeoutError);
      expect(r.ms).toBeLessThan(1_000);

      // New operations cannot connect: they fail within serverSelectionTimeoutMS, not socketTimeoutMS.
      const r2 = await timed(() => patient.db("admin").command({ ping: 1 }));
      expect(r2.error).toBeDefined();
      expect(r2.ms).toBeLessThan(4_000);
    } finally {
      await patient.close().catch(() => {});
    }
  });

  test("back to pass mode: the same client recovers", async () => {
    proxy.setMode("pass");
    // One operation may still land on a stale pooled connection; the driver then clears the pool.
    const deadline = Date.now() + 5_000;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        await coll().insertOne({ _id: "r1", n: 1 });
        last = undefined;
        break;
      } catch (err) {
        last = err;
        await Bun.sleep(100);
      }
    }
    expect(last).toBeUndefined();
    expect(await coll().findOne({ _id: "r1" })).toEqual({ _id: "r1", n: 1 });
    // The blackholed insert never reached the server.
    expect(await coll().findOne({ _id: "b1" })).toBeNull();
  });

  test("delay mode adds latency in each direction", async () => {
    proxy.setMode("pass");
    const admin = client.db("admin");
    await admin.command({ ping: 1 });
    const base = await timed(() => admin.command({ ping: 1 }));
    proxy.setMode("delay", { delayMs: 150 });
    const slow = await timed(() => admin.command({ ping: 1 }));
    proxy.setMode("pass");
    expect(base.error).toBeUndefined();
    expect(slow.error).toBeUndefined();
    // Request and reply are each delayed, so a round trip costs at least two delays.
    expect(slow.ms).toBeGreaterThanOrEqual(290);
    expect(slow.ms).toBeLessThan(1_500);
  });
});

describe("tcp proxy byte integrity", () => {
  let echo: TCPSocketListener<{ queue: Uint8Array[] }>;
  let proxy: TcpProxy;

  beforeAll(async () => {
    // The echo server must honour backpressure too, or it would be the one corrupting the stream.
    const flush = (s: Socket<{ queue: Uint8Array[] }>) => {
      while (s.data.queue.length > 0) {
        const head = s.data.queue[0]!;
        const n = s.write(head);
        if (n < 0) return;
        if (n < head.byteLength) {
          s.data.queue[0] = head.subarray(n);
          return;
        }
        s.data.queue.shift();
      }
    };
    echo = Bun.listen<{ queue: Uint8Array[] }>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        binaryType: "uint8array",
        open(s) {
          s.data = { queue: [] };
        },
        data(s, chunk) {
          s.data.queue.push(new Uint8Array(chunk));
          flush(s);
        },
        drain: flush,
      },
    });
    proxy = await startProxy({ target: { host: "127.0.0.1", port: echo.port } });
  });

  afterAll(() => {
    proxy?.close();
    echo?.stop(true);
  });

  test("several MB round-trip intact while the receiver stalls (exercises backpressure)", async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const received: Uint8Array[] = [];
    let receivedBytes = 0;
    const { promise: done, resolve, reject } = Promise.withResolvers<void>();
    let drained: (() => void) | null = null;

    const sock = await Bun.connect({
      hostname: "127.0.0.1",
      port: proxy.port,
      socket: {
        binaryType: "uint8array",
        data(_s, chunk) {
          received.push(new Uint8Array(chunk));
          receivedBytes += chunk.byteLength;
          if (receivedBytes >= payload.byteLength) resolve();
        },
        drain() {
          drained?.();
        },
        close() {
          if (receivedBytes < payload.byteLength) reject(new Error(`closed after ${receivedBytes} bytes`));
        },
        error(_s, err) {
          reject(err);
        },
      },
    });

    // Not reading for a while makes every hop's kernel buffers fill up, so the proxy's writes go partial.
    sock.pause();
    setTimeout(() => sock.resume(), 300);

    let offset = 0;
    while (offset < payload.byteLength) {
      const chunk = payload.subarray(offset, offset + 256 * 1024);
      const n = sock.write(chunk);
      if (n < 0) throw new Error("client socket closed while writing");
      offset += n;
      // `drain` only fires after a short write, so wait for it only then.
      if (n < chunk.byteLength) {
        await new Promise<void>((r) => {
          drained = r;
        });
        drained = null;
      }
    }

    await Promise.race([
      done,
      Bun.sleep(10_000).then(() => {
        throw new Error(`timed out with ${receivedBytes}/${payload.byteLength} bytes echoed`);
      }),
    ]);
    sock.end();

    const got = Buffer.concat(received);
    expect(got.byteLength).toBe(payload.byteLength);
    const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    expect(sha(got)).toBe(sha(payload));
    const s = proxy.stats();
    expect(s.bytesToServer).toBe(payload.byteLength);
    expect(s.bytesToClient).toBe(payload.byteLength);
    expect(s.partialWrites).toBeGreaterThan(0);
  });
});
