import { ClaimsClosed, type NotifyClaims } from "../bus/notify-claims.ts";
import { connectRedis } from "../bus/redis-shape.ts";
import type { Config } from "../config.ts";
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
import type { NotifyCycle, NotifyPayload } from "../model/notification.ts";
import type { OutboxEntry } from "../model/outbox.ts";
import type { Conversation } from "../model/types.ts";
import type { NotifyCycles } from "../store/sqlite/notify.ts";
import {
  createHttpSink,
  createStreamSink,
  type NotifySink,
  ownStreamLink,
  type StreamRedis,
} from "./notify-sinks.ts";
import type { OutboxHandler } from "./outbox-worker.ts";
import { sinkHealth } from "./sink-health.ts";

/**
 * Offline notifications on the outbox. A message accepted here opens a cycle for its recipient
 * (unless one is open) and, in the same transaction, writes a `notify` outbox entry due
 * NOTIFY_DELAY_S later. This handler sends due entries: it checks that the cycle is still open and
 * its first message still unread here, claims the cycle across instances, fixes the payload on
 * the first attempt, and sends it to each sink that has not confirmed it yet. Any failure leaves
 * the entry in the outbox; the worker retries with backoff, and a crash replays it after restart.
 */

type NotifyEntry = OutboxEntry<"notify">;

export const NOTIFY_KINDS = ["notify"] as const;

export interface NotifierOptions {
  /** The store: cycles, conversations by id (or the id they were remapped from), due times. */
  cycles: NotifyCycles & {
    conversation(id: string): Conversation | null;
    outboxNextDue(kind: "notify", now: number): number | null;
  };
  sinks: NotifySink[];
  /** Read at each use: the Redis claims exist only once the fan-out is up, after the worker. */
  claims: () => NotifyClaims;
  /** True when claims are shared between instances (Redis): then they, not local rows, hold "sent". */
  sharedClaims: boolean;
  delayMs: number;
  /** Backoff ceiling while a sink fails. */
  retryMaxMs: number;
  payload: PayloadOptions;
  logger: Logger;
  metrics: Metrics;
  now?: () => number;
}

export type NotifierStatus = {
  ok: boolean;
  configured: true;
  sinks: string[];
  backlog: number;
  oldest_due_age_s: number;
  sent: number;
  failures: number;
  last_success_at: string | null;
  last_error?: string;
};

export type Notifier = ReturnType<typeof createNotifier>;

export function createNotifier(opts: NotifierOptions) {
  const { cycles, sinks, logger } = opts;
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
  const health = sinkHealth(
    registry,
    {
      name: "chat_notify_last_success_timestamp_seconds",
      help: "When a sink last confirmed a notification (0: never since start)",
    },
    now,
  );

  const overdueS = () => {
    const { earliestDueAt } = cycles.pendingStats();
    return earliestDueAt === null ? 0 : Math.max(0, (now() - earliestDueAt) / 1000);
  };

  /** When the next waiting entry falls due: from the store after each pass, lowered by new cycles. */
  let nextDueAt: number | null = null;

  const payloadFor = (c: NotifyCycle, conversation: Conversation) =>
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

  /** Sends one due entry; throws when a sink failed, so it stays for a retry. */
  async function fire(entry: NotifyEntry): Promise<void> {
    const p = entry.payload;
    // The entry keeps the id it was written with; a conversation that adopted MongoDB's id since
    // is found through its alias, and its cycle moved with it.
    const conversation = cycles.conversation(p.conversationId);
    const conversationId = conversation?.id ?? p.conversationId;
    const cycle = cycles.cycle(conversationId, p.recipientId);
    const firstRead = cycles.messageRead(conversationId, p.firstMessageId);
    const decision = decideFire(p.notificationId, cycle, firstRead);
    if (decision === "cancelled" || !cycle || !conversation) {
      dropped.inc({ reason: "cancelled" });
      return;
    }
    if (decision === "read") {
      cycles.removeCycle(conversationId, p.recipientId, p.notificationId);
      dropped.inc({ reason: "read" });
      return;
    }
    let claim: Awaited<ReturnType<NotifyClaims["claim"]>>;
    try {
      claim = await opts.claims().claim(conversationId, p.recipientId, p.notificationId, p.firstMessageId);
    } catch (err) {
      if (err instanceof ClaimsClosed) throw err;
      // A missed notification is worse than a rare second one: without Redis, each instance
      // still coalesces its own messages.
      unclaimed.inc();
      logger.warn("notification claim failed; sending without it", { error: String(err) });
      claim = "ours";
    }
    if (claim !== "ours") {
      cycles.removeCycle(conversationId, p.recipientId, p.notificationId);
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
      health.confirmed();
    }
    // With shared claims Redis remembers "sent until read" for every instance; a local row kept
    // here could go stale when the read happens where this instance does not hear of it.
    if (opts.sharedClaims) cycles.removeCycle(conversationId, p.recipientId, p.notificationId);
    else cycles.markSent(cycle, now());
    logger.info("notification sent", {
      notification_id: p.notificationId,
      conversation_id: conversationId,
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
      if (!cycles.openCycle(payload, message.createdAt)) return;
      if (nextDueAt === null || payload.dueAt < nextDueAt) nextDueAt = payload.dueAt;
    },
    viewed(conversationId, viewerId, upToId) {
      cycles.endCycle(conversationId, viewerId, upToId);
    },
    viewedHere(conversationId, viewerId, upToId) {
      opts
        .claims()
        .read(conversationId, viewerId, upToId)
        .catch((err) => {
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
      kinds: NOTIFY_KINDS,
      // A commit never makes a notification due at once: `accepted` moves wakeAt() instead.
      commitWakes: false,
      retryMaxMs: opts.retryMaxMs,
      async handle(entries, confirm) {
        // The worker hands over only entries that are due; a clock step back is the exception.
        const at = now();
        for (const entry of entries) {
          if (entry.payload.dueAt > at) continue;
          await fire(entry);
          confirm([entry]);
        }
        // Entries written before a restart are known only to the store.
        nextDueAt = cycles.outboxNextDue("notify", now());
      },
      succeeded: () => health.succeeded(),
      failed(error: string) {
        health.failed(error);
        logger.debug("notification send failed", { error });
      },
      async close() {
        await Promise.all(sinks.map((s) => s.close()));
      },
      wakeAt: () => nextDueAt,
    } satisfies OutboxHandler<"notify">,

    status(): NotifierStatus {
      return {
        ok: !health.failing,
        configured: true,
        sinks: sinks.map((s) => s.name),
        backlog: cycles.pendingStats().pending,
        oldest_due_age_s: overdueS(),
        sent: sinks.reduce((n, s) => n + sent.get({ sink: s.name }), 0),
        failures: sinks.reduce((n, s) => n + failures.get({ sink: s.name }), 0),
        last_success_at: health.lastAtIso(),
        ...health.errorField(),
      };
    },
  };
}

/** A sink is configured (config.ts makes sure a stream has its Redis). */
export const notificationsOn = (config: Config): boolean =>
  Boolean(config.NOTIFY_STREAM || config.NOTIFY_URL);

export interface SinkDeps {
  /** The fan-out's link (redis-shape.ts), once the bus is up; undefined without REDIS_URL. */
  busRedis: () => StreamRedis | undefined;
  logger: Logger;
}

/** The sinks the configuration names; none means notifications are off. */
export function sinksFromConfig(config: Config, deps: SinkDeps): NotifySink[] {
  const sinks: NotifySink[] = [];
  if (config.NOTIFY_STREAM) sinks.push(streamSinkFromConfig(config, config.NOTIFY_STREAM, deps));
  if (config.NOTIFY_URL) {
    sinks.push(
      createHttpSink({
        url: config.NOTIFY_URL,
        token: config.NOTIFY_TOKEN,
        timeoutMs: config.NOTIFY_TIMEOUT_MS,
      }),
    );
  }
  return sinks;
}

/**
 * The stream on the bus's Redis goes through the fan-out's link; on another Redis, through a
 * link of its own. Either is shaped (redis-shape.ts), so a Redis Cluster works as one server.
 */
function streamSinkFromConfig(config: Config, stream: string, deps: SinkDeps): NotifySink {
  const timeoutMs = config.NOTIFY_TIMEOUT_MS;
  const url = config.NOTIFY_REDIS_URL;
  const sameAsBus =
    !url || (config.REDIS_URL !== undefined && new URL(url).href === new URL(config.REDIS_URL).href);
  if (sameAsBus) return createStreamSink({ redis: deps.busRedis, stream, timeoutMs });
  const own = ownStreamLink(() =>
    connectRedis({
      url,
      logger: deps.logger.child({ redis: "notify" }),
      onMessage: () => undefined,
      sharded: () => false,
      timeoutMs,
    }),
  );
  return createStreamSink({ redis: own.redis, close: own.close, stream, timeoutMs });
}

export function notifierFromConfig(
  config: Config,
  deps: Pick<NotifierOptions, "cycles" | "claims" | "logger" | "metrics" | "now"> &
    Pick<SinkDeps, "busRedis">,
): Notifier | undefined {
  const sinks = sinksFromConfig(config, deps);
  if (sinks.length === 0) return undefined;
  return createNotifier({
    ...deps,
    sinks,
    sharedClaims: Boolean(config.REDIS_URL),
    delayMs: Math.round(config.NOTIFY_DELAY_S * 1000),
    retryMaxMs: config.NOTIFY_RETRY_MAX_MS,
    payload: { includeText: config.NOTIFY_INCLUDE_TEXT, actionUrl: config.NOTIFY_ACTION_URL },
  });
}
