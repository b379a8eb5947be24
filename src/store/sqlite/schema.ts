import type { Database } from "bun:sqlite";
import { ATTACHMENTS_SCHEMA } from "./attachments.ts";

/** The tables, and the version check that refuses a file written by a newer release. */

const SCHEMA_VERSION = 2;

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
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_client_id
  ON messages (conversation_id, sender_id, client_id) WHERE client_id IS NOT NULL;
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

/**
 * Version 2 (attachments): messages carry their attachments' metadata as JSON; the outbox gets a
 * `kind` column so each handler reads its own kinds by index (the attachment copy is a second
 * handler); the attachments table itself (store/sqlite/attachments.ts).
 */
function toVersion2(db: Database): void {
  const has = (table: string, column: string) =>
    db
      .query<{ name: string }, []>(`PRAGMA table_info(${table})`)
      .all()
      .some((c) => c.name === column);
  if (!has("messages", "attachments")) db.run("ALTER TABLE messages ADD COLUMN attachments TEXT");
  if (!has("outbox", "kind")) {
    db.run("ALTER TABLE outbox ADD COLUMN kind TEXT");
    db.run("UPDATE outbox SET kind = json_extract(payload, '$.kind')");
  }
  // Partial: message entries (the bulk) skip it, so it costs their inserts nothing; the
  // attachment handler finds its few entries without scanning a message backlog.
  db.run(
    "CREATE INDEX IF NOT EXISTS outbox_attachments ON outbox (seq) WHERE kind IN ('attachment_copy', 'attachment_delete')",
  );
  db.exec(ATTACHMENTS_SCHEMA);
}

export function migrate(db: Database, path: string): void {
  db.exec(SCHEMA);
  const version = db
    .query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'schema_version'")
    .get();
  if (version && Number(version.value) > SCHEMA_VERSION) {
    throw new Error(`SQLITE_PATH: ${path} was written by a newer version (schema ${version.value})`);
  }
  db.transaction(() => {
    toVersion2(db);
    db.run(
      "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      [String(SCHEMA_VERSION)],
    );
  })();
}
