import { Database } from "bun:sqlite";

/**
 * The checkpointer's thread: copies WAL frames back into the database file on a connection of
 * its own, so the copy and its fsyncs never stop the event loop. The main thread says when
 * (`checkpoint`), and reads the outcome from the WAL-index; this thread only does the work.
 * Its own entry point: `bun build --compile` bundles it beside src/main.ts.
 */

declare const self: Worker;

type Request = { type: "open"; path: string } | { type: "checkpoint" } | { type: "close" };

let db: Database | undefined;

self.onmessage = (event: MessageEvent<Request>) => {
  const req = event.data;
  try {
    if (req.type === "open") {
      db = new Database(req.path, { readwrite: true, create: false });
      // The checkpoint syncs the WAL before copying and the database file after.
      db.run("PRAGMA synchronous = NORMAL");
      db.run("PRAGMA busy_timeout = 0");
      self.postMessage({ type: "opened" });
    } else if (req.type === "checkpoint") {
      const started = performance.now();
      // PASSIVE: never waits for the writer or for readers; what they hold is copied next time.
      const row = db!
        .query<{ busy: number; log: number; checkpointed: number }, []>("PRAGMA wal_checkpoint(PASSIVE)")
        .get();
      self.postMessage({ type: "checkpointed", ...row, ms: performance.now() - started });
    } else {
      db?.close(false);
      db = undefined;
      self.postMessage({ type: "closed" });
    }
  } catch (err) {
    self.postMessage({
      type: "failed",
      stage: req.type,
      message: err instanceof Error ? err.message : String(err),
    });
  }
};
