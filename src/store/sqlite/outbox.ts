import type { Database } from "bun:sqlite";
import type { OutboxEntry, OutboxKind, OutboxPayloads } from "../../model/outbox.ts";

/**
 * The outbox table: durable work committed in the same transaction as the change it follows.
 * A row names its kind in a column (indexed with seq, so each handler reads only its own kinds
 * in the order they were written) and holds the payload model/outbox.ts gives that kind.
 * Optional per row: `dueAt`, before which no handler sees it (a delayed notification, a copy
 * flushed only if its origin stays silent), and `key`, under which a later change can cancel
 * it while it waits. Rows are deleted once their sink confirmed them.
 */

export interface EnqueueOptions {
  /** Not handed to a handler before this time (epoch ms); default: at once. */
  dueAt?: number;
  /** A name under which `cancel` can withdraw the entry while it waits. */
  key?: string;
}

/**
 * `kinds`: the kinds some handler will read. An entry of any other kind is not written at all,
 * so a deployment without MongoDB (or without a notifier) keeps no rows nobody would drain.
 */
export function createOutbox(db: Database, kinds: ReadonlySet<OutboxKind>) {
  const insert = db.query<null, [string, string, number, number, string | null]>(
    "INSERT INTO outbox (kind, payload, created_at, due_at, key) VALUES (?, ?, ?, ?, ?)",
  );
  const batch = db.query<
    { seq: number; kind: string; payload: string; created_at: number },
    [string, number, number]
  >(
    `SELECT seq, kind, payload, created_at FROM outbox
     WHERE kind IN (SELECT value FROM json_each(?)) AND due_at <= ? ORDER BY seq LIMIT ?`,
  );
  const remove = db.query<null, [string]>("DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))");
  const cancelByKey = db.query<null, [string, string]>("DELETE FROM outbox WHERE kind = ? AND key = ?");
  const cancelByKeys = db.query<null, [string, string]>(
    "DELETE FROM outbox WHERE kind = ? AND key IN (SELECT value FROM json_each(?))",
  );
  const nextDue = db.query<{ due: number | null }, [string, number]>(
    "SELECT min(due_at) AS due FROM outbox WHERE kind = ? AND due_at > ?",
  );
  // Scans the MongoDB kinds' rows only: paid by a delete, and short unless MongoDB has been down.
  const scrub = db.query<null, [string]>(
    `UPDATE outbox SET payload = json_set(payload, '$.message.text', '')
     WHERE kind IN ('message', 'edit', 'delete') AND json_extract(payload, '$.message.id') = ?
       AND json_extract(payload, '$.message.text') <> ''`,
  );
  const stats = db.query<{ n: number; oldest: number | null }, [string]>(
    "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE kind IN (SELECT value FROM json_each(?))",
  );
  const allKinds = JSON.stringify([...kinds]);

  return {
    /** True when some handler reads this kind (the store writes nothing otherwise). */
    wants(kind: OutboxKind): boolean {
      return kinds.has(kind);
    },

    enqueue<K extends OutboxKind>(
      kind: K,
      payload: OutboxPayloads[K],
      at: number,
      opts: EnqueueOptions = {},
    ): void {
      if (kinds.has(kind)) insert.run(kind, JSON.stringify(payload), at, opts.dueAt ?? at, opts.key ?? null);
    },

    /** When the next entry of `kind` not yet due at `now` falls due; null when there is none. */
    nextDue(kind: OutboxKind, now: number): number | null {
      return nextDue.get(kind, now)?.due ?? null;
    },

    /** Withdraws waiting entries of `kind` filed under `key` (e.g. a notification made moot by a read). */
    cancel(kind: OutboxKind, key: string): void {
      cancelByKey.run(kind, key);
    },

    /** `cancel` for many keys in one statement (a peer's flush confirmations come in batches). */
    cancelMany(kind: OutboxKind, keys: readonly string[]): void {
      if (keys.length > 0) cancelByKeys.run(kind, JSON.stringify(keys));
    },

    /** The oldest `limit` entries of these kinds that are due at `now`, in the order they were written. */
    outboxBatch<K extends OutboxKind>(
      handlerKinds: readonly K[],
      limit: number,
      now = Date.now(),
    ): OutboxEntry<K>[] {
      return batch.all(JSON.stringify(handlerKinds), now, limit).map((r) => {
        // Rows written before schema v2 carry their kind inside the payload too.
        const { kind: _, ...payload } = JSON.parse(r.payload) as { kind?: string };
        return { seq: r.seq, kind: r.kind, payload, createdAt: r.created_at } as OutboxEntry<K>;
      });
    },

    /** Forget entries their sink confirmed. */
    outboxConfirm(entries: readonly { seq: number }[]): void {
      if (entries.length > 0) remove.run(JSON.stringify(entries.map((e) => e.seq)));
    },

    /** A deleted message's text leaves the queued entries too (they would carry it to MongoDB). */
    scrubText(messageId: string): void {
      scrub.run(messageId);
    },

    /** Backlog of these kinds (all kinds some handler reads, by default). */
    outboxStats(of?: readonly OutboxKind[]): { backlog: number; oldestAt: number | null } {
      const s = stats.get(of ? JSON.stringify(of) : allKinds)!;
      return { backlog: s.n, oldestAt: s.oldest };
    },
  };
}

export type Outbox = ReturnType<typeof createOutbox>;
