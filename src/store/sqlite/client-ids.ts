import type { Database } from "bun:sqlite";

/**
 * Which (sender, client_id) pairs each conversation holds, kept in memory so that storing a
 * message needs no unique index: that index was half of SQLite's work per message (a random
 * leaf page dirtied and written to the WAL for every row; docs/performance.md). The rows stay
 * the truth and idempotency stays exact, across restarts too: a conversation's pairs are read
 * from its rows on first use, a miss is certain (no row has the pair), and a hit — a resend, or
 * a rare 32-bit hash collision — is confirmed against the rows by the caller.
 *
 * A hit also says where to look: the second its message id was made in (ids are ObjectIds,
 * which start with it), so confirming reads that second's rows of the conversation, not all of
 * them, and a client resending an old client_id costs a seek, not a scan. Two pairs with one
 * hash and different seconds are marked ANYWHERE: confirming them reads the conversation.
 *
 * Bounded: past MAX_ENTRIES the least recently written conversations are dropped and read
 * again when next written to. The hash is seeded per process, so a client cannot choose
 * client_ids that collide.
 */

/** ~25 MB (a Map entry here is ~50 bytes); a conversation dropped costs one read of its rows. */
export const MAX_ENTRIES = 500_000;

/** The hint for a pair whose message may be anywhere in the conversation. */
export const ANYWHERE = -1;

/** The second an ObjectId was made in; ANYWHERE for an id of another shape. */
export function idSecond(id: string): number {
  return /^[0-9a-f]{8}/.test(id) ? Number.parseInt(id.slice(0, 8), 16) : ANYWHERE;
}

/** The smallest id made in `second` (ids compare as strings). */
export const secondFloor = (second: number): string => second.toString(16).padStart(8, "0");

export interface ClientIdFilter {
  /**
   * undefined: no row of the conversation has the pair. Otherwise the second the message id
   * of a row that may have it was made in, or ANYWHERE: look at the rows.
   */
  lookup(conversationId: string, senderId: number, clientId: string): number | undefined;
  /** Notes a row written with the pair (a no-op while the conversation is not loaded). */
  add(conversationId: string, senderId: number, clientId: string, id: string): void;
  /** Drops a conversation's pairs, to be read again from its rows (after an import, a remap). */
  forget(conversationId: string): void;
  /** Pairs held in memory. */
  readonly entries: number;
}

type Pairs = Map<number, number>;

const seededHash = () => {
  const seed = Math.floor(Math.random() * 0xffffffff);
  return (senderId: number, clientId: string) => Bun.hash.murmur32v3(`${senderId}\u0000${clientId}`, seed);
};

/** `hash` is for tests, to make pairs collide. */
export function createClientIdFilter(
  db: Database,
  maxEntries = MAX_ENTRIES,
  hash: (senderId: number, clientId: string) => number = seededHash(),
): ClientIdFilter {
  const scan = db.query<{ id: string; sender_id: number; client_id: string }, [string]>(
    "SELECT id, sender_id, client_id FROM messages WHERE conversation_id = ? AND client_id IS NOT NULL",
  );
  /** In least recently used order: a Map iterates in insertion order, and a use re-inserts. */
  const conversations = new Map<string, Pairs>();
  let entries = 0;

  const put = (pairs: Pairs, key: number, second: number) => {
    const had = pairs.get(key);
    if (had === undefined) entries++;
    pairs.set(key, had === undefined || had === second ? second : ANYWHERE);
  };

  /** Drops the least recently used conversations until the total fits; `keep` stays. */
  const trim = (keep: string) => {
    for (const [id, pairs] of conversations) {
      if (entries <= maxEntries) return;
      if (id === keep) continue;
      conversations.delete(id);
      entries -= pairs.size;
    }
  };

  const load = (conversationId: string): Pairs => {
    const pairs: Pairs = new Map();
    conversations.set(conversationId, pairs);
    for (const r of scan.iterate(conversationId)) put(pairs, hash(r.sender_id, r.client_id), idSecond(r.id));
    trim(conversationId);
    return pairs;
  };

  const use = (conversationId: string): Pairs => {
    const pairs = conversations.get(conversationId);
    if (!pairs) return load(conversationId);
    conversations.delete(conversationId);
    conversations.set(conversationId, pairs);
    return pairs;
  };

  return {
    lookup: (conversationId, senderId, clientId) => use(conversationId).get(hash(senderId, clientId)),

    add(conversationId, senderId, clientId, id) {
      const pairs = conversations.get(conversationId);
      if (!pairs) return;
      put(pairs, hash(senderId, clientId), idSecond(id));
      trim(conversationId);
    },

    forget(conversationId) {
      const pairs = conversations.get(conversationId);
      if (!pairs) return;
      conversations.delete(conversationId);
      entries -= pairs.size;
    },

    get entries() {
      return entries;
    },
  };
}
