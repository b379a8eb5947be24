import type { Database } from "bun:sqlite";
import type { LatestPages } from "./latest-pages.ts";
import type { MessageLog } from "./message-log.ts";

/**
 * Eviction of messages MongoDB already holds, so the local file stays bounded. What a removed
 * message leaves behind is compact: per (conversation, sender) the newest id evicted and how
 * many of the evicted were unread (so `unread_count` stays exact), and for a while its
 * client_id (so a late resend is acked as a duplicate, not stored twice).
 *
 * Never evicted: a message still in the outbox (not confirmed by MongoDB), and the newest
 * message of each conversation (`last_message` is read from SQLite).
 */

interface EvictedRow {
  id: string;
  sender_id: number;
  client_id: string | null;
  created_at: number;
  viewed_by: number | null;
}

/** Rows deleted per statement: one transaction stays short, so the event loop keeps turning. */
const CHUNK = 2000;

function retentionStatements(db: Database) {
  return {
    // The lowest id still waiting for MongoDB; every message below it is confirmed (or was
    // imported from MongoDB, or relayed by the instance that flushes it). A min, not the first
    // row: relayed copies may wait in the outbox with a delay, out of id order.
    firstPending: db.query<{ id: string | null }, []>(
      "SELECT min(json_extract(payload, '$.message.id')) AS id FROM outbox WHERE kind = 'message'",
    ),
    conversations: db.query<{ id: string; newest: string | null }, []>(
      "SELECT c.id, (SELECT max(m.id) FROM messages m WHERE m.conversation_id = c.id) AS newest FROM conversations c",
    ),
    oldest: db.query<{ id: string | null }, []>(
      "SELECT min((SELECT min(m.id) FROM messages m WHERE m.conversation_id = c.id)) AS id FROM conversations c",
    ),
    evict: db.query<EvictedRow, [string, string, number]>(
      `DELETE FROM messages WHERE conversation_id = ?1 AND id IN
         (SELECT id FROM messages WHERE conversation_id = ?1 AND id < ?2 ORDER BY id LIMIT ?3)
       RETURNING id, sender_id, client_id, created_at, viewed_by`,
    ),
    floor: db.query<{ floor_id: string }, [string, number]>(
      "SELECT floor_id FROM evicted_summary WHERE conversation_id = ? AND sender_id = ?",
    ),
    summarise: db.query<null, [string, number, string, number]>(
      `INSERT INTO evicted_summary (conversation_id, sender_id, floor_id, unread) VALUES (?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET floor_id = max(floor_id, excluded.floor_id), unread = unread + excluded.unread`,
    ),
    keepClientId: db.query<null, [string, number, string, string, number, number]>(
      `INSERT OR REPLACE INTO evicted_client_ids (conversation_id, sender_id, client_id, id, created_at, evicted_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    pruneClientIds: db.query<null, [number, number]>(
      `DELETE FROM evicted_client_ids WHERE (conversation_id, sender_id, client_id) IN
         (SELECT conversation_id, sender_id, client_id FROM evicted_client_ids
          WHERE evicted_at < ? ORDER BY evicted_at LIMIT ?)`,
    ),
    clientIdCount: db.query<{ n: number }, []>("SELECT count(*) AS n FROM evicted_client_ids"),
    size: db.query<{ page_count: number }, []>("PRAGMA page_count"),
    pageSize: db.query<{ page_size: number }, []>("PRAGMA page_size"),
    autoVacuum: db.query<{ auto_vacuum: number }, []>("PRAGMA auto_vacuum"),
  };
}

export function createRetentionStore(db: Database, pages: LatestPages, log: MessageLog) {
  const q = retentionStatements(db);
  const pageSize = q.pageSize.get()?.page_size ?? 4096;
  // Lets the message insert skip the lookup of evicted client_ids while there are none.
  let clientIdsKept = (q.clientIdCount.get()?.n ?? 0) > 0;

  /** One chunk of one conversation: delete, then record what the rows leave behind. */
  const evictChunk = (conversationId: string, below: string, at: number): number => {
    const rows = q.evict.all(conversationId, below, CHUNK);
    const bySender = new Map<number, { floor: string; unread: number; known: string }>();
    for (const r of rows) {
      let s = bySender.get(r.sender_id);
      if (!s) {
        s = { floor: "", unread: 0, known: q.floor.get(conversationId, r.sender_id)?.floor_id ?? "" };
        bySender.set(r.sender_id, s);
      }
      if (r.id > s.floor) s.floor = r.id;
      // A row at or below the known floor came back through the read-through and was counted.
      if (r.viewed_by === null && r.id > s.known) s.unread++;
      if (r.client_id !== null) {
        q.keepClientId.run(conversationId, r.sender_id, r.client_id, r.id, r.created_at, at);
        clientIdsKept = true;
      }
    }
    for (const [sender, s] of bySender) q.summarise.run(conversationId, sender, s.floor, s.unread);
    return rows.length;
  };

  return {
    /** The id below which every message of ours is confirmed; null when nothing is pending. */
    confirmedBelow(): string | null {
      return q.firstPending.get()?.id ?? null;
    },

    oldestMessageId(): string | null {
      log.settleAll();
      return q.oldest.get()?.id ?? null;
    },

    /**
     * Removes messages with ids below `below` (already capped by the caller at the confirmed
     * watermark), keeping each conversation's newest. Yields between chunks; returns rows removed.
     */
    async evictBelow(below: string, at: number, yieldNow: () => Promise<void>): Promise<number> {
      let removed = 0;
      log.settleAll();
      for (const c of q.conversations.all()) {
        if (c.newest === null) continue;
        const bound = c.newest < below ? c.newest : below;
        for (;;) {
          const n = db.transaction(() => evictChunk(c.id, bound, at))();
          if (n > 0) pages.forget(c.id);
          removed += n;
          if (n < CHUNK) break;
          await yieldNow();
        }
      }
      return removed;
    },

    /** Forgets client_ids of messages evicted before `before` (all of them with Infinity). */
    pruneEvictedClientIds(before: number, limit = 100_000): number {
      const n = q.pruneClientIds.run(before, limit).changes;
      if (n > 0) clientIdsKept = (q.clientIdCount.get()?.n ?? 0) > 0;
      return n;
    },

    /** Whether any evicted client_id is remembered (the insert path asks on every message). */
    anyEvictedClientIds: (): boolean => clientIdsKept,

    /** The database's size in bytes (its pages; the file matches after `compact`). */
    databaseBytes(): number {
      return (q.size.get()?.page_count ?? 0) * pageSize;
    },

    /**
     * Gives free pages back to the file system and truncates the WAL. A file made before
     * incremental auto-vacuum is converted once, by a full VACUUM (which needs free space).
     */
    compact(): void {
      if (q.autoVacuum.get()?.auto_vacuum !== 2) {
        db.run("PRAGMA auto_vacuum = INCREMENTAL");
        db.run("VACUUM");
      }
      db.run("PRAGMA incremental_vacuum");
      db.run("PRAGMA wal_checkpoint(TRUNCATE)");
    },

    /**
     * Keeps the WAL small while the disk is short: copy back and cut the file to zero. It runs on
     * the event loop, so it does not wait for readers; one that blocks it makes SQLite skip the
     * cut without an error, and this throws then, so the caller tries again later rather than
     * believing the space is back.
     */
    checkpoint(): void {
      const timeout = (db.query("PRAGMA busy_timeout").get() as { timeout: number }).timeout;
      db.run("PRAGMA busy_timeout = 0");
      try {
        const r = db.query("PRAGMA wal_checkpoint(TRUNCATE)").get() as { busy: number };
        if (r.busy) throw new Error("a reader blocked the WAL checkpoint; the WAL was not truncated");
      } finally {
        db.run(`PRAGMA busy_timeout = ${timeout}`);
      }
    },
  };
}

export type RetentionStore = ReturnType<typeof createRetentionStore>;
