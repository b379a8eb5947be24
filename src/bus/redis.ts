import { z } from "zod";
import {
  type Accept,
  type Bus,
  type Deliver,
  FRAME_KINDS,
  type FrameKind,
  isDurableKind,
  topicOf,
} from "../domain/bus.ts";
import type { Logger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import type { RedisLink } from "./redis-link.ts";

/**
 * Fan-out across instances over Redis pub/sub: one channel per conversation, subscribed while
 * this instance has a socket in it. A publish is delivered to this instance's sockets at once
 * and sent to Redis in an envelope naming its origin; each instance skips its own envelopes,
 * so every socket hears a frame once. One publishing connection per instance and Redis's
 * per-connection order keep each instance's frames in order for every subscriber.
 *
 * Messages, read marks, edits and deletes are durable at their origin, so worth repairing after an
 * outage: each instance remembers those it published lately and publishes them again, marked
 * as a replay, when its own link comes back or when a peer says it was cut off. Receivers
 * drop replays they already hold (see `accept`). Typing and presence are not repaired.
 * The envelope names the frame's kind, so neither side reads the frame to tell them apart.
 */

const envelopeSchema = z.object({
  /** Origin instance. */
  o: z.string(),
  /** Target participant, for frames meant for one side of the conversation. */
  u: z.number().int().optional(),
  /** The encoded frame, delivered as is. */
  f: z.string(),
  /** Set on replays after an outage. */
  r: z.literal(1).optional(),
  /** The frame's kind; absent from instances that predate it (then read from the frame). */
  k: z.enum(FRAME_KINDS).optional(),
});
type Envelope = z.infer<typeof envelopeSchema>;

const helloSchema = z.object({ o: z.string(), down_ms: z.number().nonnegative() });

export interface RedisBusOptions {
  link: RedisLink;
  prefix: string;
  instanceId: string;
  deliver: Deliver;
  accept: Accept;
  logger: Logger;
  registry: Registry;
  /** How much recent durable traffic to keep for replays. */
  replayLimit?: number;
  replayMaxAgeMs?: number;
  /** Replays reach back this much further than the outage, for late detection. */
  replayMarginMs?: number;
  now?: () => number;
}

export interface RedisBus extends Bus {
  /** The envelope handler; the link calls it for every message on a subscribed channel. */
  receive(channel: string, raw: string): void;
  /** Channels this instance listens to (tests and metrics). */
  readonly watching: number;
}

/** For a publish or an envelope that does not say: the kind the frame itself names. */
function kindOfFrame(frame: string): FrameKind | undefined {
  const type = (safeJson(frame) as { type?: unknown } | null | undefined)?.type;
  return FRAME_KINDS.includes(type as FrameKind) ? (type as FrameKind) : undefined;
}

export function createRedisBus(opts: RedisBusOptions): RedisBus {
  const { link, prefix, instanceId, logger } = opts;
  const now = opts.now ?? Date.now;
  const replayLimit = opts.replayLimit ?? 10_000;
  const replayMaxAgeMs = opts.replayMaxAgeMs ?? 5 * 60_000;
  const replayMarginMs = opts.replayMarginMs ?? 5_000;
  const channelPrefix = `${prefix}c:`;
  const controlChannel = `${prefix}ctl`;
  const channelOf = (conversationId: string) => `${channelPrefix}${conversationId}`;
  const ownEnvelopeStart = `${JSON.stringify({ o: instanceId }).slice(0, -1)},`;

  const watchers = new Map<string, number>();
  /** Recent durable envelopes, oldest first, for replays. */
  const recent: Array<{ at: number; channel: string; env: Envelope }> = [];
  let downSince: number | null = link.up ? null : now();
  /** Relayed frames still waiting for an earlier one's local commit. */
  let pending = 0;
  let tail: Promise<void> = Promise.resolve();
  let replayTimer: ReturnType<typeof setTimeout> | undefined;

  const published = opts.registry.counter(
    "chat_bus_published_total",
    "Frames sent to Redis for other instances, by result",
  );
  const relayed = opts.registry.counter(
    "chat_bus_relayed_total",
    "Frames received from other instances, by outcome",
  );
  opts.registry.gauge("chat_bus_channels", "Conversation channels this instance subscribes to", () =>
    Math.max(0, watchers.size),
  );
  opts.registry.gauge("chat_bus_reconnects", "Times the Redis link was restored", () => link.reconnects);

  /** Index of the oldest live entry in `recent`; dropped entries are compacted in bulk. */
  let head = 0;
  const remember = (channel: string, env: Envelope) => {
    const at = now();
    recent.push({ at, channel, env });
    while (recent.length - head > replayLimit || recent[head]!.at < at - replayMaxAgeMs) head++;
    // Array.shift per publish would move the whole window each time.
    if (head > 1024 && head * 2 > recent.length) {
      recent.splice(0, head);
      head = 0;
    }
  };

  const send = (channel: string, env: Envelope, counted: boolean) => {
    if (!link.up) {
      if (counted) published.inc({ result: "down" });
      return;
    }
    link.publish(channel, JSON.stringify(env)).then(
      () => counted && published.inc({ result: "ok" }),
      () => counted && published.inc({ result: "failed" }),
    );
  };

  /** Publishes again what this instance sent within the last `windowMs`. */
  const replay = (windowMs: number, why: string) => {
    const from = now() - windowMs - replayMarginMs;
    let n = 0;
    for (let i = head; i < recent.length; i++) {
      const { at, channel, env } = recent[i]!;
      if (at < from) continue;
      send(channel, { ...env, r: 1 }, false);
      n++;
    }
    if (n > 0) logger.info("bus replayed recent messages", { count: n, why });
    published.inc({ result: "replayed" }, n);
  };

  link.onDown(() => {
    downSince ??= now();
  });
  link.onUp(() => {
    const downMs = downSince === null ? 0 : now() - downSince;
    downSince = null;
    // Ask the others for what they sent while this link was cut, then repair our own side;
    // once more a little later for peers whose own link comes back after ours.
    link.publish(controlChannel, JSON.stringify({ o: instanceId, down_ms: downMs })).catch(() => undefined);
    replay(downMs, "link restored");
    clearTimeout(replayTimer);
    replayTimer = setTimeout(() => replay(downMs + replayMarginMs, "link restored, second pass"), 2_000);
  });
  // The control channel is wanted for the life of the bus.
  link.subscribe(controlChannel).catch(() => undefined);

  const deliverInOrder = (topic: string, frame: string, verdict: boolean | Promise<boolean>) => {
    if (verdict === true && pending === 0) {
      opts.deliver(topic, frame);
      relayed.inc({ outcome: "delivered" });
      return;
    }
    if (verdict === false && pending === 0) {
      relayed.inc({ outcome: "duplicate" });
      return;
    }
    pending++;
    tail = tail
      .then(() => verdict)
      .then(
        (ok) => {
          if (ok) opts.deliver(topic, frame);
          relayed.inc({ outcome: ok ? "delivered" : "duplicate" });
        },
        (err) => {
          logger.error("relayed frame could not be kept; delivering it anyway", { error: err });
          opts.deliver(topic, frame);
          relayed.inc({ outcome: "delivered" });
        },
      )
      .finally(() => {
        pending--;
      });
  };

  return {
    publish(conversationId, frame, toUserId, kind) {
      opts.deliver(topicOf(conversationId, toUserId), frame);
      const env: Envelope = {
        o: instanceId,
        f: frame,
        ...(toUserId !== undefined ? { u: toUserId } : {}),
        ...(kind !== undefined ? { k: kind } : {}),
      };
      const channel = channelOf(conversationId);
      if (isDurableKind(kind ?? kindOfFrame(frame))) remember(channel, env);
      send(channel, env, true);
    },

    async watch(conversationId) {
      const n = watchers.get(conversationId) ?? 0;
      watchers.set(conversationId, n + 1);
      await link.subscribe(channelOf(conversationId));
    },

    unwatch(conversationId) {
      const n = watchers.get(conversationId) ?? 0;
      if (n > 1) {
        watchers.set(conversationId, n - 1);
        return;
      }
      watchers.delete(conversationId);
      link.unsubscribe(channelOf(conversationId));
    },

    receive(channel, raw) {
      if (channel === controlChannel) {
        const hello = helloSchema.safeParse(safeJson(raw));
        if (hello.success && hello.data.o !== instanceId) replay(hello.data.down_ms, `peer ${hello.data.o}`);
        return;
      }
      if (!channel.startsWith(channelPrefix)) return;
      // Our own envelopes come back too (we subscribe to the channels we publish on): skip
      // them before paying for a parse. JSON.stringify keeps `o` first.
      if (raw.startsWith(ownEnvelopeStart)) return;
      const parsed = envelopeSchema.safeParse(safeJson(raw));
      if (!parsed.success) {
        relayed.inc({ outcome: "malformed" });
        return;
      }
      const env = parsed.data;
      if (env.o === instanceId) return;
      const conversationId = channel.slice(channelPrefix.length);
      // A frame for a conversation nobody here watches any more is late; nothing to do.
      if (!watchers.has(conversationId)) return;
      let verdict: boolean | Promise<boolean>;
      try {
        verdict = opts.accept(conversationId, env.f, env.r === 1, env.k ?? kindOfFrame(env.f));
      } catch (err) {
        logger.error("relayed frame could not be kept; delivering it anyway", { error: err });
        verdict = true;
      }
      deliverInOrder(topicOf(conversationId, env.u), env.f, verdict);
    },

    get watching() {
      return watchers.size;
    },

    healthy: () => link.up,

    async close() {
      clearTimeout(replayTimer);
      await tail;
      await link.close();
    },
  };
}

function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
