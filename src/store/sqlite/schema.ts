import type { Database } from "bun:sqlite";

/**
 * The tables, the numbered migration steps that bring an older file up to date, and the version
 * check that refuses a file written by a newer release.
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
 * Step N brings schema N-1 to N, in one transaction with the version bump. A step's meaning never
 * changes once released; a new change is a new step. SCHEMA above stays at version 1, so a new
 * file and an old one take the same path.
 */
const STEPS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    // Edit, delete, reply (#16). The change feed is its own table: one row per changed message,
    // ordered by the change's time, so catch-up reads only what changed.
    version: 2,
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
CREATE INDEX message_changes_by_time ON message_changes (conversation_id, changed_at, message_id);
`,
  },
];

export const SCHEMA_VERSION = STEPS.at(-1)?.version ?? 1;

export function migrate(db: Database, path: string): void {
  db.exec(SCHEMA);
  const row = db.query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'schema_version'").get();
  if (!row) db.run("INSERT INTO meta (key, value) VALUES ('schema_version', '1')");
  const version = row ? Number(row.value) : 1;
  if (version > SCHEMA_VERSION) {
    throw new Error(`SQLITE_PATH: ${path} was written by a newer version (schema ${version})`);
  }
  for (const step of STEPS) {
    if (step.version <= version) continue;
    db.transaction(() => {
      db.exec(step.sql);
      db.run("UPDATE meta SET value = ? WHERE key = 'schema_version'", [String(step.version)]);
    })();
  }
}
