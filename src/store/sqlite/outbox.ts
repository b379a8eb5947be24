import type { Database, Statement } from "bun:sqlite";
import type { OutboxEntry, OutboxKind, OutboxPayloads } from "../../model/outbox.ts";

/**
 * The outbox table: durable work committed in the same transaction as the change it follows.
 * A row's payload is `{"kind", ...payload}` (model/outbox.ts gives each kind's shape), read
 * back in seq order by the one handler of its kinds and deleted once its sink confirmed it.
 */
export function createOutbox(db: Database, enabled: boolean) {
  const insert = db.query<null, [string, string, number]>(
    "INSERT INTO outbox (kind, payload, created_at) VALUES (?, ?, ?)",
  );
  // One statement per handler's set of kinds, the kinds written into the SQL: then the query
  // planner sees `kind IN ('attachment_copy', 'attachment_delete')` and uses the partial index
  // (schema.ts); the MongoDB handler's kinds are most rows, so its scan in seq order stops at LIMIT.
  // Kinds are names from model/outbox.ts, never input.
  type Row = { seq: number; payload: string; created_at: number };
  const batches = new Map<string, Statement<Row, [number]>>();
  const batchOf = (kinds: readonly string[]) => {
    const key = [...kinds].sort().join(",");
    let q = batches.get(key);
    if (!q) {
      if (!kinds.every((k) => /^[a-z_]+$/.test(k))) throw new Error(`bad outbox kind in ${key}`);
      q = db.query<Row, [number]>(
        `SELECT seq, payload, created_at FROM outbox WHERE kind IN (${kinds.map((k) => `'${k}'`).join(", ")})
         ORDER BY seq LIMIT ?`,
      );
      batches.set(key, q);
    }
    return q;
  };
  const remove = db.query<null, [string]>("DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))");
  const stats = db.query<{ n: number; oldest: number | null }, []>(
    "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox",
  );
  return {
    /** Off when nothing would ever read the rows (no MongoDB configured). */
    enabled,

    enqueue<K extends OutboxKind>(kind: K, payload: OutboxPayloads[K], at: number): void {
      if (enabled) insert.run(kind, JSON.stringify({ kind, ...payload }), at);
    },

    /** The oldest `limit` entries of these kinds, in the order they were written. */
    outboxBatch<K extends OutboxKind>(kinds: readonly K[], limit: number): OutboxEntry<K>[] {
      return batchOf(kinds)
        .all(limit)
        .map((r) => {
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
