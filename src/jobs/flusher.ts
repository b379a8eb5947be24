import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { MongoStore } from "../store/mongo.ts";
import type { ChatStore, OutboxRow, StoredMessage } from "../store/sqlite.ts";

/**
 * Copies the SQLite outbox to MongoDB: rows in seq order, consecutive messages as one unordered
 * insert, stop at the first failure, and forget a row only after MongoDB confirmed it. A row sent
 * twice (answer lost, crash before the local confirm) is harmless: every write is keyed by an id
 * made locally, so a replay is a duplicate-key answer, which counts as done.
 *
 * Stopping at the first failure is what keeps the order right: a read mark is never applied
 * before the messages it covers, and no message is sent before its conversation.
 */

export interface FlusherOptions {
  store: ChatStore;
  mongo: MongoStore;
  logger: Logger;
  metrics: Metrics;
  batchSize: number;
  /** Idle wait when the outbox is empty; notify() cuts it short. */
  pollMs: number;
  /** Ceiling of the exponential backoff while MongoDB fails. */
  retryMaxMs: number;
  retryBaseMs?: number;
  /** Told when MongoDB already knew a conversation under another id and the local one moved. */
  onRemap?: (oldId: string, newId: string) => void;
  now?: () => number;
  random?: () => number;
}

export interface FlusherStatus {
  ok: boolean;
  indexes: boolean;
  flushed_messages: number;
  flush_errors: number;
  last_flush_at: string | null;
  last_error?: string;
}

export type Flusher = ReturnType<typeof createFlusher>;

/** Equal jitter: never less than half the step (no busy loop), never in lockstep with a peer. */
export function backoffMs(failures: number, baseMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return step / 2 + random() * (step / 2);
}

export function createFlusher(opts: FlusherOptions) {
  const { store, mongo, logger } = opts;
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const baseMs = opts.retryBaseMs ?? 100;
  const registry = opts.metrics.registry;
  const flushed = registry.counter("chat_outbox_flushed_total", "Outbox rows confirmed by MongoDB, by kind");
  const errors = registry.counter("chat_outbox_flush_errors_total", "Failed flush attempts to MongoDB");
  let lastFlushAt: number | null = null;
  let lastError: string | undefined;
  registry.gauge("chat_mongo_connected", "MongoDB answered at last contact (1) or not (0)", () =>
    mongo.connected ? 1 : 0,
  );
  registry.gauge(
    "chat_outbox_last_flush_timestamp_seconds",
    "When MongoDB last confirmed outbox rows (0: never since start)",
    () => (lastFlushAt === null ? 0 : lastFlushAt / 1000),
  );

  const aliases = store.conversationAliases();
  let stopping = false;
  let deadline = Number.POSITIVE_INFINITY;
  let failures = 0;
  let wake: (() => void) | null = null;
  let loop: Promise<void> | null = null;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (wake === done) wake = null;
        resolve();
      }
      wake = done;
    });

  const confirm = (seq: number, kind: string, n: number) => {
    store.outboxConfirm(seq);
    flushed.inc({ kind }, n);
    lastFlushAt = now();
  };

  const conversationOf = (id: string) => aliases.get(id) ?? id;

  /** Moves a conversation made here onto MongoDB's id for the same parties. */
  const adopt = (oldId: string, newId: string) => {
    store.remapConversation(oldId, newId);
    aliases.set(oldId, newId);
    logger.warn("adopted MongoDB's conversation id", { old_id: oldId, new_id: newId });
    opts.onRemap?.(oldId, newId);
  };

  /** A message written under an id that was remapped after it was queued: move it too. */
  const translate = (m: StoredMessage): StoredMessage => {
    const to = aliases.get(m.conversationId);
    if (to === undefined) return m;
    store.remapConversation(m.conversationId, to);
    return { ...m, conversationId: to };
  };

  /** One batch from the outbox. Returns how many rows MongoDB confirmed; throws on the first failure. */
  async function flushOnce(): Promise<number> {
    const rows = store.outboxBatch(0, opts.batchSize);
    let done = 0;
    let i = 0;
    while (i < rows.length) {
      const row = rows[i]!;
      const event = row.event;
      if (event.kind === "message") {
        const run: OutboxRow[] = [];
        while (i < rows.length && rows[i]!.event.kind === "message") run.push(rows[i++]!);
        const batch = run.map((r) => translate((r.event as { message: StoredMessage }).message));
        await mongo.putMessages(batch);
        confirm(run[run.length - 1]!.seq, "message", run.length);
        done += run.length;
        continue;
      }
      if (event.kind === "conversation") {
        const local = { ...event.conversation, id: conversationOf(event.conversation.id) };
        const kept = await mongo.putConversation(local);
        if (kept !== local.id) adopt(local.id, kept);
        confirm(row.seq, "conversation", 1);
      } else {
        await mongo.markViewed({ ...event, conversationId: conversationOf(event.conversationId) });
        confirm(row.seq, "viewed", 1);
      }
      done++;
      i++;
    }
    return done;
  }

  async function run(): Promise<void> {
    while (!(stopping && now() >= deadline)) {
      let n = 0;
      try {
        await mongo.ensureIndexes();
        n = await flushOnce();
        if (failures > 0) {
          logger.info("MongoDB flush resumed", {
            after_failures: failures,
            backlog: store.outboxStats().backlog,
          });
        }
        failures = 0;
        lastError = undefined;
      } catch (err) {
        failures++;
        errors.inc();
        lastError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        // The first failure and then every 20th: an outage must not flood the log.
        if (failures === 1 || failures % 20 === 0) {
          logger.warn("MongoDB flush failed; backlog stays in SQLite", {
            failures,
            error: lastError,
            backlog: store.outboxStats().backlog,
          });
        }
        if (stopping) return;
        await sleep(backoffMs(failures, baseMs, opts.retryMaxMs, random));
        continue;
      }
      if (n === 0) {
        if (stopping) return;
        await sleep(opts.pollMs);
      }
    }
  }

  return {
    start(): void {
      loop ??= run().catch((err) => logger.error("flusher stopped unexpectedly", { error: err }));
    },

    /** New rows were committed: end an idle wait (a backoff wait is left alone). */
    notify(): void {
      if (failures === 0) wake?.();
    },

    status(): FlusherStatus {
      return {
        ok: mongo.connected,
        indexes: mongo.indexesReady,
        flushed_messages: flushed.get({ kind: "message" }),
        flush_errors: errors.get(),
        last_flush_at: lastFlushAt === null ? null : new Date(lastFlushAt).toISOString(),
        ...(lastError ? { last_error: lastError } : {}),
      };
    },

    /**
     * Stops the loop after one last attempt to drain, within `budgetMs`. What is left stays in
     * the SQLite outbox for the next start: nothing is lost either way.
     */
    async stop(budgetMs: number): Promise<void> {
      stopping = true;
      deadline = now() + budgetMs;
      wake?.();
      if (loop) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([loop, new Promise((r) => (timer = setTimeout(r, budgetMs)))]);
        clearTimeout(timer);
      }
      // Force-closing aborts a write still in flight; its rows stay unconfirmed and are replayed later.
      await mongo.close().catch(() => {});
      await loop;
    },

    /** For tests and the benchmark: flush until the outbox is empty or a write fails. */
    async drain(): Promise<number> {
      await mongo.ensureIndexes();
      let total = 0;
      for (;;) {
        const n = await flushOnce();
        total += n;
        if (n === 0) return total;
      }
    },
  };
}
