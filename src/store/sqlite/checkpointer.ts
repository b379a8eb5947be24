import { closeSync, openSync, readSync } from "node:fs";
import type { Logger } from "../../log.ts";

/**
 * Keeps the WAL short without stopping the event loop. The write connection never checkpoints
 * (wal_autocheckpoint=0); after each commit this reads the WAL-index header (one pread of the
 * -shm file) and, past `startFrames`, asks the checkpoint thread for a PASSIVE checkpoint.
 *
 * Back-pressure: SQLite rewinds the WAL only when a write starts after a checkpoint that copied
 * every frame, which never happens while the writer keeps appending. So past `pauseFrames`
 * the writer waits (the group commit's gate) until the thread has caught up; the WAL then
 * restarts from its first frame. A pass still copying is waited for (up to `maxWaitMs`): SQLite
 * records what a pass copied only when it ends, and under a flood one pass can outlast
 * `giveUpMs`. But a reader holding an old snapshot stops every pass short of the end for as long
 * as it reads, so when `giveUpMs` pass with no pass running and nothing more copied, one commit
 * goes through, and the gate asks again for the next: the writer slows down instead of hanging
 * (docs/performance.md, "Why an ack still means on disk").
 */

export interface CheckpointerOptions {
  /** The database file (the WAL and its index sit beside it). */
  path: string;
  logger: Logger;
  startFrames?: number;
  pauseFrames?: number;
  giveUpMs?: number;
  maxWaitMs?: number;
  /** The checkpoint thread (tests may pass their own). */
  spawn?: () => Worker;
  /** A PASSIVE checkpoint on the writer's own connection: the fallback if the thread dies. */
  checkpointHere: () => void;
}

/** Offsets in the WAL-index (-shm) header: see "WalIndexHdr" and "WalCkptInfo" in SQLite's wal.c. */
const MX_FRAME = 16;
const N_BACKFILL = 96;

type Reply =
  | { type: "opened" | "closed" }
  | { type: "checkpointed"; busy: number; log: number; checkpointed: number; ms: number }
  | { type: "failed"; stage: string; message: string };

/**
 * In the executable (`bun build --compile src/main.ts src/store/sqlite/checkpoint-worker.ts`)
 * modules are bundled into one and entry points sit at their paths under src/, so the thread's
 * is named from there; tests/ops/binary.test.ts checks that the thread starts.
 */
export function spawnCheckpointThread(): Worker {
  const compiled = import.meta.url.includes("$bunfs");
  return new Worker(
    compiled
      ? "./store/sqlite/checkpoint-worker.ts"
      : new URL("./checkpoint-worker.ts", import.meta.url).href,
  );
}

export function createCheckpointer(opts: CheckpointerOptions) {
  const startFrames = opts.startFrames ?? 8000;
  const pauseFrames = opts.pauseFrames ?? 14000;
  const giveUpMs = opts.giveUpMs ?? 200;
  const maxWaitMs = opts.maxWaitMs ?? 2000;
  const worker = (opts.spawn ?? spawnCheckpointThread)();
  // The thread must not keep a stopping process alive; close() ends it properly.
  (worker as Worker & { unref?: () => void }).unref?.();
  let shm: number | undefined;
  const header = Buffer.alloc(N_BACKFILL + 4);
  let running = false;
  let closed: (() => void) | undefined;
  let waiters: Array<() => void> = [];
  let lastFailure = "";
  let threadDown = false;
  /** The last wait gave up on a stuck checkpoint: the next commit goes through. */
  let letOneThrough = false;
  let lastBackfilled = 0;
  const stats = { checkpoints: 0, pauses: 0, giveUps: 0, maxFrames: 0 };

  /** Frames in the WAL, and how many of them are already copied back. */
  const frames = (): { log: number; backfilled: number } => {
    try {
      shm ??= openSync(`${opts.path}-shm`, "r");
      readSync(shm, header, 0, header.length, 0);
      return { log: header.readUInt32LE(MX_FRAME), backfilled: header.readUInt32LE(N_BACKFILL) };
    } catch {
      return { log: 0, backfilled: 0 };
    }
  };

  const release = () => {
    for (const w of waiters.splice(0)) w();
  };

  const run = () => {
    if (running || closed) return;
    if (threadDown) {
      // Without the thread the WAL must still not grow without bound: copy on the loop.
      try {
        opts.checkpointHere();
        stats.checkpoints++;
      } catch (err) {
        opts.logger.warn("WAL checkpoint failed", { error: err });
      }
      return release();
    }
    running = true;
    worker.postMessage({ type: "checkpoint" });
  };

  worker.onmessage = (event: MessageEvent<Reply>) => {
    const reply = event.data;
    if (reply.type === "closed") return closed?.();
    if (reply.type === "opened") return;
    running = false;
    if (reply.type === "failed") {
      if (reply.stage === "open") threadDown = true;
      if (reply.message !== lastFailure) opts.logger.warn("WAL checkpoint failed", { error: reply.message });
      lastFailure = reply.message;
      release();
      return;
    }
    stats.checkpoints++;
    const { log, backfilled } = frames();
    // Any change: more was copied, or the WAL restarted and this pass copied its new frames.
    const copiedMore = backfilled !== lastBackfilled;
    lastBackfilled = backfilled;
    // Caught up: the next commit rewinds the WAL. Otherwise copy what came in meanwhile, unless
    // this pass copied nothing (a reader's snapshot holds the rest): the next commit asks again,
    // rather than the thread spinning on the core the event loop needs.
    if (backfilled >= log) release();
    else if (copiedMore && (log >= startFrames || waiters.length > 0)) run();
  };
  worker.onerror = (event) => {
    opts.logger.error("WAL checkpoint thread failed: checkpoints run on the event loop from now on", {
      error: event.message,
    });
    threadDown = true;
    running = false;
    release();
  };
  worker.postMessage({ type: "open", path: opts.path });

  return {
    /** After each commit: starts a checkpoint when the WAL has grown past `startFrames`. */
    committed(): void {
      const { log, backfilled } = frames();
      if (log > stats.maxFrames) stats.maxFrames = log;
      if (log >= startFrames && log > backfilled) run();
    },

    /** For the group commit: a promise to wait on while the WAL is past `pauseFrames`. */
    gate(): Promise<void> | undefined {
      const at = frames();
      if (at.log < pauseFrames || at.backfilled >= at.log || closed) return undefined;
      if (letOneThrough) {
        letOneThrough = false;
        return undefined;
      }
      stats.pauses++;
      run();
      // Without the thread, run() has just checkpointed on the loop.
      const after = frames();
      if (after.backfilled >= after.log) return undefined;
      return new Promise<void>((resolve) => {
        const started = performance.now();
        let backfilled = after.backfilled;
        let passes = stats.checkpoints;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        const check = () => {
          const now = frames();
          const copying = running && stats.checkpoints === passes;
          const copied = now.backfilled !== backfilled;
          if (!closed && (copying || copied) && performance.now() - started < maxWaitMs) {
            backfilled = now.backfilled;
            passes = stats.checkpoints;
            timer = setTimeout(check, giveUpMs);
            return;
          }
          stats.giveUps++;
          letOneThrough = true;
          waiters = waiters.filter((w) => w !== done);
          resolve();
        };
        timer = setTimeout(check, giveUpMs);
        waiters.push(done);
      });
    },

    stats: () => ({ ...stats, ...frames() }),

    /** Closes the thread's connection (before the writer's, so the writer's close removes the WAL). */
    async close(): Promise<void> {
      if (closed) return;
      const done = new Promise<void>((resolve) => {
        closed = resolve;
      });
      worker.postMessage({ type: "close" });
      await Promise.race([done, Bun.sleep(2000)]);
      worker.terminate();
      release();
      if (shm !== undefined) closeSync(shm);
      shm = undefined;
    },
  };
}

export type Checkpointer = ReturnType<typeof createCheckpointer>;
