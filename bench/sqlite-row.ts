import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClientIdIndex } from "../src/store/sqlite/client-ids.ts";
import { createMessageLog, MESSAGE_LOG_SCHEMA } from "../src/store/sqlite/message-log.ts";

/**
 * What one stored message costs SQLite, by the dedupe structure beside the row: the unique
 * (conversation, sender, client_id) index the service used until schema 7, the same index
 * non-unique, a 64-bit hash of the key in a table of its own, the in-memory set the service uses
 * now (store/sqlite/client-ids.ts, its CPU included), and nothing; then the set with new rows
 * going through the message log and moved to `messages` 32 of a conversation at a time
 * (store/sqlite/message-log.ts, its CPU included). 100 conversations, 200,000 rows first, then
 * 40,000 more in batches of 50, synchronous=NORMAL (the sync is not SQLite's CPU).
 * Prints CPU µs per message, and WAL KiB and WAL frames (two writes each) written per message.
 *   npx bun bench/sqlite-row.ts
 */

const MESSAGES = `CREATE TABLE messages (conversation_id TEXT NOT NULL, id TEXT NOT NULL,
  sender_id INTEGER NOT NULL, text TEXT NOT NULL, created_at INTEGER NOT NULL, client_id TEXT,
  viewed_by INTEGER, viewed_at INTEGER, attachments TEXT, reply_to TEXT, edited_at INTEGER,
  deleted_at INTEGER, PRIMARY KEY (conversation_id, id)) WITHOUT ROWID`;

const variants = [
  {
    name: "unique index (until schema 7)",
    ddl: "CREATE UNIQUE INDEX ix ON messages (conversation_id, sender_id, client_id) WHERE client_id IS NOT NULL",
  },
  {
    name: "non-unique index",
    ddl: "CREATE INDEX ix ON messages (conversation_id, sender_id, client_id) WHERE client_id IS NOT NULL",
  },
  { name: "hash table", ddl: "CREATE TABLE dedupe (k INTEGER PRIMARY KEY, id TEXT NOT NULL)", hash: true },
  { name: "in-memory set (until schema 8)", ddl: "", set: true },
  { name: "none", ddl: "" },
  { name: "set + message log (service)", ddl: MESSAGE_LOG_SCHEMA, set: true, log: true },
];

const dir = mkdtempSync(join(tmpdir(), "chat-sqlite-row-"));
const convs = Array.from({ length: 100 }, (_, i) => `c${String(i).padStart(23, "0")}`);
for (const v of variants) {
  const db = new Database(join(dir, `${variants.indexOf(v)}.db`));
  for (const p of [
    "journal_mode = WAL",
    "synchronous = NORMAL",
    "cache_size = -65536",
    "wal_autocheckpoint = 0",
  ])
    db.run(`PRAGMA ${p}`);
  db.run(MESSAGES);
  if (v.ddl) db.run(v.ddl);
  const insert = db.query(
    "INSERT INTO messages (conversation_id, id, sender_id, text, created_at, client_id) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
  );
  const dedupe = v.hash
    ? db.query("INSERT INTO dedupe (k, id) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING k")
    : null;
  const set = v.set ? createClientIdIndex(db) : null;
  let messageLog: ReturnType<typeof createMessageLog> | null = null;
  let seq = 0;
  // The set keeps 32-bit fingerprints: a fresh client_id matches one now and then, and the
  // service then confirms by a scan (client-ids.ts). Counted, not an error.
  let falseMatches = 0;
  const one = () => {
    const conversation = convs[(seq * 7919) % convs.length]!;
    const clientId = crypto.randomUUID();
    const id = (1e12 + seq).toString(16).padStart(24, "0");
    if (dedupe)
      dedupe.get(BigInt.asIntN(64, Bun.hash.wyhash(`${conversation}\u0000${seq % 2}\u0000${clientId}`)), id);
    if (set?.mayHave(conversation, seq % 2, clientId)) falseMatches++;
    const text = "hello there, this is a message of some length";
    const m = { id, conversationId: conversation, senderId: seq % 2, text, createdAt: Date.now(), clientId };
    if (!messageLog?.append(m, null)) insert.get(conversation, id, seq % 2, text, m.createdAt, clientId);
    set?.add(conversation, seq % 2, clientId);
    seq++;
  };
  db.transaction(() => {
    for (let i = 0; i < 200_000; i++) one();
  })();
  db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  // Its clock held still: every conversation is busy, and rows move by count, not by age.
  if (v.log) messageLog = createMessageLog(db, { now: () => 0 });
  const N = 40_000;
  const before = process.cpuUsage();
  for (let i = 0; i < N; i += 50) {
    db.transaction(() => {
      for (let j = 0; j < 50; j++) one();
    })();
  }
  const cpu = process.cpuUsage(before);
  const { log } = db.query<{ log: number }, []>("PRAGMA wal_checkpoint(PASSIVE)").get()!;
  console.log(
    `${v.name.padEnd(30)} ${((cpu.user + cpu.system) / N).toFixed(1).padStart(6)} µs CPU/msg  ${((log * 4) / N).toFixed(2)} KiB WAL/msg  ${(log / N).toFixed(3)} frames/msg${falseMatches ? `  (${falseMatches} fingerprint matches)` : ""}`,
  );
  db.close();
}
rmSync(dir, { recursive: true, force: true });
