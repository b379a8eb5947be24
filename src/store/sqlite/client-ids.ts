import type { Database } from "bun:sqlite";

/**
 * Which (sender, client_id) pairs a conversation's stored messages may hold, in memory, so the
 * message table needs no unique index on them. That index put every insert on a random leaf of
 * a second B-tree (client_ids are random) and was half of SQLite's cost per message; see
 * docs/performance-log.md, "The client_id check without an index".
 *
 * Per conversation: an open-addressed set of 32-bit fingerprints of (sender, client_id), read
 * from the conversation's rows on its first use. A pair not in the set was never stored, for
 * certain: every insert adds its pair (an insert that rolls back leaves a pair behind, which only
 * costs a lookup). A pair in the set is confirmed by a scan of the conversation's rows, newest
 * first (a resend is of a recent message, so it is found near the top; a fingerprint shared by
 * chance, about n / 2^32 for n pairs, scans the whole conversation).
 *
 * Memory is ~4–11 bytes a pair, and each conversation's set counts ~384 bytes more (its object,
 * array and map entry: 100,000 one-pair sets took 285 bytes of heap each, 444–642 of RSS). Past
 * `budgetBytes` the least recently used conversations' sets are dropped, and read again on their
 * next use; the budget is large enough that this is a cold conversation's cost, not a busy one's.
 */

export interface ClientIdIndexOptions {
  /** The sets' total size before the least recently used are dropped. */
  budgetBytes?: number;
  /** Before a conversation's rows are read: messages waiting in the log move first (message-log.ts). */
  beforeLoad?: (conversationId: string) => void;
}

const DEFAULT_BUDGET = 64 * 1024 * 1024;
const FIRST_CAPACITY = 16;
const SET_OVERHEAD = 384;

const fingerprint = (senderId: number, clientId: string): number =>
  Bun.hash.murmur32v3(clientId, senderId >>> 0) || 1;

/** Fingerprints with linear probing; 0 marks an empty slot. Grows at three quarters full. */
class FingerprintSet {
  slots = new Uint32Array(FIRST_CAPACITY);
  size = 0;
  lastUse = 0;

  has(f: number): boolean {
    const mask = this.slots.length - 1;
    for (let i = f & mask; ; i = (i + 1) & mask) {
      const s = this.slots[i]!;
      if (s === f) return true;
      if (s === 0) return false;
    }
  }

  /** Adds `f`; returns the bytes the set grew by. */
  add(f: number): number {
    if ((this.size + 1) * 4 > this.slots.length * 3) {
      const old = this.slots;
      this.slots = new Uint32Array(old.length * 2);
      this.size = 0;
      for (const s of old) if (s !== 0) this.place(s);
      this.place(f);
      return this.slots.byteLength - old.byteLength;
    }
    this.place(f);
    return 0;
  }

  private place(f: number): void {
    const mask = this.slots.length - 1;
    for (let i = f & mask; ; i = (i + 1) & mask) {
      const s = this.slots[i]!;
      if (s === f) return;
      if (s === 0) {
        this.slots[i] = f;
        this.size++;
        return;
      }
    }
  }
}

export function createClientIdIndex(db: Database, opts: ClientIdIndexOptions = {}) {
  const budget = opts.budgetBytes ?? DEFAULT_BUDGET;
  const pairs = db.query<{ sender_id: number; client_id: string }, [string]>(
    "SELECT sender_id, client_id FROM messages WHERE conversation_id = ? AND client_id IS NOT NULL",
  );
  const sets = new Map<string, FingerprintSet>();
  let bytes = 0;
  let clock = 0;
  let loads = 0;

  /** Drops the least recently used sets until three quarters of the budget is left. */
  const shrink = (keep: string): void => {
    const order = [...sets].filter(([id]) => id !== keep).sort((a, b) => a[1].lastUse - b[1].lastUse);
    for (const [id, set] of order) {
      if (bytes <= (budget * 3) / 4) break;
      sets.delete(id);
      bytes -= set.slots.byteLength + SET_OVERHEAD;
    }
  };

  const setOf = (conversationId: string): FingerprintSet => {
    let set = sets.get(conversationId);
    if (!set) {
      opts.beforeLoad?.(conversationId);
      set = new FingerprintSet();
      bytes += set.slots.byteLength + SET_OVERHEAD;
      for (const r of pairs.iterate(conversationId)) bytes += set.add(fingerprint(r.sender_id, r.client_id));
      sets.set(conversationId, set);
      loads++;
      if (bytes > budget) shrink(conversationId);
    }
    set.lastUse = ++clock;
    return set;
  };

  const grew = (conversationId: string, n: number): void => {
    bytes += n;
    if (bytes > budget) shrink(conversationId);
  };

  return {
    /** False: no stored message of this conversation has the pair, for certain. */
    mayHave(conversationId: string, senderId: number, clientId: string): boolean {
      return setOf(conversationId).has(fingerprint(senderId, clientId));
    },

    /** Records a stored pair (before or after its insert, inside the same transaction). */
    add(conversationId: string, senderId: number, clientId: string): void {
      grew(conversationId, setOf(conversationId).add(fingerprint(senderId, clientId)));
    },

    /** Records a pair if the conversation's set is loaded (a set read later finds its row). */
    note(conversationId: string, senderId: number, clientId: string): void {
      const set = sets.get(conversationId);
      if (set) grew(conversationId, set.add(fingerprint(senderId, clientId)));
    },

    /** The conversation's rows changed under it (a remap): read them again on next use. */
    forget(conversationId: string): void {
      const set = sets.get(conversationId);
      if (!set) return;
      sets.delete(conversationId);
      bytes -= set.slots.byteLength + SET_OVERHEAD;
    },

    stats(): { conversations: number; bytes: number; loads: number } {
      return { conversations: sets.size, bytes, loads };
    },
  };
}

export type ClientIdIndex = ReturnType<typeof createClientIdIndex>;
