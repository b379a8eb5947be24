import type { Database } from "bun:sqlite";

/**
 * Which (sender, client_id) pairs each conversation holds, kept in memory so that storing a
 * message needs no unique index: that index was half of SQLite's work per message (a random
 * leaf page dirtied and written to the WAL for every row; docs/performance.md). The rows stay
 * the truth and idempotency stays exact, across restarts too: a conversation's set is read from
 * its rows on first use, a miss is certain (no row has the pair), and a hit (a resend, or a
 * rare 32-bit hash collision) is confirmed against the rows by the caller.
 *
 * Bounded: past MAX_ENTRIES the least recently used conversations are dropped and read again
 * when next written to. The hash is seeded per process, so a client cannot choose client_ids
 * that collide to make every message of its conversation pay for a scan.
 */

/** ~30 MB of sets at most; a conversation dropped costs one scan of its rows when it is back. */
export const MAX_ENTRIES = 1_000_000;

export interface ClientIdFilter {
  /** False: no row of the conversation has the pair. True: look at the rows. */
  mayHave(conversationId: string, senderId: number, clientId: string): boolean;
  /** Notes a row written with the pair (a no-op while the conversation's set is not loaded). */
  add(conversationId: string, senderId: number, clientId: string): void;
  /** Drops a conversation's set, to be read again from its rows (after an import, a remap). */
  forget(conversationId: string): void;
  /** Pairs held in memory (for tests and metrics). */
  readonly entries: number;
}

export function createClientIdFilter(db: Database, maxEntries = MAX_ENTRIES): ClientIdFilter {
  const scan = db.query<{ sender_id: number; client_id: string }, [string]>(
    "SELECT sender_id, client_id FROM messages WHERE conversation_id = ? AND client_id IS NOT NULL",
  );
  const seed = Math.floor(Math.random() * 0xffffffff);
  const hash = (senderId: number, clientId: string) =>
    Bun.hash.murmur32v3(`${senderId}\u0000${clientId}`, seed);
  /** In least recently used order: a Map iterates in insertion order, and a use re-inserts. */
  const sets = new Map<string, Set<number>>();
  let entries = 0;

  /** Drops the least recently used sets until the total fits; `keep` (in use now) stays. */
  const trim = (keep: string) => {
    for (const [id, old] of sets) {
      if (entries <= maxEntries) return;
      if (id === keep) continue;
      sets.delete(id);
      entries -= old.size;
    }
  };

  const load = (conversationId: string): Set<number> => {
    const set = new Set<number>();
    for (const r of scan.iterate(conversationId)) set.add(hash(r.sender_id, r.client_id));
    sets.set(conversationId, set);
    entries += set.size;
    trim(conversationId);
    return set;
  };

  const use = (conversationId: string): Set<number> => {
    const set = sets.get(conversationId);
    if (!set) return load(conversationId);
    sets.delete(conversationId);
    sets.set(conversationId, set);
    return set;
  };

  return {
    mayHave: (conversationId, senderId, clientId) => use(conversationId).has(hash(senderId, clientId)),

    add(conversationId, senderId, clientId) {
      const set = sets.get(conversationId);
      if (!set) return;
      const before = set.size;
      set.add(hash(senderId, clientId));
      entries += set.size - before;
      trim(conversationId);
    },

    forget(conversationId) {
      const set = sets.get(conversationId);
      if (!set) return;
      sets.delete(conversationId);
      entries -= set.size;
    },

    get entries() {
      return entries;
    },
  };
}
