import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { migrate } from "./schema.ts";

export type Synchronous = "FULL" | "NORMAL" | "OFF";

/**
 * Opens the file with the pragmas the write path was tuned for, then checks the schema.
 * `syncOffLoop`: FULL's durability comes from the group commit's fdatasync of the WAL
 * (wal-sync.ts) and checkpoints from their own thread (checkpointer.ts), so the connection
 * itself commits with NORMAL and never checkpoints.
 */
export function openDatabase(path: string, synchronous: Synchronous = "FULL", syncOffLoop = false): Database {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { create: true, strict: true });
  // Retention frees pages; with incremental auto-vacuum the file gives them back to the disk.
  // Only takes effect on a new file (an older one is converted by the first sweep that evicts).
  db.run("PRAGMA auto_vacuum = INCREMENTAL");
  db.run("PRAGMA journal_mode = WAL");
  db.run(`PRAGMA synchronous = ${synchronous}`);
  db.run("PRAGMA busy_timeout = 5000");
  db.run("PRAGMA foreign_keys = OFF");
  db.run("PRAGMA temp_store = MEMORY");
  // Messages land on the leaf page of their conversation, spread over the whole tree; with the
  // default 2 MB cache those pages were evicted and read back from the WAL on every insert.
  db.run("PRAGMA cache_size = -65536");
  // Checkpoint less often: a page dirtied by many commits is copied back to the database once.
  db.run("PRAGMA wal_autocheckpoint = 10000");
  // When the writer wraps back to the start of the WAL after a checkpoint, cut the file to
  // 64 MiB so a burst does not leave a large file behind for good.
  db.run("PRAGMA journal_size_limit = 67108864");
  migrate(db, path);
  // The caller decides (index.ts: only with FULL, only on a file).
  if (syncOffLoop) {
    db.run("PRAGMA synchronous = NORMAL");
    db.run("PRAGMA wal_autocheckpoint = 0");
  }
  return db;
}
