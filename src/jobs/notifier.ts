import type { NotifyClaims } from "../bus/notify-claims.ts";
import {
  buildNotification,
  decideFire,
  type NotifyHooks,
  opensCycle,
  type PayloadOptions,
} from "../domain/notification.ts";
import { notificationIdFor } from "../ids.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { NotifyCycles, StoredCycle } from "../store/notify-cycles.ts";
import type { Conversation } from "../store/sqlite.ts";
import type { NotifySink } from "./notify-sinks.ts";

/**
 * Offline notifications on the outbox. A message accepted here opens a cycle for its recipient
 * (unless one is open) and, in the same transaction, writes a `notify` outbox entry due
 * NOTIFY_DELAY_S later. This handler sends due entries: it checks that the cycle is still open and
 * its first message still unread here, claims the cycle across instances, fixes the payload on
 * the first attempt, and sends it to each sink that has not confirmed it yet. Any failure leaves
 * the entry in the outbox; the worker retries with backoff, and a crash replays it after restart.
 */

export interface NotifyPayload {
  notificationId: number;
  conversationId: string;
  recipientId: number;
  senderId: number;
  firstMessageId: string;
  dueAt: number;
}

export interface NotifyEntry {
  seq: number;
  kind: "notify";
  payload: NotifyPayload;
  createdAt: number;
}

export interface NotifierOptions {
  cycles: NotifyCycles;
  /** Writes a `notify` entry; called inside the transaction that opens the cycle. */
  enqueue(payload: NotifyPayload, at: number): void;
  conversation(id: string): Conversation | null;
  sinks: NotifySink[];
  claims: NotifyClaims;
  /** True when claims are shared between instances (Redis): then they, not local rows, hold "sent". */
  sharedClaims: boolean;
  delayMs: number;
  payload: PayloadOptions;
  logger: Logger;
  metrics: Metrics;
  now?: () => number;
}

export interface NotifierStatus {
  ok: boolean;
  configured: true;
  sinks: string[];
  backlog: number;
  oldest_due_age_s: number;
  sent: number;
  failures: number;
  last_success_at: string | null;
  last_error?: string;
}

export type Notifier = ReturnType<typeof createNotifier>;

export function createNotifier(opts: NotifierOptions) {
  const { cycles, sinks, claims, logger } = opts;
  const now = opts.now ?? Date.now;
  const registry = opts.metrics.registry;
  const sent = registry.counter("chat_notify_sent_total", "Notifications confirmed by a sink, by sink");
  const failures = registry.counter("chat_notify_failures_total", "Failed notification sends, by sink");
  const dropped = registry.counter(
    "chat_notify_dropped_total",
    "Due notifications not sent, by reason (read, cancelled, coalesced)",
  );
  const unclaimed = registry.counter(
    "chat_notify_unclaimed_total",
    "Notifications sent without a cross-instance claim because Redis did not answer",
  );
  let lastSuccessAt: number | null = null;
  let lastError: string | undefined;
  registry.gauge(
    "chat_notify_backlog",
    "Notifications waiting to be sent (due or not)",
    () => cycles.pendingStats().pending,
  );
  registry.gauge(
    "chat_notify_oldest_due_age_seconds",
    "How late the most overdue pending notification is",
    () => overdueS(),
  );
  registry.gauge(
    "chat_notify_last_success_timestamp_seconds",
    "When a sink last confirmed a notification (0: never since start)",
    () => (lastSuccessAt === null ? 0 : lastSuccessAt / 1000),
  );

  const overdueS = () => {
    const { earliestDueAt } = cycles.pendingStats();
    return earliestDueAt === null ? 0 : Math.max(0, (now() - earliestDueAt) / 1000);
  };

  /** Earliest due time of the entries this handler has seen waiting; a hint for the worker. */
  let nextDueAt: number | null = null;

  const payloadFor = (c: StoredCycle, conversation: Conversation) =>
    c.payload ??
    cycles.freezePayload(
      c,
      buildNotification(
        {
          id: c.notificationId,
          conversation,
          senderId: c.senderId,
          recipientId: c.recipientId,
          first: { id: c.firstMessageId, text: cycles.messageText(c.conversationId, c.firstMessageId) ?? "" },
          unreadCount: Math.max(1, cycles.unreadFrom(c.conversationId, c.senderId)),
          at: now(),
        },
        opts.payload,
      ),
    );

  /** Sends one due entry; throws when a sink or the claim failed, so it stays for a retry. */
  async function fire(entry: NotifyEntry): Promise<void> {
    const p = entry.payload;
    const cycle = cycles.cycle(p.conversationId, p.recipientId);
    const firstRead = cycles.messageRead(p.conversationId, p.firstMessageId);
    const decision = decideFire(p.notificationId, cycle, firstRead);
    if (decision === "cancelled" || !cycle) {
      dropped.inc({ reason: "cancelled" });
      return;
    }
    if (decision === "read") {
      cycles.removeCycle(p.conversationId, p.recipientId, p.notificationId);
      dropped.inc({ reason: "read" });
      return;
    }
    const conversation = opts.conversation(p.conversationId);
    if (!conversation) {
      // Moved to MongoDB's id while pending; the remap moved the cycle with it, so this is stale.
      dropped.inc({ reason: "cancelled" });
      return;
    }
    let claim: Awaited<ReturnType<NotifyClaims["claim"]>>;
    try {
      claim = await claims.claim(p.conversationId, p.recipientId, p.notificationId, p.firstMessageId);
    } catch (err) {
      // A missed notification is worse than a rare second one: without Redis, each instance
      // still coalesces its own messages.
      unclaimed.inc();
      logger.warn("notification claim failed; sending without it", { error: String(err) });
      claim = "ours";
    }
    if (claim !== "ours") {
      cycles.removeCycle(p.conversationId, p.recipientId, p.notificationId);
      dropped.inc({ reason: claim === "read" ? "read" : "coalesced" });
      return;
    }
    const payload = payloadFor(cycle, conversation);
    for (const sink of sinks) {
      if (cycle.sinksDone.includes(sink.name)) continue;
      try {
        await sink.send(payload);
      } catch (err) {
        failures.inc({ sink: sink.name });
        throw new Error(`${sink.name} sink: ${err instanceof Error ? err.message : String(err)}`);
      }
      cycles.sinkDone(cycle, sink.name);
      sent.inc({ sink: sink.name });
      lastSuccessAt = now();
    }
    // With shared claims Redis remembers "sent until read" for every instance; a local row kept
    // here could go stale when the read happens where this instance does not hear of it.
    if (opts.sharedClaims) cycles.removeCycle(p.conversationId, p.recipientId, p.notificationId);
    else cycles.markSent(cycle, now());
    logger.info("notification sent", {
      notification_id: p.notificationId,
      conversation_id: p.conversationId,
      recipient_id: p.recipientId,
      unread_count: payload.metadata.unread_count,
    });
  }

  const hooks: NotifyHooks = {
    accepted(conversation, message) {
      const recipientId =
        message.senderId === conversation.mentorId ? conversation.studentId : conversation.mentorId;
      if (!opensCycle(cycles.cycle(conversation.id, recipientId))) return;
      const payload: NotifyPayload = {
        notificationId: notificationIdFor(message.id),
        conversationId: conversation.id,
        recipientId,
        senderId: message.senderId,
        firstMessageId: message.id,
        dueAt: message.createdAt + opts.delayMs,
      };
      if (!cycles.openCycle(payload)) return;
      opts.enqueue(payload, message.createdAt);
      if (nextDueAt === null || payload.dueAt < nextDueAt) nextDueAt = payload.dueAt;
    },
    viewed(conversationId, viewerId, upToId) {
      cycles.endCycle(conversationId, viewerId, upToId);
    },
    viewedHere(conversationId, viewerId, upToId) {
      claims.read(conversationId, viewerId, upToId).catch((err) => {
        // The relayed read mark still ends pending cycles on instances that hear it; the claim
        // key is corrected by the recipient's next read.
        logger.warn("could not record the read mark for notifications", { error: String(err) });
      });
    },
  };

  return {
    hooks,

    handler: {
      name: "notifications",
      kinds: ["notify"] as const,
      async handle(entries: NotifyEntry[], confirm: (done: NotifyEntry[]) => void): Promise<void> {
        const at = now();
        nextDueAt = null;
        for (const entry of entries) {
          if (entry.payload.dueAt > at) {
            if (nextDueAt === null || entry.payload.dueAt < nextDueAt) nextDueAt = entry.payload.dueAt;
            continue;
          }
          await fire(entry);
          confirm([entry]);
        }
      },
      succeeded() {
        lastError = undefined;
      },
      failed(error: string) {
        lastError = error;
        logger.debug("notification send failed", { error });
      },
      async close() {
        await Promise.all(sinks.map((s) => s.close()));
      },
      /** When the earliest waiting entry falls due, so the worker need not poll for it. */
      wakeAt(): number | null {
        return nextDueAt;
      },
    },

    status(): NotifierStatus {
      return {
        ok: lastError === undefined,
        configured: true,
        sinks: sinks.map((s) => s.name),
        backlog: cycles.pendingStats().pending,
        oldest_due_age_s: overdueS(),
        sent: sinks.reduce((n, s) => n + sent.get({ sink: s.name }), 0),
        failures: sinks.reduce((n, s) => n + failures.get({ sink: s.name }), 0),
        last_success_at: lastSuccessAt === null ? null : new Date(lastSuccessAt).toISOString(),
        ...(lastError ? { last_error: lastError } : {}),
      };
    },
  };
}
