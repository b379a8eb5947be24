import type { Database } from "bun:sqlite";
import { ATTACHMENTS_SCHEMA } from "./attachments.ts";
import { MESSAGE_LOG_SCHEMA } from "./message-log.ts";

/**
 * The tables, and their migrations. SCHEMA is version 1 as first released; each later change is
 * one numbered step below, run once in its own transaction, so a file of any older version opens
 * and a fresh file takes the same path. A file written by a newer release is refused.
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY,
  lesson_id INTEGER NOT NULL,
  mentor_id INTEGER NOT NULL,
  student_id INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (lesson_id, mentor_id, student_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversations_by_mentor ON conversations (mentor_id);
CREATE INDEX IF NOT EXISTS conversations_by_student ON conversations (student_id);
-- Clustered on (conversation, id): history pages and resume are range scans.
CREATE TABLE IF NOT EXISTS messages (
  conversation_id TEXT NOT NULL,
  id TEXT NOT NULL,
  sender_id INTEGER NOT NULL,
  text TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  client_id TEXT,
  viewed_by INTEGER,
  viewed_at INTEGER,
  PRIMARY KEY (conversation_id, id)
) WITHOUT ROWID;
-- Version 1 also had a unique index messages_by_client_id on (conversation_id, sender_id,
-- client_id); step 7 drops it (client-ids.ts keeps the check in memory).
-- Read in seq order and deleted once the sink confirmed; no secondary index, on purpose.
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS presence (user_id INTEGER PRIMARY KEY, last_seen INTEGER NOT NULL);
-- A conversation made here during an outage whose triple MongoDB already knew under another id
-- (the original service's random ids): the old id keeps resolving to the adopted one.
CREATE TABLE IF NOT EXISTS conversation_alias (old_id TEXT PRIMARY KEY, new_id TEXT NOT NULL) WITHOUT ROWID;
`;

/** Step N turns version N into N + 1. Append only: a released step never changes meaning. */
const MIGRATIONS: ReadonlyArray<{ to: number; why: string; sql: string }> = [
  {
    to: 2,
    why: "outbox kinds as a column (each handler reads its own by index), due times and cancel keys",
    sql: `
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT '';
UPDATE outbox SET kind = json_extract(payload, '$.kind');
ALTER TABLE outbox ADD COLUMN due_at INTEGER NOT NULL DEFAULT 0;
UPDATE outbox SET due_at = created_at;
ALTER TABLE outbox ADD COLUMN key TEXT;
CREATE INDEX outbox_by_kind ON outbox (kind, seq);
CREATE INDEX outbox_by_key ON outbox (kind, key) WHERE key IS NOT NULL;`,
  },
  {
    to: 3,
    why: "notification cycles: one row per (conversation, recipient) with a notification pending or sent",
    sql: `
CREATE TABLE notify_cycles (
  conversation_id TEXT NOT NULL,
  recipient_id INTEGER NOT NULL,
  notification_id INTEGER NOT NULL,
  sender_id INTEGER NOT NULL,
  first_message_id TEXT NOT NULL,
  due_at INTEGER NOT NULL,
  payload TEXT,
  sinks_done TEXT NOT NULL DEFAULT '',
  sent_at INTEGER,
  PRIMARY KEY (conversation_id, recipient_id)
) WITHOUT ROWID;`,
  },
  {
    to: 4,
    why: "attachments: their metadata (store/sqlite/attachments.ts), and each message's refs as JSON",
    sql: `ALTER TABLE messages ADD COLUMN attachments TEXT;\n${ATTACHMENTS_SCHEMA}`,
  },
  {
    to: 5,
    why: "edit, delete, reply (#16); the change feed for catch-up is its own table, one row per changed message",
    sql: `
ALTER TABLE messages ADD COLUMN reply_to TEXT;
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted_at INTEGER;
CREATE TABLE message_changes (
  conversation_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  changed_at INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, message_id)
) WITHOUT ROWID;
CREATE INDEX message_changes_by_time ON message_changes (conversation_id, changed_at, message_id);`,
  },
  {
    to: 6,
    why:
      "local retention (store/sqlite/retention.ts): per conversation and sender the newest evicted id " +
      "and how many evicted were unread; for a while, evicted messages' client_ids (a late resend is a duplicate)",
    sql: `
CREATE TABLE IF NOT EXISTS evicted_summary (
  conversation_id TEXT NOT NULL,
  sender_id INTEGER NOT NULL,
  floor_id TEXT NOT NULL,
  unread INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, sender_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evicted_client_ids (
  conversation_id TEXT NOT NULL,
  sender_id INTEGER NOT NULL,
  client_id TEXT NOT NULL,
  id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  evicted_at INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, sender_id, client_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS evicted_client_ids_by_age ON evicted_client_ids (evicted_at);
`,
  },
  {
    to: 7,
    why: "the client_id check moved to memory (client-ids.ts): the unique index was half of an insert's cost",
    sql: "DROP INDEX IF EXISTS messages_by_client_id;",
  },
  {
    to: 8,
    why: "new messages of busy conversations are logged in arrival order and moved to `messages` in batches (message-log.ts)",
    sql: MESSAGE_LOG_SCHEMA,
  },
];

export const SCHEMA_VERSION = 1 + MIGRATIONS.length;

export function migrate(db: Database, path: string): void {
  db.exec(SCHEMA);
  const read = db.query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'schema_version'");
  if (!read.get()) db.run("INSERT INTO meta (key, value) VALUES ('schema_version', '1')");
  const version = Number(read.get()!.value);
  if (version > SCHEMA_VERSION) {
    throw new Error(`SQLITE_PATH: ${path} was written by a newer version (schema ${version})`);
  }
  for (const step of MIGRATIONS) {
    if (step.to <= version) continue;
    db.transaction(() => {
      db.exec(step.sql);
      db.run("UPDATE meta SET value = ? WHERE key = 'schema_version'", [String(step.to)]);
    })();
  }
}
