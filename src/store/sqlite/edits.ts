import type { Database } from "bun:sqlite";
import type { StoredMessage } from "../../model/types.ts";
import type { ChangeFeed } from "./change-feed.ts";
import type { LatestPages } from "./latest-pages.ts";
import type { MessageLog } from "./message-log.ts";
import { type MessageRow, toMessage } from "./messages.ts";
import type { Outbox } from "./outbox.ts";

/**
 * Edits and deletes of stored messages. Each one that changes a row notes it in the change feed
 * and, when made here, queues the message's new state for MongoDB behind the message itself.
 * A change relayed from another instance is that instance's to flush. Both must run inside a
 * group-commit transaction.
 */
export function createEdits(
  db: Database,
  outbox: Outbox,
  pages: LatestPages,
  feed: ChangeFeed,
  log: MessageLog,
) {
  // Last writer (by the change's time) wins; re-applying the same edit changes nothing, so a
  // replayed relay is not delivered twice.
  const edit = db.query<MessageRow, [string, number, string, string]>(
    `UPDATE messages SET text = ?1, edited_at = ?2
     WHERE conversation_id = ?3 AND id = ?4 AND deleted_at IS NULL
       AND coalesce(edited_at, 0) <= ?2 AND NOT (edited_at IS ?2 AND text = ?1)
     RETURNING *`,
  );
  const erase = db.query<MessageRow, [number, string, string]>(
    `UPDATE messages SET text = '', attachments = NULL, deleted_at = ? WHERE conversation_id = ? AND id = ? AND deleted_at IS NULL
     RETURNING *`,
  );

  return {
    /** The message after the edit, or null when nothing changed (deleted, newer edit, same edit). */
    editMessage(
      conversationId: string,
      messageId: string,
      text: string,
      at: number,
      origin: "here" | "relayed" = "here",
    ): StoredMessage | null {
      log.settle(conversationId);
      const row = edit.get(text, at, conversationId, messageId);
      if (!row) return null;
      pages.forget(conversationId);
      feed.note(conversationId, messageId, at);
      const message = toMessage(row);
      if (origin === "here") outbox.enqueue("edit", { message }, at);
      return message;
    },

    /**
     * Erases the text (it is gone from this file, and from queued outbox entries, not hidden) and
     * keeps the tombstone. Null when it was deleted already or is unknown here.
     */
    deleteMessage(
      conversationId: string,
      messageId: string,
      at: number,
      origin: "here" | "relayed" = "here",
    ): StoredMessage | null {
      log.settle(conversationId);
      const row = erase.get(at, conversationId, messageId);
      if (!row) return null;
      log.scrub(conversationId, messageId);
      pages.forget(conversationId);
      feed.note(conversationId, messageId, at);
      outbox.scrubText(messageId);
      const message = toMessage(row);
      if (origin === "here") outbox.enqueue("delete", { message }, at);
      return message;
    },
  };
}
