import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { type CopiedKind, copiedKindOf, copyKey, type OutboxEntry } from "../model/outbox.ts";
import type { StoredMessage } from "../model/types.ts";
import type { MongoStore } from "../store/mongo.ts";
import type { OutboxHandler } from "./outbox-worker.ts";
import { sinkHealth } from "./sink-health.ts";

/**
 * The outbox handler that copies conversations, messages, read marks, edits and deletes to
 * MongoDB: consecutive messages go as one unordered insert; every write is keyed by an id made
 * locally, so a replay is a duplicate-key answer (or a conditional update that matches
 * nothing), which counts as done. All kinds are one handler because their order matters to each
 * other: an edit never reaches MongoDB before its message. Copies of what other instances
 * accepted (`relayed_*`, due only when their origin stayed silent) are written the same way.
 */

export const MONGO_KINDS = [
  "conversation",
  "message",
  "viewed",
  "edit",
  "delete",
  "relayed_conversation",
  "relayed_message",
  "relayed_viewed",
] as const;
type MongoKind = (typeof MONGO_KINDS)[number];

/** What the handler needs of the store: the aliases of adopted conversations, and adopting one. */
export interface ConversationMoves {
  conversationAliases(): Map<string, string>;
  remapConversation(oldId: string, newId: string): void;
}

export interface MongoFlushOptions {
  store: ConversationMoves;
  mongo: MongoStore;
  logger: Logger;
  metrics: Metrics;
  /** Told when MongoDB already knew a conversation under another id and the local one moved. */
  onRemap?: (oldId: string, newId: string) => void;
  /** Told the copy keys MongoDB just confirmed, so peers can withdraw their copies of them. */
  onConfirmed?: (kind: CopiedKind, keys: string[]) => void;
  now?: () => number;
}

export type MongoFlushStatus = {
  ok: boolean;
  indexes: boolean;
  flushed_messages: number;
  flush_errors: number;
  last_flush_at: string | null;
  last_error?: string;
};

export function createMongoFlush(opts: MongoFlushOptions) {
  const { store, mongo, logger } = opts;
  const now = opts.now ?? Date.now;
  const registry = opts.metrics.registry;
  const flushed = registry.counter("chat_outbox_flushed_total", "Outbox rows confirmed by MongoDB, by kind");
  const errors = registry.counter("chat_outbox_flush_errors_total", "Failed flush attempts to MongoDB");
  registry.gauge("chat_mongo_connected", "MongoDB answered at last contact (1) or not (0)", () =>
    mongo.connected ? 1 : 0,
  );
  const health = sinkHealth(
    registry,
    {
      name: "chat_outbox_last_flush_timestamp_seconds",
      help: "When MongoDB last confirmed outbox rows (0: never since start)",
    },
    now,
  );

  const aliases = store.conversationAliases();
  const conversationOf = (id: string) => aliases.get(id) ?? id;

  /** Moves a conversation made here onto MongoDB's id for the same parties. */
  const adopt = (oldId: string, newId: string) => {
    store.remapConversation(oldId, newId);
    aliases.set(oldId, newId);
    logger.warn("adopted MongoDB's conversation id", { old_id: oldId, new_id: newId });
    opts.onRemap?.(oldId, newId);
  };

  /**
   * A message queued under an id remapped since: send it under the new one, and move any
   * stragglers written locally under the old id (once per batch and id; the move is idempotent).
   */
  const translator = () => {
    const moved = new Set<string>();
    return (m: StoredMessage): StoredMessage => {
      const to = aliases.get(m.conversationId);
      if (to === undefined) return m;
      if (!moved.has(m.conversationId)) {
        store.remapConversation(m.conversationId, to);
        moved.add(m.conversationId);
      }
      return { ...m, conversationId: to };
    };
  };

  /** Confirms locally, then tells peers (through `onConfirmed`) which changes MongoDB holds now. */
  const confirmer =
    (confirm: (done: OutboxEntry<MongoKind>[]) => void) => (done: OutboxEntry<MongoKind>[]) => {
      confirm(done);
      if (!opts.onConfirmed || done.length === 0) return;
      const kind = copiedKindOf(done[0]!.kind)!;
      opts.onConfirmed(
        kind,
        done.map((e) => copyKey(kind, e.payload)),
      );
    };

  async function handle(
    entries: OutboxEntry<MongoKind>[],
    confirmed: (done: OutboxEntry<MongoKind>[]) => void,
  ): Promise<void> {
    const translate = translator();
    const confirm = confirmer(confirmed);
    let i = 0;
    while (i < entries.length) {
      const entry = entries[i]!;
      const kind = copiedKindOf(entry.kind);
      if (kind === "message") {
        // Copies and originals alike: one unordered insert per run, confirmed by kind.
        const run: OutboxEntry<"message" | "relayed_message">[] = [];
        for (let e = entries[i]; e && copiedKindOf(e.kind) === "message"; e = entries[++i])
          run.push(e as OutboxEntry<"message" | "relayed_message">);
        await mongo.putMessages(run.map((r) => translate(r.payload.message)));
        for (const k of ["message", "relayed_message"] as const) {
          const same = run.filter((r) => r.kind === k);
          if (same.length > 0) confirm(same);
        }
        continue;
      }
      if (kind === "conversation") {
        const c = (entry as OutboxEntry<"conversation" | "relayed_conversation">).payload.conversation;
        const local = { ...c, id: conversationOf(c.id) };
        const kept = await mongo.putConversation(local);
        if (kept !== local.id) adopt(local.id, kept);
      } else if (entry.kind === "edit" || entry.kind === "delete") {
        await mongo.putChange(translate(entry.payload.message));
      } else {
        const mark = (entry as OutboxEntry<"viewed" | "relayed_viewed">).payload;
        await mongo.markViewed({ ...mark, conversationId: conversationOf(mark.conversationId) });
      }
      confirm([entry]);
      i++;
    }
  }

  const handler: OutboxHandler<MongoKind> = {
    name: "MongoDB",
    kinds: MONGO_KINDS,
    prepare: () => mongo.ensureIndexes(),
    handle,
    failed(error) {
      errors.inc();
      health.failed(error);
    },
    confirmed(kind, n) {
      flushed.inc({ kind }, n);
      health.confirmed();
    },
    succeeded: () => health.succeeded(),
    close: () => mongo.close(),
  };

  return {
    handler,
    status(): MongoFlushStatus {
      return {
        ok: mongo.connected,
        indexes: mongo.indexesReady,
        flushed_messages: flushed.get({ kind: "message" }),
        flush_errors: errors.get(),
        last_flush_at: health.lastAtIso(),
        ...health.errorField(),
      };
    },
  };
}
