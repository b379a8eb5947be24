import { Database, type Statement } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Parties } from "../domain/access.ts";
import type { Message } from "../protocol/frames.ts";

/**
 * The local store: conversations, messages, read marks and the outbox that feeds MongoDB.
 * A message is durable here (WAL, synchronous=FULL by default) before anyone hears of it.
 * Times are kept as epoch milliseconds and turned into ISO strings at the edge.
 */

export interface Conversation extends Parties {
  id: string;
  createdAt: number;
}

export interface StoredMessage {
  id: string;
  conversationId: string;
  senderId: number;
  text: string;
  createdAt: number;
  clientId: string | null;
  viewedBy: number | null;
  viewedAt: number | null;
}

export interface NewMessage {
  id: string;
  conversationId: string;
  senderId: number;
  text: string;
  createdAt: number;
  clientId?: string;
}

/** An outbox entry: what the flusher must make true in MongoDB. */
export type OutboxEvent =
  | { kind: "conversation"; conversation: Conversation }
  | { kind: "message"; message: StoredMessage }
  | {
      kind: "viewed";
      conversationId: string;
      /** Whose messages were marked: the other participant. */
      senderId: number;
      viewerId: number;
      upToId: string;
      viewedAt: number;
    };

export interface OutboxRow {
  seq: number;
  event: OutboxEvent;
  createdAt: number;
}

const SCHEMA_VERSION = 1;

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
-- Read in seq order and deleted once MongoDB confirmed; no secondary index, on purpose.
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

interface MessageRow {
  id: string;
  conversation_id: string;
  sender_id: number;
  text: string;
  created_at: number;
  client_id: string | null;
  viewed_by: number | null;
  viewed_at: number | null;
}

interface ConversationRow {
  id: string;
  lesson_id: number;
  mentor_id: number;
  student_id: number;
  created_at: number;
}

const toMessage = (r: MessageRow): StoredMessage => ({
  id: r.id,
  conversationId: r.conversation_id,
  senderId: r.sender_id,
  text: r.text,
  createdAt: r.created_at,
  clientId: r.client_id,
  viewedBy: r.viewed_by,
  viewedAt: r.viewed_at,
});

const toConversation = (r: ConversationRow): Conversation => ({
  id: r.id,
  lessonId: r.lesson_id,
  mentorId: r.mentor_id,
  studentId: r.student_id,
  createdAt: r.created_at,
});

export function toWireMessage(m: StoredMessage): Message {
  const out: Message = {
    id: m.id,
    conversation_id: m.conversationId,
    sender_id: m.senderId,
    text: m.text,
    created_at: new Date(m.createdAt).toISOString(),
  };
  if (m.clientId !== null) out.client_id = m.clientId;
  if (m.viewedBy !== null) out.viewed_by = m.viewedBy;
  if (m.viewedAt !== null) out.viewed_at = new Date(m.viewedAt).toISOString();
  return out;
}

export interface ConversationSummary extends Conversation {
  lastMessage: StoredMessage | null;
  unreadCount: number;
}

export interface ConversationFilter {
  mentorId?: number;
  studentId?: number;
  lessonId?: number;
}

export interface OpenOptions {
  path: string;
  synchronous?: "FULL" | "NORMAL" | "OFF";
  /** Write outbox rows for a MongoDB flusher. Off when there is no MongoDB to feed. */
  outbox: boolean;
}

export type ChatStore = ReturnType<typeof openStore>;

const LATEST_PAGES_MAX_CHARS = 32 * 1024 * 1024;

export function openStore(opts: OpenOptions) {
  if (opts.path !== ":memory:") mkdirSync(dirname(opts.path), { recursive: true });
  const db = new Database(opts.path, { create: true, strict: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run(`PRAGMA synchronous = ${opts.synchronous ?? "FULL"}`);
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
  db.exec(SCHEMA);
  const version = db
    .query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'schema_version'")
    .get();
  if (!version) {
    db.run("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", [String(SCHEMA_VERSION)]);
  } else if (Number(version.value) > SCHEMA_VERSION) {
    throw new Error(`SQLITE_PATH: ${opts.path} was written by a newer version (schema ${version.value})`);
  }

  const q = {
    conversationById: db.query<ConversationRow, [string]>("SELECT * FROM conversations WHERE id = ?"),
    conversationByParties: db.query<ConversationRow, [number, number, number]>(
      "SELECT * FROM conversations WHERE lesson_id = ? AND mentor_id = ? AND student_id = ?",
    ),
    insertConversation: db.query<null, [string, number, number, number, number]>(
      "INSERT OR IGNORE INTO conversations (id, lesson_id, mentor_id, student_id, created_at) VALUES (?, ?, ?, ?, ?)",
    ),
    conversationsOf: db.query<ConversationRow, [number, number]>(
      "SELECT * FROM conversations WHERE mentor_id = ? UNION SELECT * FROM conversations WHERE student_id = ?",
    ),
    insertMessage: db.query<{ id: string }, [string, string, number, string, number, string | null]>(
      `INSERT INTO messages (conversation_id, id, sender_id, text, created_at, client_id) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING RETURNING id`,
    ),
    messageByClientId: db.query<MessageRow, [string, number, string]>(
      "SELECT * FROM messages WHERE conversation_id = ? AND sender_id = ? AND client_id = ?",
    ),
    messageById: db.query<MessageRow, [string, string]>(
      "SELECT * FROM messages WHERE conversation_id = ? AND id = ?",
    ),
    markViewed: db.query<null, [number, number, string, number, string]>(
      `UPDATE messages SET viewed_by = ?, viewed_at = ?
       WHERE conversation_id = ? AND sender_id = ? AND id <= ? AND viewed_by IS NULL`,
    ),
    // One primary-key seek per conversation, not a scan of every message.
    newestMessageId: db.query<{ id: string | null }, []>(
      "SELECT max((SELECT max(m.id) FROM messages m WHERE m.conversation_id = c.id)) AS id FROM conversations c",
    ),
    // Newest first straight off the primary key; page() reverses in JS, which is cheaper than
    // the temp B-tree an outer ORDER BY would build.
    latest: db.query<MessageRow, [string, number]>(
      "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
    ),
    before: db.query<MessageRow, [string, string, number]>(
      "SELECT * FROM messages WHERE conversation_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
    ),
    after: db.query<MessageRow, [string, string, number]>(
      "SELECT * FROM messages WHERE conversation_id = ? AND id > ? ORDER BY id LIMIT ?",
    ),
    between: db.query<MessageRow, [string, string, string, number]>(
      "SELECT * FROM messages WHERE conversation_id = ? AND id > ? AND id < ? ORDER BY id LIMIT ?",
    ),
    lastMessage: db.query<MessageRow, [string]>(
      "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT 1",
    ),
    unread: db.query<{ n: number }, [string, number]>(
      "SELECT count(*) AS n FROM messages WHERE conversation_id = ? AND sender_id = ? AND viewed_by IS NULL",
    ),
    enqueue: db.query<null, [string, number]>("INSERT INTO outbox (payload, created_at) VALUES (?, ?)"),
    outboxBatch: db.query<{ seq: number; payload: string; created_at: number }, [number, number]>(
      "SELECT seq, payload, created_at FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
    ),
    outboxDelete: db.query<null, [number]>("DELETE FROM outbox WHERE seq <= ?"),
    outboxStats: db.query<{ n: number; oldest: number | null }, []>(
      "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox",
    ),
    importMessage: db.query<
      null,
      [string, string, number, string, number, string | null, number | null, number | null]
    >(
      `INSERT INTO messages (conversation_id, id, sender_id, text, created_at, client_id, viewed_by, viewed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET viewed_by = coalesce(messages.viewed_by, excluded.viewed_by),
         viewed_at = coalesce(messages.viewed_at, excluded.viewed_at)`,
    ),
    aliasOf: db.query<{ new_id: string }, [string]>("SELECT new_id FROM conversation_alias WHERE old_id = ?"),
    aliases: db.query<{ old_id: string; new_id: string }, []>(
      "SELECT old_id, new_id FROM conversation_alias",
    ),
    touchPresence: db.query<null, [number, number]>(
      "INSERT INTO presence (user_id, last_seen) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
    ),
    lastSeen: db.query<{ last_seen: number }, [number]>("SELECT last_seen FROM presence WHERE user_id = ?"),
    shareConversation: db.query<{ one: number }, [number, number, number, number]>(
      `SELECT 1 AS one FROM conversations WHERE (mentor_id = ? AND student_id = ?) OR (mentor_id = ? AND student_id = ?) LIMIT 1`,
    ),
  } satisfies Record<string, Statement<unknown, never[]>>;

  const enqueue = (event: OutboxEvent, at: number) => {
    if (opts.outbox) q.enqueue.run(JSON.stringify(event), at);
  };

  const aliased = (id: string) => {
    const to = q.aliasOf.get(id);
    return to ? q.conversationById.get(to.new_id) : null;
  };

  // Conversations never change once created (a remap drops the old id below); every socket and
  // REST call on one shares a single frozen object, and a connect or a lookup by id skips SQL.
  // Bounded so a huge instance cannot grow it without limit.
  const opened = new Map<string, Conversation>();
  const remember = (c: Conversation): Conversation => {
    if (opened.size >= 50_000) opened.clear();
    const frozen = Object.freeze(c);
    opened.set(c.id, frozen);
    return frozen;
  };

  // The newest page of a conversation, as the JSON a client gets: every client opens a
  // conversation with it, and building it costs a query, ISO dates and an encode per message.
  // Keyed by conversation, then limit. Every write to `messages` below drops its conversation's
  // entry (or all of them), right beside the write, so no path can serve a page it changed.
  // Bounded by characters held, so odd limits over many conversations cannot grow it unchecked.
  const latestPages = new Map<string, Map<number, string>>();
  let latestPagesChars = 0;
  const forget = (conversationId: string) => {
    const byLimit = latestPages.get(conversationId);
    if (!byLimit) return;
    for (const json of byLimit.values()) latestPagesChars -= json.length;
    latestPages.delete(conversationId);
  };

  const store = {
    db,

    /** Get-or-create; the id is decided by the caller (derived from the parties). */
    openConversation(id: string, p: Parties, now: number): Conversation {
      const known = opened.get(id);
      if (
        known &&
        known.lessonId === p.lessonId &&
        known.mentorId === p.mentorId &&
        known.studentId === p.studentId
      )
        return known;
      const existing = q.conversationByParties.get(p.lessonId, p.mentorId, p.studentId);
      if (existing) return remember(toConversation(existing));
      const conversation: Conversation = { id, ...p, createdAt: now };
      db.transaction(() => {
        q.insertConversation.run(id, p.lessonId, p.mentorId, p.studentId, now);
        enqueue({ kind: "conversation", conversation }, now);
      })();
      return remember(toConversation(q.conversationByParties.get(p.lessonId, p.mentorId, p.studentId)!));
    },

    conversationFor(p: Parties): Conversation | null {
      const row = q.conversationByParties.get(p.lessonId, p.mentorId, p.studentId);
      return row ? toConversation(row) : null;
    },

    /** By id (or an id it was remapped from); every REST call on a conversation asks this first. */
    conversation(id: string): Conversation | null {
      const known = opened.get(id);
      if (known) return known;
      const row = q.conversationById.get(id) ?? aliased(id);
      return row ? remember(toConversation(row)) : null;
    },

    /**
     * Inserts a message unless its client_id was seen in this conversation from this sender;
     * then returns the stored one. Must run inside the group commit's transaction.
     */
    insertMessage(m: NewMessage): { message: StoredMessage; duplicate: boolean } {
      forget(m.conversationId);
      const inserted = q.insertMessage.get(
        m.conversationId,
        m.id,
        m.senderId,
        m.text,
        m.createdAt,
        m.clientId ?? null,
      );
      if (!inserted && m.clientId !== undefined) {
        const prior = q.messageByClientId.get(m.conversationId, m.senderId, m.clientId);
        if (prior) return { message: toMessage(prior), duplicate: true };
      }
      if (!inserted) throw new Error(`message id ${m.id} collided`);
      const message: StoredMessage = {
        ...m,
        clientId: m.clientId ?? null,
        viewedBy: null,
        viewedAt: null,
      };
      enqueue({ kind: "message", message }, m.createdAt);
      return { message, duplicate: false };
    },

    message(conversationId: string, id: string): StoredMessage | null {
      const row = q.messageById.get(conversationId, id);
      return row ? toMessage(row) : null;
    },

    /**
     * Read-up-to: marks `upToId` and every earlier message from `senderId`. Returns rows changed.
     * A mark relayed from another instance is that instance's to flush, so it gets no outbox row.
     */
    markViewed(
      conversationId: string,
      senderId: number,
      viewerId: number,
      upToId: string,
      at: number,
      origin: "here" | "relayed" = "here",
    ): number {
      forget(conversationId);
      const { changes } = q.markViewed.run(viewerId, at, conversationId, senderId, upToId);
      if (changes > 0 && origin === "here")
        enqueue({ kind: "viewed", conversationId, senderId, viewerId, upToId, viewedAt: at }, at);
      return changes;
    },

    /**
     * Keeps a message another instance accepted and relayed, so history, resume and client_id
     * retries here see it. No outbox row: its own instance flushes it. True when it was new here.
     */
    keepRelayedMessage(m: NewMessage): boolean {
      forget(m.conversationId);
      return (
        q.insertMessage.get(m.conversationId, m.id, m.senderId, m.text, m.createdAt, m.clientId ?? null) !==
        null
      );
    },

    page(conversationId: string, opts: { before?: string; after?: string; limit: number }): StoredMessage[] {
      const { before, after, limit } = opts;
      let rows: MessageRow[];
      if (after !== undefined && before !== undefined)
        rows = q.between.all(conversationId, after, before, limit);
      else if (after !== undefined) rows = q.after.all(conversationId, after, limit);
      else if (before !== undefined) rows = q.before.all(conversationId, before, limit).reverse();
      else rows = q.latest.all(conversationId, limit).reverse();
      return rows.map(toMessage);
    },

    /** `JSON.stringify(page(id, { limit }).map(toWireMessage))`, kept until a write touches it. */
    latestPageJson(conversationId: string, limit: number): string {
      let byLimit = latestPages.get(conversationId);
      const hit = byLimit?.get(limit);
      if (hit !== undefined) return hit;
      const json = JSON.stringify(store.page(conversationId, { limit }).map(toWireMessage));
      if (latestPagesChars + json.length > LATEST_PAGES_MAX_CHARS) {
        latestPages.clear();
        latestPagesChars = 0;
        byLimit = undefined;
      }
      if (!byLimit) {
        byLimit = new Map();
        latestPages.set(conversationId, byLimit);
      }
      byLimit.set(limit, json);
      latestPagesChars += json.length;
      return json;
    },

    conversationsOf(userId: number, f: ConversationFilter): ConversationSummary[] {
      return q.conversationsOf
        .all(userId, userId)
        .map(toConversation)
        .filter(
          (c) =>
            (f.mentorId === undefined || c.mentorId === f.mentorId) &&
            (f.studentId === undefined || c.studentId === f.studentId) &&
            (f.lessonId === undefined || c.lessonId === f.lessonId),
        )
        .map((c) => store.summarise(c, userId))
        .sort((a, b) => activity(b) - activity(a) || (a.id < b.id ? -1 : 1));
    },

    summarise(c: Conversation, viewerId: number): ConversationSummary {
      const last = q.lastMessage.get(c.id);
      const other = viewerId === c.mentorId ? c.studentId : c.mentorId;
      return {
        ...c,
        lastMessage: last ? toMessage(last) : null,
        unreadCount: q.unread.get(c.id, other)?.n ?? 0,
      };
    },

    shareConversation(a: number, b: number): boolean {
      return a === b || q.shareConversation.get(a, b, b, a) !== null;
    },

    touchPresence(userId: number, at: number): void {
      q.touchPresence.run(userId, at);
    },

    /** The newest message id stored, so ids made after a restart sort after it. */
    newestMessageId(): string | null {
      return q.newestMessageId.get()?.id ?? null;
    },

    lastSeen(userId: number): number | null {
      return q.lastSeen.get(userId)?.last_seen ?? null;
    },

    outboxBatch(afterSeq: number, limit: number): OutboxRow[] {
      return q.outboxBatch
        .all(afterSeq, limit)
        .map((r) => ({ seq: r.seq, event: JSON.parse(r.payload) as OutboxEvent, createdAt: r.created_at }));
    },

    /** Forget outbox rows MongoDB has confirmed, up to and including `seq`. */
    outboxConfirm(seq: number): void {
      q.outboxDelete.run(seq);
    },

    outboxStats(): { backlog: number; oldestAt: number | null } {
      const s = q.outboxStats.get()!;
      return { backlog: s.n, oldestAt: s.oldest };
    },

    /**
     * Copies what MongoDB already holds into the local store, with no outbox rows (it is there
     * already). A local read mark wins over MongoDB's; a missing one is filled in.
     */
    importHistory(conversation: Conversation | null, messages: StoredMessage[]): void {
      if (conversation) forget(conversation.id);
      for (const m of messages) forget(m.conversationId);
      db.transaction(() => {
        if (conversation) {
          const c = conversation;
          q.insertConversation.run(c.id, c.lessonId, c.mentorId, c.studentId, c.createdAt);
        }
        for (const m of messages) {
          q.importMessage.run(
            m.conversationId,
            m.id,
            m.senderId,
            m.text,
            m.createdAt,
            m.clientId,
            m.viewedBy,
            m.viewedAt,
          );
        }
      })();
    },

    /**
     * Adopts MongoDB's id for a conversation made here under another one: moves the conversation,
     * its messages and its pending outbox rows in one transaction and remembers the old id.
     * Idempotent: run again, it only moves stragglers written under the old id since.
     */
    remapConversation(oldId: string, newId: string): void {
      forget(oldId);
      forget(newId);
      db.transaction(() => {
        db.run("UPDATE conversations SET id = ? WHERE id = ?", [newId, oldId]);
        db.run("UPDATE messages SET conversation_id = ? WHERE conversation_id = ?", [newId, oldId]);
        db.run(
          `UPDATE outbox SET payload = json_set(payload, '$.message.conversationId', ?)
           WHERE json_extract(payload, '$.message.conversationId') = ?`,
          [newId, oldId],
        );
        db.run(
          `UPDATE outbox SET payload = json_set(payload, '$.conversationId', ?)
           WHERE json_extract(payload, '$.conversationId') = ?`,
          [newId, oldId],
        );
        db.run(
          `UPDATE outbox SET payload = json_set(payload, '$.conversation.id', ?)
           WHERE json_extract(payload, '$.conversation.id') = ?`,
          [newId, oldId],
        );
        db.run("INSERT OR REPLACE INTO conversation_alias (old_id, new_id) VALUES (?, ?)", [oldId, newId]);
      })();
      // The shared frozen object still carries the old id: the next open must read the new one.
      opened.delete(oldId);
    },

    conversationAliases(): Map<string, string> {
      return new Map(q.aliases.all().map((r) => [r.old_id, r.new_id]));
    },

    transaction<T>(fn: () => T): T {
      return db.transaction(fn)();
    },

    healthy(): boolean {
      try {
        db.query("SELECT 1").get();
        return true;
      } catch {
        return false;
      }
    },

    close(): void {
      db.close(false);
    },
  };
  return store;
}

function activity(s: ConversationSummary): number {
  return s.lastMessage?.createdAt ?? s.createdAt;
}
