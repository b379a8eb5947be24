import type { Database } from "bun:sqlite";
import { copyKey } from "../../model/outbox.ts";
import type { AttachmentRef, NewMessage, StoredMessage, ViewedMark } from "../../model/types.ts";
import { toWireMessage } from "../../protocol/wire.ts";
import type { ClientIdIndex } from "./client-ids.ts";
import type { LatestPages } from "./latest-pages.ts";
import { type MessageLog, type NewMessageColumns, newMessageColumns } from "./message-log.ts";
import type { Outbox } from "./outbox.ts";

export interface MessageRow {
  id: string;
  conversation_id: string;
  sender_id: number;
  text: string;
  created_at: number;
  client_id: string | null;
  viewed_by: number | null;
  viewed_at: number | null;
  reply_to: string | null;
  edited_at: number | null;
  deleted_at: number | null;
  /** JSON of AttachmentRef[]; null for a text-only message. */
  attachments: string | null;
}

export const toMessage = (r: MessageRow): StoredMessage => {
  const m: StoredMessage = {
    id: r.id,
    conversationId: r.conversation_id,
    senderId: r.sender_id,
    text: r.text,
    createdAt: r.created_at,
    clientId: r.client_id,
    viewedBy: r.viewed_by,
    viewedAt: r.viewed_at,
    replyTo: r.reply_to,
    editedAt: r.edited_at,
    deletedAt: r.deleted_at,
  };
  if (r.attachments !== null) m.attachments = JSON.parse(r.attachments) as AttachmentRef[];
  return m;
};

const attachmentsJson = (list: AttachmentRef[] | undefined): string | null =>
  list && list.length > 0 ? JSON.stringify(list) : null;

type ImportRow = [
  string,
  string,
  number,
  string,
  number,
  string | null,
  number | null,
  number | null,
  string | null,
  number | null,
  number | null,
  string | null,
];

function messageStatements(db: Database) {
  return {
    // run() and its change count, not RETURNING: SQLite buffers returned rows (~1 µs a message).
    insert: db.query<null, NewMessageColumns>(
      `INSERT INTO messages (conversation_id, id, sender_id, text, created_at, client_id, reply_to, attachments)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    ),
    // No index on client_id (client-ids.ts says why): a scan of the conversation, newest first,
    // run only when its in-memory set says the pair may be there.
    byClientId: db.query<MessageRow, [string, number, string]>(
      `SELECT * FROM messages WHERE conversation_id = ? AND sender_id = ? AND client_id = ?
       ORDER BY id DESC LIMIT 1`,
    ),
    byId: db.query<MessageRow, [string, string]>(
      "SELECT * FROM messages WHERE conversation_id = ? AND id = ?",
    ),
    evictedClientId: db.query<{ id: string; created_at: number }, [string, number, string]>(
      "SELECT id, created_at FROM evicted_client_ids WHERE conversation_id = ? AND sender_id = ? AND client_id = ?",
    ),
    // Evicted messages are all older than any kept one: a mark on a kept message covers them.
    markEvictedViewed: db.query<null, [string, number, string]>(
      "UPDATE evicted_summary SET unread = 0 WHERE conversation_id = ? AND sender_id = ? AND floor_id <= ? AND unread > 0",
    ),
    markViewed: db.query<null, [number, number, string, number, string]>(
      `UPDATE messages SET viewed_by = ?, viewed_at = ?
       WHERE conversation_id = ? AND sender_id = ? AND id <= ? AND viewed_by IS NULL`,
    ),
    // One primary-key seek per conversation, not a scan of every message.
    newestId: db.query<{ id: string | null }, []>(
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
    // A delete wins over everything, a newer edit over an older one, wherever each was made.
    importOne: db.query<null, ImportRow>(
      `INSERT INTO messages (conversation_id, id, sender_id, text, created_at, client_id, viewed_by, viewed_at,
         reply_to, edited_at, deleted_at, attachments)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET viewed_by = coalesce(messages.viewed_by, excluded.viewed_by),
         viewed_at = coalesce(messages.viewed_at, excluded.viewed_at),
         text = CASE WHEN messages.deleted_at IS NOT NULL OR excluded.deleted_at IS NOT NULL THEN ''
           WHEN coalesce(excluded.edited_at, 0) > coalesce(messages.edited_at, 0) THEN excluded.text
           ELSE messages.text END,
         edited_at = CASE WHEN coalesce(excluded.edited_at, 0) > coalesce(messages.edited_at, 0)
           THEN excluded.edited_at ELSE messages.edited_at END,
         deleted_at = coalesce(messages.deleted_at, excluded.deleted_at),
         reply_to = coalesce(messages.reply_to, excluded.reply_to),
         attachments = CASE WHEN messages.deleted_at IS NOT NULL OR excluded.deleted_at IS NOT NULL THEN NULL
           ELSE messages.attachments END`,
    ),
  };
}

/** What imports need of the change feed (change-feed.ts), typed here so neither imports the other. */
interface FeedNote {
  note(conversationId: string, messageId: string, at: number): void;
}

/**
 * Messages and read marks. Every write drops its conversation's cached latest page beside it.
 * A new message may wait in the log (message-log.ts): every read here settles its conversation first.
 */
export function createMessages(
  db: Database,
  log: MessageLog,
  outbox: Outbox,
  pages: LatestPages,
  feed: FeedNote,
  evictedClientIds: { any(): boolean },
  clientIds: ClientIdIndex,
) {
  const q = messageStatements(db);
  const storedByClientId = (
    conversationId: string,
    senderId: number,
    clientId: string | undefined,
  ): MessageRow | null => {
    if (clientId === undefined || !clientIds.mayHave(conversationId, senderId, clientId)) return null;
    log.settle(conversationId);
    return q.byClientId.get(conversationId, senderId, clientId);
  };
  /**
   * False when the id is taken. A stored pair is recorded for the client_id check. Through the
   * log when `logged` and the conversation is busy; a relayed message goes straight in.
   */
  const insertRow = (m: NewMessage, logged: boolean): boolean => {
    const attachments = attachmentsJson(m.attachments);
    const inserted =
      (logged && log.append(m, attachments)) ||
      q.insert.run(...newMessageColumns(m, attachments)).changes === 1;
    if (inserted && m.clientId !== undefined) clientIds.add(m.conversationId, m.senderId, m.clientId);
    return inserted;
  };

  const self = {
    /**
     * Inserts a message unless its client_id was seen in this conversation from this sender;
     * then returns the stored one. Must run inside the group commit's transaction.
     */
    insertMessage(m: NewMessage): { message: StoredMessage; duplicate: boolean } {
      pages.forget(m.conversationId);
      // Retention removed the original but remembers its client_id for a while (retention.ts).
      const evicted =
        m.clientId !== undefined && evictedClientIds.any()
          ? q.evictedClientId.get(m.conversationId, m.senderId, m.clientId)
          : null;
      if (evicted) {
        const message = { ...m, id: evicted.id, createdAt: evicted.created_at, clientId: m.clientId ?? null };
        return {
          message: {
            ...message,
            replyTo: m.replyTo ?? null,
            viewedBy: null,
            viewedAt: null,
            editedAt: null,
            deletedAt: null,
          },
          duplicate: true,
        };
      }
      const prior = storedByClientId(m.conversationId, m.senderId, m.clientId);
      if (prior) return { message: toMessage(prior), duplicate: true };
      if (!insertRow(m, true)) throw new Error(`message id ${m.id} collided`);
      const message: StoredMessage = {
        ...m,
        clientId: m.clientId ?? null,
        viewedBy: null,
        viewedAt: null,
        replyTo: m.replyTo ?? null,
        editedAt: null,
        deletedAt: null,
      };
      if (!m.attachments?.length) delete message.attachments;
      outbox.enqueue("message", { message }, m.createdAt);
      return { message, duplicate: false };
    },

    /** The message this sender already sent under this client_id, if any. */
    messageByClientId(conversationId: string, senderId: number, clientId: string): StoredMessage | null {
      const row = storedByClientId(conversationId, senderId, clientId);
      return row ? toMessage(row) : null;
    },

    message(conversationId: string, id: string): StoredMessage | null {
      log.settle(conversationId);
      const row = q.byId.get(conversationId, id);
      return row ? toMessage(row) : null;
    },

    /**
     * Read-up-to: marks `upToId` and every earlier message from `senderId`. Returns rows changed.
     * A mark relayed from another instance is that instance's to flush: it gets no outbox row,
     * only a copy due at `copyDueAt` when one is asked for (see keepRelayedMessage).
     */
    markViewed(
      conversationId: string,
      senderId: number,
      viewerId: number,
      upToId: string,
      at: number,
      origin: "here" | "relayed" = "here",
      copyDueAt?: number,
    ): number {
      pages.forget(conversationId);
      log.settle(conversationId);
      const { changes } = q.markViewed.run(viewerId, at, conversationId, senderId, upToId);
      q.markEvictedViewed.run(conversationId, senderId, upToId);
      if (changes === 0) return 0;
      const mark: ViewedMark = { conversationId, senderId, viewerId, upToId, viewedAt: at };
      if (origin === "here") outbox.enqueue("viewed", mark, at);
      else if (copyDueAt !== undefined)
        outbox.enqueue("relayed_viewed", mark, at, { dueAt: copyDueAt, key: copyKey("viewed", mark) });
      return changes;
    },

    /**
     * Keeps a message another instance accepted and relayed, so history, resume and client_id
     * retries here see it. Its own instance flushes it; with `copyDueAt` this one queues a copy
     * for MongoDB too, due then and withdrawn when the origin confirms first. True when new here.
     */
    keepRelayedMessage(m: NewMessage, copyDueAt?: number): boolean {
      pages.forget(m.conversationId);
      // One (sender, client_id) is one message here, as for messages sent here.
      if (storedByClientId(m.conversationId, m.senderId, m.clientId) || !insertRow(m, false)) return false;
      if (copyDueAt !== undefined) {
        const message: StoredMessage = {
          ...m,
          clientId: m.clientId ?? null,
          replyTo: m.replyTo ?? null,
          viewedBy: null,
          viewedAt: null,
          editedAt: null,
          deletedAt: null,
        };
        outbox.enqueue("relayed_message", { message }, m.createdAt, { dueAt: copyDueAt, key: m.id });
      }
      return true;
    },

    page(conversationId: string, opts: { before?: string; after?: string; limit: number }): StoredMessage[] {
      const { before, after, limit } = opts;
      log.settle(conversationId);
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
      return pages.get(conversationId, limit, () =>
        JSON.stringify(self.page(conversationId, { limit }).map(toWireMessage)),
      );
    },

    /** The newest message id stored, so ids made after a restart sort after it. */
    newestMessageId(): string | null {
      log.settleAll();
      return q.newestId.get()?.id ?? null;
    },

    /**
     * Copies messages MongoDB holds; a local read mark wins, a missing one is filled in; edits
     * and deletes made elsewhere enter the change feed, so catch-up here includes them.
     */
    importMessages(messages: StoredMessage[]): void {
      for (const m of messages) {
        pages.forget(m.conversationId);
        log.settle(m.conversationId);
        q.importOne.run(
          m.conversationId,
          m.id,
          m.senderId,
          m.deletedAt === null ? m.text : "",
          m.createdAt,
          m.clientId,
          m.viewedBy,
          m.viewedAt,
          m.replyTo,
          m.editedAt,
          m.deletedAt,
          attachmentsJson(m.attachments),
        );
        if (m.clientId !== null) clientIds.note(m.conversationId, m.senderId, m.clientId);
        const changedAt = m.deletedAt ?? m.editedAt;
        if (changedAt !== null) feed.note(m.conversationId, m.id, changedAt);
      }
    },
  };
  return self;
}
