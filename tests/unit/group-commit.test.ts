import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { silentLogger } from "../../src/log.ts";
import { createGroupCommitter } from "../../src/store/group-commit.ts";
import { createCheckpointer } from "../../src/store/sqlite/checkpointer.ts";
import { openStore } from "../../src/store/sqlite/index.ts";
import { tempDir } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";

/** A sync the test releases by hand, counting how many were asked for. */
function manualSync() {
  const waiting: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  return {
    started: () => waiting.length,
    sync: () => new Promise<void>((resolve, reject) => waiting.push({ resolve, reject })),
    release: () => waiting.shift()!.resolve(),
    fail: (err: unknown) => waiting.shift()!.reject(err),
  };
}

const turn = () => new Promise((r) => setImmediate(r));

function memoryDb() {
  const db = new Database(":memory:");
  db.run("CREATE TABLE t (x INTEGER)");
  return { db, transaction: <T>(fn: () => T) => db.transaction(fn)() };
}

describe("group commit with the sync off the loop", () => {
  test("a job settles only after a sync that started after its commit", async () => {
    const { db, transaction } = memoryDb();
    const s = manualSync();
    const c = createGroupCommitter({ transaction, sync: s.sync });
    let done = false;
    const p = c.submit(() => db.run("INSERT INTO t VALUES (1)")).then(() => (done = true));
    await turn();
    expect(s.started()).toBe(1);
    // Committed (visible) but not settled.
    expect(db.query("SELECT count(*) AS n FROM t").get()).toEqual({ n: 1 });
    await turn();
    expect(done).toBe(false);
    s.release();
    await p;
    expect(done).toBe(true);
  });

  test("what arrives during a sync waits, then commits as one batch under the next sync", async () => {
    const { db, transaction } = memoryDb();
    const s = manualSync();
    const sizes: number[] = [];
    const c = createGroupCommitter({ transaction, sync: s.sync, onBatch: (n) => sizes.push(n) });
    const order: number[] = [];
    const first = c.submit(() => db.run("INSERT INTO t VALUES (0)")).then(() => order.push(0));
    await turn();
    const rest = [1, 2, 3, 4, 5].map((i) =>
      c.submit(() => db.run(`INSERT INTO t VALUES (${i})`)).then(() => order.push(i)),
    );
    await turn();
    await turn();
    // Not committed while the first sync is in flight.
    expect(db.query("SELECT count(*) AS n FROM t").get()).toEqual({ n: 1 });
    s.release();
    await first;
    expect(s.started()).toBe(1);
    expect(db.query("SELECT count(*) AS n FROM t").get()).toEqual({ n: 6 });
    s.release();
    await Promise.all(rest);
    expect(sizes).toEqual([1, 5]);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
  });

  test("a failed sync refuses the jobs it covered, with what onCommitError makes of it", async () => {
    const { db, transaction } = memoryDb();
    const s = manualSync();
    const c = createGroupCommitter({
      transaction,
      sync: s.sync,
      onCommitError: (err, jobs) => new Error(`refused ${jobs}: ${(err as Error).message}`),
    });
    const p = c.submit(() => db.run("INSERT INTO t VALUES (1)"));
    await turn();
    s.fail(Object.assign(new Error("EIO: i/o error"), { code: "EIO" }));
    await expect(p).rejects.toThrow("refused 1: EIO: i/o error");
    // The next batch goes on normally.
    const q = c.submit(() => 2);
    await turn();
    s.release();
    expect(await q).toBe(2);
  });

  test("durable() waits for everything committed before it; drain() commits and syncs the queue", async () => {
    const { db, transaction } = memoryDb();
    const s = manualSync();
    const c = createGroupCommitter({ transaction, sync: s.sync });
    expect(await Promise.race([c.durable().then(() => "now"), turn().then(() => "later")])).toBe("now");
    void c.submit(() => db.run("INSERT INTO t VALUES (1)"));
    let durable = false;
    const d = c.durable().then(() => (durable = true));
    await turn();
    s.release();
    await turn();
    expect(durable).toBe(true);
    await d;
    void c.submit(() => db.run("INSERT INTO t VALUES (2)"));
    let drained = false;
    const drain = c.drain().then(() => (drained = true));
    expect(db.query("SELECT count(*) AS n FROM t").get()).toEqual({ n: 2 });
    await turn();
    expect(drained).toBe(false);
    s.release();
    await drain;
    expect(drained).toBe(true);
  });

  test("a small batch syncs inline; a larger one, or one arriving during a sync, goes to the thread", async () => {
    const { db, transaction } = memoryDb();
    const s = manualSync();
    let inline = 0;
    let failNext = false;
    const c = createGroupCommitter({
      transaction,
      sync: s.sync,
      syncNow: () => {
        inline++;
        if (failNext) throw Object.assign(new Error("EIO: i/o error"), { code: "EIO" });
      },
      inlineUpTo: 2,
    });
    await Promise.all([c.submit(() => 1), c.submit(() => 2)]);
    expect(inline).toBe(1);
    expect(s.started()).toBe(0);
    const big = Promise.all([1, 2, 3].map((i) => c.submit(() => db.run(`INSERT INTO t VALUES (${i})`))));
    await turn();
    expect(s.started()).toBe(1);
    s.release();
    await big;
    failNext = true;
    await expect(c.submit(() => 4)).rejects.toThrow("EIO");
  });

  test("a gate holds commits until it opens", async () => {
    const { db, transaction } = memoryDb();
    let open!: () => void;
    let gated = true;
    const c = createGroupCommitter({
      transaction,
      gate: () => (gated ? new Promise<void>((r) => (open = r)) : undefined),
    });
    const p = c.submit(() => db.run("INSERT INTO t VALUES (1)"));
    await turn();
    await turn();
    expect(db.query("SELECT count(*) AS n FROM t").get()).toEqual({ n: 0 });
    gated = false;
    open();
    await p;
    expect(db.query("SELECT count(*) AS n FROM t").get()).toEqual({ n: 1 });
  });
});

/**
 * A store written through a group commit gated by a real checkpointer (checkpoints from 100
 * frames, the writer held at 300), flooded with 1.5 KB messages; the WAL's largest frame count
 * is sampled every `every` messages.
 */
async function flood(opts: {
  messages: number;
  every: number;
  logger?: typeof silentLogger;
  spawn?: (dir: string) => Worker;
  giveUpMs?: number;
  /** A second connection holds a read transaction from the start of the flood to its end. */
  readerHoldsSnapshot?: boolean;
}) {
  const dir = tempDir();
  const path = join(dir.path, "chat.db");
  const store = openStore({ path, synchronous: "FULL", syncOffLoop: true });
  const checkpointer = createCheckpointer({
    path,
    logger: opts.logger ?? silentLogger,
    startFrames: 100,
    pauseFrames: 300,
    ...(opts.giveUpMs !== undefined ? { giveUpMs: opts.giveUpMs } : {}),
    checkpointHere: store.checkpointPassive,
    ...(opts.spawn ? { spawn: () => opts.spawn!(dir.path) } : {}),
  });
  const c = createGroupCommitter({
    transaction: store.transaction,
    sync: store.syncWal,
    gate: checkpointer.gate,
    onBatch: () => checkpointer.committed(),
  });
  store.openConversation("c1", { lessonId: 1, mentorId: 2, studentId: 3 }, Date.now());
  const reader = opts.readerHoldsSnapshot ? new Database(path, { readonly: true }) : undefined;
  if (reader) {
    reader.run("BEGIN");
    reader.query("SELECT count(*) AS n FROM conversations").get();
  }
  let maxFrames = 0;
  const jobs: Promise<unknown>[] = [];
  for (let i = 0; i < opts.messages; i++) {
    const m = { id: `m${String(i).padStart(8, "0")}`, conversationId: "c1", senderId: 2, clientId: `k${i}` };
    jobs.push(c.submit(() => store.insertMessage({ ...m, text: "y".repeat(1500), createdAt: Date.now() })));
    if (i % opts.every === opts.every - 1) {
      await Promise.all(jobs.splice(0));
      maxFrames = Math.max(maxFrames, checkpointer.stats().log);
    }
  }
  await Promise.all(jobs);
  const stats = checkpointer.stats();
  if (reader) {
    reader.run("COMMIT");
    reader.close();
    // Now the thread can copy everything back; one more commit asks it to.
    await c.submit(() => store.touchPresence(2, Date.now()));
    await waitUntil(
      () => {
        // Copied back, or copied back and already restarted by the commit above.
        const now = checkpointer.stats();
        return now.backfilled >= now.log || now.log < 100;
      },
      { message: "the thread to copy the WAL back once the reader is gone", timeoutMs: 10_000 },
    );
  }
  const walBytes = statSync(`${path}-wal`).size;
  await checkpointer.close();
  store.close();
  const walLeft = existsSync(`${path}-wal`);
  dir.remove();
  return {
    maxFrames: Math.max(maxFrames, stats.maxFrames),
    checkpoints: stats.checkpoints,
    giveUps: stats.giveUps,
    walBytes,
    walLeft,
  };
}

describe("checkpoints on their own thread", () => {
  test("a flood through the group commit keeps the WAL under the pause threshold", async () => {
    const r = await flood({ messages: 6000, every: 200 });
    expect(r.checkpoints).toBeGreaterThan(0);
    // ~9 MB of text went through a WAL that never grew far past 300 frames (one batch beyond).
    expect(r.maxFrames).toBeLessThan(300 + 400);
    expect(r.walBytes).toBeLessThan(4 * 1024 * 1024);
    // The writer's close, last, folds the WAL back and removes it.
    expect(r.walLeft).toBe(false);
  }, 60_000);

  test("a pass slower than the writer's patience is waited for: no commit goes past the pause while it copies", async () => {
    // Each pass takes 600 ms, twelve times giveUpMs. SQLite shows what a pass copied only when
    // it ends, so giving up on a pass still copying would let a batch through at every give-up.
    const r = await flood({
      messages: 3000,
      every: 200,
      giveUpMs: 50,
      spawn: () =>
        new Worker(new URL("../helpers/slow-checkpoint-worker.ts", import.meta.url).href, {
          env: { ...process.env, CHECKPOINT_DELAY_MS: "600" },
        }),
    });
    expect(r.checkpoints).toBeGreaterThan(0);
    expect(r.giveUps).toBe(0);
    expect(r.maxFrames).toBeLessThan(300 + 400);
    expect(r.walLeft).toBe(false);
  }, 60_000);

  test("a reader holding an old snapshot slows the writer down instead of stopping it, and the thread does not spin", async () => {
    // The reader's snapshot predates every frame, so no pass can copy anything while it reads.
    const flooded = flood({ messages: 3000, every: 200, giveUpMs: 50, readerHoldsSnapshot: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("writes stalled behind the reader's snapshot")), 30_000);
    });
    const r = await Promise.race([flooded, stalled]).finally(() => clearTimeout(timer));
    // Past the pause each commit waited one giveUpMs with nothing copied, then went through.
    expect(r.giveUps).toBeGreaterThan(0);
    expect(r.maxFrames).toBeGreaterThan(300 + 400);
    // A pass that copies nothing is not retried at once: about one pass a commit, not thousands.
    expect(r.checkpoints).toBeLessThan(100);
    // Once the reader is gone the WAL is copied back, and the writer's close removes it.
    expect(r.walLeft).toBe(false);
  }, 60_000);

  test("without its thread (it could not start) checkpoints run on the loop and the WAL stays short", async () => {
    const logged: string[] = [];
    const logger = { ...silentLogger, error: (msg: string) => logged.push(msg), child: () => logger };
    const r = await flood({
      messages: 3000,
      every: 100,
      logger,
      spawn: (dir) => new Worker(join(dir, "no-such-worker.ts")),
    });
    expect(logged.some((m) => m.includes("checkpoint thread failed"))).toBe(true);
    expect(r.checkpoints).toBeGreaterThan(0);
    expect(r.maxFrames).toBeLessThan(300 + 400);
  }, 60_000);
});

describe("group commit with the sync in the commit (the default)", () => {
  test("commits are spaced by minSyncGapMs: a lone write commits at once, what follows waits and commits as one batch", async () => {
    const { db, transaction } = memoryDb();
    const sizes: number[] = [];
    const at: number[] = [];
    const c = createGroupCommitter({
      transaction,
      minSyncGapMs: 300,
      onBatch: (n) => {
        sizes.push(n);
        at.push(performance.now());
      },
    });
    const t0 = performance.now();
    await c.submit(() => db.run("INSERT INTO t VALUES (0)"));
    expect(performance.now() - t0).toBeLessThan(200);
    await Promise.all([1, 2, 3].map((i) => c.submit(() => db.run(`INSERT INTO t VALUES (${i})`))));
    expect(sizes).toEqual([1, 3]);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(295);
    // Shutdown does not wait out the gap, even when the write is already held for it.
    const t1 = performance.now();
    const last = c.submit(() => db.run("INSERT INTO t VALUES (4)"));
    await turn();
    expect(sizes).toEqual([1, 3]);
    await c.drain();
    await last;
    expect(performance.now() - t1).toBeLessThan(200);
    expect(db.query("SELECT count(*) AS n FROM t").get()).toEqual({ n: 5 });
  });

  test("with no gap every turn commits what it has", async () => {
    const { db, transaction } = memoryDb();
    const sizes: number[] = [];
    const c = createGroupCommitter({ transaction, onBatch: (n) => sizes.push(n) });
    await c.submit(() => db.run("INSERT INTO t VALUES (0)"));
    await Promise.all([1, 2].map((i) => c.submit(() => db.run(`INSERT INTO t VALUES (${i})`))));
    await c.submit(() => db.run("INSERT INTO t VALUES (3)"));
    expect(sizes).toEqual([1, 2, 1]);
  });

  test("each commit reports how long it held the loop, its jobs included; a failed commit reports nothing", async () => {
    const { db, transaction } = memoryDb();
    const held: number[] = [];
    const c = createGroupCommitter({ transaction, onCommitted: (s) => held.push(s) });
    await c.submit(() => {
      const until = performance.now() + 30;
      while (performance.now() < until) {
        // A job that keeps the loop busy for 30 ms.
      }
      db.run("INSERT INTO t VALUES (1)");
    });
    expect(held).toHaveLength(1);
    expect(held[0]!).toBeGreaterThanOrEqual(0.03);
    expect(held[0]!).toBeLessThan(1);

    const failing = createGroupCommitter({
      transaction: () => {
        throw new Error("disk I/O error");
      },
      onCommitted: (s) => held.push(s),
    });
    await expect(failing.submit(() => 1)).rejects.toThrow("disk I/O error");
    expect(held).toHaveLength(1);
  });
});
