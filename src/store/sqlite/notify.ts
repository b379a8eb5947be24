import type { Database } from "bun:sqlite";
import type { NotifyCycle, NotifyPayload, PlatformNotification } from "../../model/notification.ts";
import type { MessageLog } from "./message-log.ts";
import type { Outbox } from "./outbox.ts";

/**
 * Notification cycles (table notify_cycles), one row per (conversation, recipient) with an open
 * cycle. The row is written in the same transaction as the message that opens it, together with the outbox
 * entry that fires it, and deleted in the same transaction as the read mark that ends it: a crash
 * can never leave one without the other. The frozen payload and the sinks already done live here
 * too, so a retry sends the same notification and only to the sinks that did not confirm it.
 */

/** The outbox key of a cycle's entry: at most one waits per (conversation, recipient). */
const cycleKey = (conversationId: string, recipientId: number) => `${conversationId}:${recipientId}`;

interface CycleRow {
  conversation_id: string;
  recipient_id: number;
  notification_id: number;
  sender_id: number;
  first_message_id: string;
  due_at: number;
  payload: string | null;
  sinks_done: string;
  sent_at: number | null;
}

const toCycle = (r: CycleRow): NotifyCycle => ({
  conversationId: r.conversation_id,
  recipientId: r.recipient_id,
  notificationId: r.notification_id,
  senderId: r.sender_id,
  firstMessageId: r.first_message_id,
  dueAt: r.due_at,
  payload: r.payload === null ? null : (JSON.parse(r.payload) as PlatformNotification),
  sinksDone: r.sinks_done === "" ? [] : r.sinks_done.split(","),
  sentAt: r.sent_at,
});

export function createNotifyCycles(db: Database, outbox: Outbox, log: MessageLog) {
  const q = {
    get: db.query<CycleRow, [string, number]>(
      "SELECT * FROM notify_cycles WHERE conversation_id = ? AND recipient_id = ?",
    ),
    insert: db.query<null, [string, number, number, number, string, number]>(
      `INSERT INTO notify_cycles (conversation_id, recipient_id, notification_id, sender_id, first_message_id, due_at)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    ),
    end: db.query<null, [string, number, string]>(
      "DELETE FROM notify_cycles WHERE conversation_id = ? AND recipient_id = ? AND first_message_id <= ?",
    ),
    remove: db.query<null, [string, number, number]>(
      "DELETE FROM notify_cycles WHERE conversation_id = ? AND recipient_id = ? AND notification_id = ?",
    ),
    freeze: db.query<null, [string, string, number, number]>(
      `UPDATE notify_cycles SET payload = coalesce(payload, ?)
       WHERE conversation_id = ? AND recipient_id = ? AND notification_id = ?`,
    ),
    sinkDone: db.query<null, [string, string, number, number]>(
      `UPDATE notify_cycles SET sinks_done = CASE WHEN sinks_done = '' THEN ?1 ELSE sinks_done || ',' || ?1 END
       WHERE conversation_id = ?2 AND recipient_id = ?3 AND notification_id = ?4`,
    ),
    sent: db.query<null, [number, string, number, number]>(
      "UPDATE notify_cycles SET sent_at = ? WHERE conversation_id = ? AND recipient_id = ? AND notification_id = ?",
    ),
    move: db.query<null, [string, string]>(
      "UPDATE OR REPLACE notify_cycles SET conversation_id = ? WHERE conversation_id = ?",
    ),
    pending: db.query<{ n: number; due: number | null }, []>(
      "SELECT count(*) AS n, min(due_at) AS due FROM notify_cycles WHERE sent_at IS NULL",
    ),
    read: db.query<{ viewed_by: number | null }, [string, string]>(
      "SELECT viewed_by FROM messages WHERE conversation_id = ? AND id = ?",
    ),
    unread: db.query<{ n: number }, [string, number]>(
      "SELECT count(*) AS n FROM messages WHERE conversation_id = ? AND sender_id = ? AND viewed_by IS NULL",
    ),
    text: db.query<{ text: string }, [string, string]>(
      "SELECT text FROM messages WHERE conversation_id = ? AND id = ?",
    ),
  };
  const cycle = (conversationId: string, recipientId: number): NotifyCycle | null => {
    const row = q.get.get(conversationId, recipientId);
    return row ? toCycle(row) : null;
  };
  return {
    cycle,

    /**
     * Opens a cycle unless one is open, with the outbox entry that fires it; inside the message's
     * transaction. True when it opened one.
     */
    openCycle(p: NotifyPayload, at: number): boolean {
      const opened =
        q.insert.run(p.conversationId, p.recipientId, p.notificationId, p.senderId, p.firstMessageId, p.dueAt)
          .changes > 0;
      if (opened)
        outbox.enqueue("notify", p, at, { dueAt: p.dueAt, key: cycleKey(p.conversationId, p.recipientId) });
      return opened;
    },

    /**
     * A read mark by the recipient up to `upToId`: ends the cycle it covers and withdraws its
     * notification if still waiting. True when one ended.
     */
    endCycle(conversationId: string, recipientId: number, upToId: string): boolean {
      const ended = q.end.run(conversationId, recipientId, upToId).changes > 0;
      if (ended) outbox.cancel("notify", cycleKey(conversationId, recipientId));
      return ended;
    },

    removeCycle(conversationId: string, recipientId: number, notificationId: number): void {
      q.remove.run(conversationId, recipientId, notificationId);
    },

    /** Stores the payload of the first attempt; returns the one stored (an earlier one wins). */
    freezePayload(c: NotifyCycle, payload: PlatformNotification): PlatformNotification {
      q.freeze.run(JSON.stringify(payload), c.conversationId, c.recipientId, c.notificationId);
      return cycle(c.conversationId, c.recipientId)?.payload ?? payload;
    },

    sinkDone(c: NotifyCycle, sink: string): void {
      q.sinkDone.run(sink, c.conversationId, c.recipientId, c.notificationId);
    },

    markSent(c: NotifyCycle, at: number): void {
      q.sent.run(at, c.conversationId, c.recipientId, c.notificationId);
    },

    /** A conversation adopted MongoDB's id: its cycles follow (see conversations.remapConversation). */
    moveCycles(oldId: string, newId: string): void {
      q.move.run(newId, oldId);
    },

    /** Cycles still waiting to be sent, and the earliest due time among them. */
    pendingStats(): { pending: number; earliestDueAt: number | null } {
      const s = q.pending.get()!;
      return { pending: s.n, earliestDueAt: s.due };
    },

    messageRead(conversationId: string, messageId: string): boolean {
      log.settle(conversationId);
      return (q.read.get(conversationId, messageId)?.viewed_by ?? null) !== null;
    },

    messageText(conversationId: string, messageId: string): string | null {
      log.settle(conversationId);
      return q.text.get(conversationId, messageId)?.text ?? null;
    },

    unreadFrom(conversationId: string, senderId: number): number {
      log.settle(conversationId);
      return q.unread.get(conversationId, senderId)?.n ?? 0;
    },
  };
}

export type NotifyCycles = ReturnType<typeof createNotifyCycles>;
