import type { Database } from "bun:sqlite";

/** The tables, and the version check that refuses a file written by a newer release. */

/**
 * Numbered steps after the base schema (version 1). A step never changes meaning once released;
 * a new table or column is a new step. Each runs once, in its own transaction.
 */
const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    // 2: local retention (store/sqlite/retention.ts). What evicted messages leave behind per
    // conversation and sender: the newest id evicted and how many of them were unread; and,
    // for a while, their client_ids, so a late resend is still recognised.
    version: 2,
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
];

const SCHEMA_VERSION = MIGRATIONS.at(-1)?.version ?? 1;

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

export function migrate(db: Database, path: string): void {
  db.exec(SCHEMA);
  const version = db
    .query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'schema_version'")
    .get();
  if (!version) db.run("INSERT INTO meta (key, value) VALUES ('schema_version', '1')");
  const current = version ? Number(version.value) : 1;
  if (current > SCHEMA_VERSION) {
    throw new Error(`SQLITE_PATH: ${path} was written by a newer version (schema ${version?.value})`);
  }
  for (const step of MIGRATIONS) {
    if (step.version <= current) continue;
    db.transaction(() => {
      db.exec(step.sql);
      db.run("UPDATE meta SET value = ? WHERE key = 'schema_version'", [String(step.version)]);
    })();
  }
}
