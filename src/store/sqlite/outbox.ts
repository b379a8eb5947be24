import type { Database } from "bun:sqlite";
import type { OutboxEntry, OutboxKind, OutboxPayloads } from "../../model/outbox.ts";

/**
 * The outbox table: durable work committed in the same transaction as the change it follows.
 * A row's payload is `{"kind", ...payload}` (model/outbox.ts gives each kind's shape), read
 * back in seq order by the one handler of its kinds and deleted once its sink confirmed it.
 */
export function createOutbox(db: Database, enabledKinds: readonly OutboxKind[]) {
  const enabled = new Set<OutboxKind>(enabledKinds);
  const insert = db.query<null, [string, number, string]>(
    "INSERT INTO outbox (payload, created_at, kind) VALUES (?, ?, ?)",
  );
  // One kind: a seek on (kind, seq). Several kinds (MongoDB's three, which share one order):
  // a scan in seq order that stops at LIMIT; the unary + keeps the planner off the kind index,
  // whose three ranges would have to be merged and sorted in full before the LIMIT.
  const batchOne = db.query<{ seq: number; payload: string; created_at: number }, [string, number]>(
    "SELECT seq, payload, created_at FROM outbox WHERE kind = ? ORDER BY seq LIMIT ?",
  );
  const batchMany = db.query<{ seq: number; payload: string; created_at: number }, [string, number]>(
    `SELECT seq, payload, created_at FROM outbox
     WHERE +kind IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?`,
  );
  const remove = db.query<null, [string]>("DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))");
  const statsAll = db.query<{ n: number; oldest: number | null }, []>(
    "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox",
  );
  const statsOf = db.query<{ n: number; oldest: number | null }, [string]>(
    "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE kind IN (SELECT value FROM json_each(?))",
  );
  return {
    /** Kinds written at all: a kind no handler would read (no MongoDB, no notification sink) is not. */
    enabled,

    enqueue<K extends OutboxKind>(kind: K, payload: OutboxPayloads[K], at: number): void {
      if (enabled.has(kind)) insert.run(JSON.stringify({ kind, ...payload }), at, kind);
    },

    /** The oldest `limit` entries of these kinds, in the order they were written. */
    outboxBatch<K extends OutboxKind>(kinds: readonly K[], limit: number): OutboxEntry<K>[] {
      const rows =
        kinds.length === 1 ? batchOne.all(kinds[0]!, limit) : batchMany.all(JSON.stringify(kinds), limit);
      return rows.map((r) => {
        const { kind, ...payload } = JSON.parse(r.payload) as { kind: K };
        return { seq: r.seq, kind, payload, createdAt: r.created_at } as OutboxEntry<K>;
      });
    },

    /** Forget entries their sink confirmed. */
    outboxConfirm(entries: readonly { seq: number }[]): void {
      if (entries.length > 0) remove.run(JSON.stringify(entries.map((e) => e.seq)));
    },

    /** Entries of these kinds waiting (every kind when not given), and when the oldest was written. */
    outboxStats(kinds?: readonly OutboxKind[]): { backlog: number; oldestAt: number | null } {
      const s = (kinds ? statsOf.get(JSON.stringify(kinds)) : statsAll.get())!;
      return { backlog: s.n, oldestAt: s.oldest };
    },
  };
}

export type Outbox = ReturnType<typeof createOutbox>;
