import type { Database } from "bun:sqlite";

/**
 * Which message a sender's client_id already names: the idempotency window. A unique index on
 * (conversation, sender, client_id) did this before, and cost about half of SQLite's work per
 * message: client_ids are random, so every insert dirtied a page of its own in that index. Here
 * each conversation keeps the client_ids of its newest `perConversation` messages in memory,
 * loaded from the conversation's newest rows the first time it is written after a start (the
 * primary key's range, newest first), so the window holds across restarts. A resend is a
 * duplicate while its original is among the newest `perConversation` (1,024) messages of its
 * conversation; retention's evicted_client_ids covers the messages it removes (retention.ts).
 * Memory is bounded by `total` client_ids over all conversations.
 */

export interface ClientIdWindowOptions {
  /** Client_ids remembered per conversation (its newest messages). */
  perConversation?: number;
  /**
   * Client_ids remembered in all (about 150 bytes each): past it, the least recently written
   * conversations are dropped, and reloaded from their rows when next written.
   */
  total?: number;
}

const keyOf = (senderId: number, clientId: string) => `${senderId}\u0000${clientId}`;

export function createClientIdWindow(db: Database, opts: ClientIdWindowOptions = {}) {
  const perConversation = opts.perConversation ?? 1024;
  const maxTotal = opts.total ?? 262_144;
  const newest = db.query<{ id: string; sender_id: number; client_id: string }, [string, number]>(
    `SELECT id, sender_id, client_id FROM messages
     WHERE conversation_id = ? AND client_id IS NOT NULL ORDER BY id DESC LIMIT ?`,
  );
  /** Map order is recency: a touched conversation moves to the end. */
  const windows = new Map<string, Map<string, string>>();
  let total = 0;

  /** Drops the least recently written conversations (never `keep`) until under the total. */
  const shrink = (keep: string) => {
    for (const [id, w] of windows) {
      if (total <= maxTotal) return;
      if (id === keep) continue;
      windows.delete(id);
      total -= w.size;
    }
  };

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
    total += w.size;
    shrink(conversationId);
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
      const before = w.size;
      w.set(keyOf(senderId, clientId), id);
      if (w.size > perConversation) w.delete(w.keys().next().value!);
      total += w.size - before;
      if (total > maxTotal) shrink(conversationId);
    },

    /** How many client_ids are held now. */
    get size(): number {
      return total;
    },

    /** Rows changed under the window (import, remap): reloaded on next use. */
    forget(conversationId?: string): void {
      if (conversationId === undefined) {
        windows.clear();
        total = 0;
        return;
      }
      total -= windows.get(conversationId)?.size ?? 0;
      windows.delete(conversationId);
    },
  };
}

export type ClientIdWindow = ReturnType<typeof createClientIdWindow>;
