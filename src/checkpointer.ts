import { Database } from "bun:sqlite";
import { statSync } from "node:fs";

/**
 * Worker entry: checkpoints the WAL from its own connection, so copying pages back to the
 * database file (and its fsync) no longer runs inside a commit on the main thread.
 * PASSIVE never takes the writer lock; TRUNCATE does, so it runs only when the WAL is far
 * past its usual size (a long reader kept PASSIVE from finishing).
 */

export interface CheckpointerOptions {
  path: string;
  intervalMs: number;
  truncateBytes: number;
  /** WAL size past which a RESTART follows a PASSIVE that left at most restartFrames behind. */
  restartBytes: number;
  restartFrames: number;
  /** The main connection's setting: with OFF, the checkpoint does not fsync either. */
  synchronous: "FULL" | "NORMAL" | "OFF";
}

declare const self: Worker;

let db: Database | undefined;
let timer: ReturnType<typeof setInterval> | undefined;

function walSize(path: string): number {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}

type Result = { busy: number; log: number; checkpointed: number };

function checkpoint(mode: string): Result | null {
  return db?.query<Result, []>(`PRAGMA wal_checkpoint(${mode})`).get() ?? null;
}

function tick(opts: CheckpointerOptions): void {
  if (!db) return;
  const size = walSize(opts.path);
  const mode = size > opts.truncateBytes ? "TRUNCATE" : "PASSIVE";
  const row = checkpoint(mode);
  if (!row) return;
  self.postMessage({ type: "checkpoint", mode, ...row });
  // Under steady writes a PASSIVE checkpoint never catches up with the writer, so the WAL never
  // wraps and keeps growing. Finishing the small remainder with RESTART (which holds writers off
  // only for that remainder) lets the next commit start the WAL from the top again.
  if (mode === "PASSIVE" && size > opts.restartBytes && row.log - row.checkpointed < opts.restartFrames) {
    const r = checkpoint("RESTART");
    if (r) self.postMessage({ type: "checkpoint", mode: "RESTART", ...r });
  }
}

self.onmessage = (event: MessageEvent) => {
  const msg = event.data as { type: "start"; options: CheckpointerOptions } | { type: "stop" };
  if (msg.type === "start") {
    db = new Database(msg.options.path, { strict: true });
    // Only TRUNCATE waits for the lock, and it does so here, off the main thread.
    db.run("PRAGMA busy_timeout = 2000");
    db.run("PRAGMA wal_autocheckpoint = 0");
    db.run(`PRAGMA synchronous = ${msg.options.synchronous}`);
    timer = setInterval(() => {
      try {
        tick(msg.options);
      } catch (err) {
        self.postMessage({ type: "error", message: String(err) });
      }
    }, msg.options.intervalMs);
    self.postMessage({ type: "started" });
  } else {
    if (timer) clearInterval(timer);
    db?.close(false);
    db = undefined;
    self.postMessage({ type: "stopped" });
    process.exit(0);
  }
};
