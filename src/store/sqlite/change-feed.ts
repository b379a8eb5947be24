import type { Database } from "bun:sqlite";
import type { ChangePosition, MessageChange } from "../../model/types.ts";
import type { MessageLog } from "./message-log.ts";
import { type MessageRow, toMessage } from "./messages.ts";

/**
 * The change feed: one row per edited or deleted message, keyed by the time of its latest
 * change (the origin's `edited_at`/`deleted_at`, so every instance orders it the same way).
 * Catch-up after a reconnect and `GET /messages/changes` read it by position; the message's
 * current state comes from `messages`, so an edit followed by a delete reads as the delete.
 */

export interface FeedEntry {
  change: MessageChange;
  position: ChangePosition;
}

export function createChangeFeed(db: Database, log: MessageLog) {
  const note = db.query<null, [string, string, number]>(
    `INSERT INTO message_changes (conversation_id, message_id, changed_at) VALUES (?, ?, ?)
     ON CONFLICT DO UPDATE SET changed_at = max(changed_at, excluded.changed_at)`,
  );
  const after = db.query<MessageRow & { changed_at: number }, [string, number, string, number]>(
    `SELECT c.changed_at, m.* FROM message_changes c
     JOIN messages m ON m.conversation_id = c.conversation_id AND m.id = c.message_id
     WHERE c.conversation_id = ? AND (c.changed_at, c.message_id) > (?, ?)
     ORDER BY c.changed_at, c.message_id LIMIT ?`,
  );
  return {
    note(conversationId: string, messageId: string, at: number): void {
      note.run(conversationId, messageId, at);
    },

    /** The changed messages after `from`, oldest change first, each as its current state. */
    changesAfter(conversationId: string, from: ChangePosition, limit: number): FeedEntry[] {
      log.settle(conversationId);
      return after.all(conversationId, from.at, from.messageId, limit).map((r) => {
        const m = toMessage(r);
        const position = { at: r.changed_at, messageId: m.id };
        const change: MessageChange =
          m.deletedAt !== null
            ? { kind: "deleted", conversationId, messageId: m.id, at: m.deletedAt }
            : {
                kind: "edited",
                conversationId,
                messageId: m.id,
                text: m.text,
                at: m.editedAt ?? r.changed_at,
              };
        return { change, position };
      });
    },
  };
}

export type ChangeFeed = ReturnType<typeof createChangeFeed>;
