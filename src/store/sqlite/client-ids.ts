import type { Database } from "bun:sqlite";

/**
 * Which message a sender's client_id already names: the idempotency window. A unique index on
 * (conversation, sender, client_id) did this before, and cost about half of SQLite's work per
 * message: client_ids are random, so every insert dirtied a page of its own in that index. Here
 * each conversation keeps the client_ids of its newest `perConversation` messages in memory,
 * loaded from the conversation's newest rows the first time it is written after a start (the
 * primary key's range, newest first), so the window holds across restarts. A resend is a
 * duplicate while its original is in that window; retention's evicted_client_ids covers the
 * messages it removes (retention.ts).
 */

export interface ClientIdWindowOptions {
  /** Client_ids remembered per conversation (its newest messages). */
  perConversation?: number;
  /** Conversations kept loaded; the least recently written is dropped (and reloaded when needed). */
  conversations?: number;
}

const keyOf = (senderId: number, clientId: string) => `${senderId}\u0000${clientId}`;

export function createClientIdWindow(db: Database, opts: ClientIdWindowOptions = {}) {
  const perConversation = opts.perConversation ?? 256;
  const maxConversations = opts.conversations ?? 4096;
  const newest = db.query<{ id: string; sender_id: number; client_id: string }, [string, number]>(
    `SELECT id, sender_id, client_id FROM messages
     WHERE conversation_id = ? AND client_id IS NOT NULL ORDER BY id DESC LIMIT ?`,
  );
  /** Map order is recency: a touched conversation moves to the end. */
  const windows = new Map<string, Map<string, string>>();

  const windowOf = (conversationId: string): Map<string, string> => {
    let w = windows.get(conversationId);
    if (w) {
      windows.delete(conversationId);
      windows.set(conversationId, w);
      return w;
    }
    w = new Map();
    const rows = newest.all(conversationId, perConversation);
    for (let i = rows.length - 1; i >= 0; i--)
      w.set(keyOf(rows[i]!.sender_id, rows[i]!.client_id), rows[i]!.id);
    windows.set(conversationId, w);
    if (windows.size > maxConversations) windows.delete(windows.keys().next().value!);
    return w;
  };

  return {
    /** The id of the message this sender stored under `clientId`, if it is in the window. */
    find(conversationId: string, senderId: number, clientId: string): string | undefined {
      return windowOf(conversationId).get(keyOf(senderId, clientId));
    },

    /** A message was stored with this client_id (inside the transaction that stores it). */
    remember(conversationId: string, senderId: number, clientId: string, id: string): void {
      const w = windowOf(conversationId);
      w.set(keyOf(senderId, clientId), id);
      if (w.size > perConversation) w.delete(w.keys().next().value!);
    },

    /** Rows changed under the window (import, remap, a rolled-back commit): reload on next use. */
    forget(conversationId?: string): void {
      if (conversationId === undefined) windows.clear();
      else windows.delete(conversationId);
    },
  };
}

export type ClientIdWindow = ReturnType<typeof createClientIdWindow>;
