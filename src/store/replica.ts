import type { Database } from "bun:sqlite";

/**
 * Copies of what other instances stored, taken from the frames they relay over the bus, so
 * that history, resume and client_id retries on this instance see them too. No outbox rows:
 * the instance that accepted a message is the one that flushes it to MongoDB.
 */

export interface RelayedMessage {
  id: string;
  conversationId: string;
  senderId: number;
  text: string;
  createdAt: number;
  clientId: string | null;
}

export interface RelayedViewed {
  conversationId: string;
  /** Whose messages were marked: the other participant. */
  senderId: number;
  viewerId: number;
  upToId: string;
  viewedAt: number;
}

export type Replica = ReturnType<typeof createReplica>;

export function createReplica(db: Database) {
  const insert = db.query<null, [string, string, number, string, number, string | null]>(
    `INSERT INTO messages (conversation_id, id, sender_id, text, created_at, client_id)
     VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  );
  const mark = db.query<null, [number, number, string, number, string]>(
    `UPDATE messages SET viewed_by = ?, viewed_at = ?
     WHERE conversation_id = ? AND sender_id = ? AND id <= ? AND viewed_by IS NULL`,
  );
  return {
    /** True when the message was new here. Runs inside the group commit's transaction. */
    insertMessage(m: RelayedMessage): boolean {
      return insert.run(m.conversationId, m.id, m.senderId, m.text, m.createdAt, m.clientId).changes > 0;
    },
    /** Rows changed; zero when this instance already knew the mark. */
    markViewed(v: RelayedViewed): number {
      return mark.run(v.viewerId, v.viewedAt, v.conversationId, v.senderId, v.upToId).changes;
    },
  };
}
