import type { Database } from "bun:sqlite";
import type { OutboxEntry, OutboxKind, OutboxPayloads } from "../../model/outbox.ts";

/**
 * The outbox table: durable work committed in the same transaction as the change it follows.
 * A row's payload is `{"kind", ...payload}` (model/outbox.ts gives each kind's shape), read
 * back in seq order by the one handler of its kinds and deleted once its sink confirmed it.
 */
export function createOutbox(db: Database, enabled: boolean) {
  const insert = db.query<null, [string, number]>("INSERT INTO outbox (payload, created_at) VALUES (?, ?)");
  // Every kind there is today belongs to one handler, so the filter never skips a row and the
  // scan stops at LIMIT; a kind column is the day a second handler makes that matter.
  const batch = db.query<{ seq: number; payload: string; created_at: number }, [string, number]>(
    `SELECT seq, payload, created_at FROM outbox
     WHERE json_extract(payload, '$.kind') IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?`,
  );
  const remove = db.query<null, [string]>("DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))");
  const stats = db.query<{ n: number; oldest: number | null }, []>(
    "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox",
  );
  return {
    /** Off when nothing would ever read the rows (no MongoDB configured). */
    enabled,

    enqueue<K extends OutboxKind>(kind: K, payload: OutboxPayloads[K], at: number): void {
      if (enabled) insert.run(JSON.stringify({ kind, ...payload }), at);
    },

    /** The oldest `limit` entries of these kinds, in the order they were written. */
    outboxBatch<K extends OutboxKind>(kinds: readonly K[], limit: number): OutboxEntry<K>[] {
      return batch.all(JSON.stringify(kinds), limit).map((r) => {
        const { kind, ...payload } = JSON.parse(r.payload) as { kind: K };
        return { seq: r.seq, kind, payload, createdAt: r.created_at } as OutboxEntry<K>;
      });
    },

    /** Forget entries their sink confirmed. */
    outboxConfirm(entries: readonly { seq: number }[]): void {
      if (entries.length > 0) remove.run(JSON.stringify(entries.map((e) => e.seq)));
    },

    outboxStats(): { backlog: number; oldestAt: number | null } {
      const s = stats.get()!;
      return { backlog: s.n, oldestAt: s.oldest };
    },
  };
}

export type Outbox = ReturnType<typeof createOutbox>;
