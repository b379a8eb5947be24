import type { Database } from "bun:sqlite";
import type { Conversation, ConversationFilter, ConversationSummary, Parties } from "../../model/types.ts";
import type { LatestPages } from "./latest-pages.ts";
import type { MessageLog } from "./message-log.ts";
import { toMessage } from "./messages.ts";
import type { Outbox } from "./outbox.ts";

interface ConversationRow {
  id: string;
  lesson_id: number;
  mentor_id: number;
  student_id: number;
  created_at: number;
}

const toConversation = (r: ConversationRow): Conversation => ({
  id: r.id,
  lessonId: r.lesson_id,
  mentorId: r.mentor_id,
  studentId: r.student_id,
  createdAt: r.created_at,
});

function conversationStatements(db: Database) {
  return {
    byId: db.query<ConversationRow, [string]>("SELECT * FROM conversations WHERE id = ?"),
    byParties: db.query<ConversationRow, [number, number, number]>(
      "SELECT * FROM conversations WHERE lesson_id = ? AND mentor_id = ? AND student_id = ?",
    ),
    insert: db.query<null, [string, number, number, number, number]>(
      "INSERT OR IGNORE INTO conversations (id, lesson_id, mentor_id, student_id, created_at) VALUES (?, ?, ?, ?, ?)",
    ),
    of: db.query<ConversationRow, [number, number]>(
      "SELECT * FROM conversations WHERE mentor_id = ? UNION SELECT * FROM conversations WHERE student_id = ?",
    ),
    lastMessage: db.query<Parameters<typeof toMessage>[0], [string]>(
      "SELECT * FROM messages WHERE conversation_id = ? AND deleted_at IS NULL ORDER BY id DESC LIMIT 1",
    ),
    // Kept messages above the evicted floor, plus the evicted that were unread (retention.ts).
    unread: db.query<{ n: number }, [string, number]>(
      `SELECT (SELECT count(*) FROM messages WHERE conversation_id = ?1 AND sender_id = ?2 AND viewed_by IS NULL AND deleted_at IS NULL
                 AND id > coalesce(e.floor_id, ''))
            + coalesce(e.unread, 0) AS n
       FROM (SELECT 1) LEFT JOIN evicted_summary e ON e.conversation_id = ?1 AND e.sender_id = ?2`,
    ),
    aliasOf: db.query<{ new_id: string }, [string]>("SELECT new_id FROM conversation_alias WHERE old_id = ?"),
    aliases: db.query<{ old_id: string; new_id: string }, []>(
      "SELECT old_id, new_id FROM conversation_alias",
    ),
    share: db.query<{ one: number }, [number, number, number, number]>(
      `SELECT 1 AS one FROM conversations WHERE (mentor_id = ? AND student_id = ?) OR (mentor_id = ? AND student_id = ?) LIMIT 1`,
    ),
    moveConversation: db.query<null, [string, string]>("UPDATE conversations SET id = ? WHERE id = ?"),
    moveMessages: db.query<null, [string, string]>(
      "UPDATE messages SET conversation_id = ? WHERE conversation_id = ?",
    ),
    moveChanges: db.query<null, [string, string]>(
      "UPDATE message_changes SET conversation_id = ? WHERE conversation_id = ?",
    ),
    moveEvicted: db.query<null, [string, string]>(
      "UPDATE OR REPLACE evicted_summary SET conversation_id = ? WHERE conversation_id = ?",
    ),
    addAlias: db.query<null, [string, string]>(
      "INSERT OR REPLACE INTO conversation_alias (old_id, new_id) VALUES (?, ?)",
    ),
  };
}

/**
 * Conversations, their summaries, and the ids they were remapped from.
 *
 * Conversations never change once created (a remap drops the old id below); every socket and
 * REST call on one shares a single frozen object, and a connect or a lookup by id skips SQL.
 * Bounded so a huge instance cannot grow it without limit.
 */
export function createConversations(db: Database, outbox: Outbox, pages: LatestPages, log: MessageLog) {
  const q = conversationStatements(db);
  const opened = new Map<string, Conversation>();
  const remember = (c: Conversation): Conversation => {
    if (opened.size >= 50_000) opened.clear();
    const frozen = Object.freeze(c);
    opened.set(c.id, frozen);
    return frozen;
  };
  const aliased = (id: string) => {
    const to = q.aliasOf.get(id);
    return to ? q.byId.get(to.new_id) : null;
  };
  const insertRow = (c: Conversation) => q.insert.run(c.id, c.lessonId, c.mentorId, c.studentId, c.createdAt);

  const self = {
    /** The parties' conversation if it is stored; `id` is where to look first (derived from them). */
    existingConversation(id: string, p: Parties): Conversation | null {
      const known = opened.get(id);
      if (
        known &&
        known.lessonId === p.lessonId &&
        known.mentorId === p.mentorId &&
        known.studentId === p.studentId
      )
        return known;
      const existing = q.byParties.get(p.lessonId, p.mentorId, p.studentId);
      return existing ? remember(toConversation(existing)) : null;
    },

    /**
     * Stores the parties' conversation unless it is there, inside the caller's transaction (a
     * group commit's, so a burst of new conversations shares one sync). Nothing is remembered
     * before that commit: read it back with `existingConversation` once it is durable.
     */
    createConversation(id: string, p: Parties, now: number): void {
      if (q.byParties.get(p.lessonId, p.mentorId, p.studentId)) return;
      const conversation: Conversation = { id, ...p, createdAt: now };
      insertRow(conversation);
      outbox.enqueue("conversation", { conversation }, now);
    },

    /** Get-or-create in a transaction of its own; the id is decided by the caller. */
    openConversation(id: string, p: Parties, now: number): Conversation {
      const existing = self.existingConversation(id, p);
      if (existing) return existing;
      db.transaction(() => self.createConversation(id, p, now))();
      return self.existingConversation(id, p)!;
    },

    conversationFor(p: Parties): Conversation | null {
      const row = q.byParties.get(p.lessonId, p.mentorId, p.studentId);
      return row ? toConversation(row) : null;
    },

    /** By id (or an id it was remapped from); every REST call on a conversation asks this first. */
    conversation(id: string): Conversation | null {
      const known = opened.get(id);
      if (known) return known;
      const row = q.byId.get(id) ?? aliased(id);
      return row ? remember(toConversation(row)) : null;
    },

    conversationsOf(userId: number, f: ConversationFilter): ConversationSummary[] {
      return q.of
        .all(userId, userId)
        .map(toConversation)
        .filter(
          (c) =>
            (f.mentorId === undefined || c.mentorId === f.mentorId) &&
            (f.studentId === undefined || c.studentId === f.studentId) &&
            (f.lessonId === undefined || c.lessonId === f.lessonId),
        )
        .map((c) => self.summarise(c, userId))
        .sort((a, b) => activity(b) - activity(a) || (a.id < b.id ? -1 : 1));
    },

    summarise(c: Conversation, viewerId: number): ConversationSummary {
      log.settle(c.id);
      const last = q.lastMessage.get(c.id);
      const other = viewerId === c.mentorId ? c.studentId : c.mentorId;
      return {
        ...c,
        lastMessage: last ? toMessage(last) : null,
        unreadCount: q.unread.get(c.id, other)?.n ?? 0,
      };
    },

    shareConversation(a: number, b: number): boolean {
      return a === b || q.share.get(a, b, b, a) !== null;
    },

    /**
     * Keeps a conversation another instance made (it travels with a replicated message), with a
     * copy for MongoDB due at `copyDueAt`, withdrawn when the origin confirms first.
     */
    keepRelayedConversation(c: Conversation, copyDueAt?: number): void {
      if (insertRow(c).changes === 0 || copyDueAt === undefined) return;
      outbox.enqueue("relayed_conversation", { conversation: c }, c.createdAt, {
        dueAt: copyDueAt,
        key: c.id,
      });
    },

    /** Copies a conversation MongoDB holds, with no outbox row (it is there already). */
    importConversation(c: Conversation): void {
      pages.forget(c.id);
      insertRow(c);
    },

    /**
     * Adopts MongoDB's id for a conversation made here under another one: moves the conversation
     * and its messages in one transaction and remembers the old id. Pending outbox entries keep
     * the old id; their handler translates it through `conversationAliases`. Idempotent: run
     * again, it only moves stragglers written under the old id since.
     */
    remapConversation(oldId: string, newId: string): void {
      pages.forget(oldId);
      pages.forget(newId);
      // The log's rows name the old id: an empty log has none to miss.
      log.settleAll();
      db.transaction(() => {
        q.moveConversation.run(newId, oldId);
        q.moveMessages.run(newId, oldId);
        q.moveChanges.run(newId, oldId);
        q.moveEvicted.run(newId, oldId);
        q.addAlias.run(oldId, newId);
      })();
      // The shared frozen object still carries the old id: the next open must read the new one.
      opened.delete(oldId);
    },

    conversationAliases(): Map<string, string> {
      return new Map(q.aliases.all().map((r) => [r.old_id, r.new_id]));
    },
  };
  return self;
}

function activity(s: ConversationSummary): number {
  return s.lastMessage?.createdAt ?? s.createdAt;
}
