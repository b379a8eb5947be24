import { Database } from "bun:sqlite";
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * What making a commit durable costs per message on this disk, by page size and batch size:
 * WAL bytes written, SQLite's CPU, and the wall time of the fsync that follows each commit (the
 * time the event loop stands still when the sync runs on it). 500 conversations, 100,000 rows
 * first, then 40,000 in batches, the service's row and pragmas otherwise.
 *   npx bun bench/sqlite-sync.ts
 */

const MESSAGES = `CREATE TABLE messages (conversation_id TEXT NOT NULL, id TEXT NOT NULL,
  sender_id INTEGER NOT NULL, text TEXT NOT NULL, created_at INTEGER NOT NULL, client_id TEXT,
  viewed_by INTEGER, viewed_at INTEGER, attachments TEXT, reply_to TEXT, edited_at INTEGER,
  deleted_at INTEGER, PRIMARY KEY (conversation_id, id)) WITHOUT ROWID`;
const convs = Array.from({ length: 500 }, (_, i) => `c${String(i).padStart(23, "0")}`);
const N = 40_000;

for (const pageSize of [4096, 1024]) {
  for (const batch of [25, 200]) {
    const dir = mkdtempSync(join(tmpdir(), "chat-sqlite-sync-"));
    const path = join(dir, "chat.db");
    const db = new Database(path);
    for (const p of [
      `page_size = ${pageSize}`,
      "journal_mode = WAL",
      "synchronous = OFF",
      "cache_size = -65536",
      "wal_autocheckpoint = 0",
    ])
      db.run(`PRAGMA ${p}`);
    db.run(MESSAGES);
    const insert = db.query(
      "INSERT INTO messages (conversation_id, id, sender_id, text, created_at, client_id) VALUES (?, ?, ?, ?, ?, ?)",
    );
    let seq = 0;
    const one = () => {
      const conversation = convs[(seq * 7919) % convs.length]!;
      const id = (1e12 + seq).toString(16).padStart(24, "0");
      insert.run(
        conversation,
        id,
        seq % 2,
        "hello there, this is a message of some length",
        Date.now(),
        `k${seq}`,
      );
      seq++;
    };
    db.transaction(() => {
      for (let i = 0; i < 100_000; i++) one();
    })();
    db.run("PRAGMA wal_checkpoint(TRUNCATE)");
    const wal = openSync(`${path}-wal`, "r+");
    let syncMs = 0;
    const before = process.cpuUsage();
    for (let i = 0; i < N; i += batch) {
      db.transaction(() => {
        for (let j = 0; j < batch; j++) one();
      })();
      const t = performance.now();
      fsyncSync(wal);
      syncMs += performance.now() - t;
    }
    const cpu = process.cpuUsage(before);
    const { log } = db.query<{ log: number }, []>("PRAGMA wal_checkpoint(PASSIVE)").get()!;
    console.log(
      `page ${String(pageSize).padStart(4)} B, ${String(batch).padStart(3)} a commit: ` +
        `${((log * (pageSize + 24)) / N / 1024).toFixed(2)} KiB WAL/msg, ` +
        `${((cpu.user + cpu.system) / N).toFixed(1)} µs CPU/msg (the sync's included), ` +
        `fsync ${((syncMs * 1000) / N).toFixed(1)} µs wall/msg, ${((syncMs * batch) / N).toFixed(2)} ms a commit`,
    );
    closeSync(wal);
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
