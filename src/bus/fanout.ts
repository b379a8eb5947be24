import type { Config } from "../config.ts";
import type { Accept, Bus, Deliver } from "../domain/bus.ts";
import type { Copies, CopyKeeper } from "../domain/copies.ts";
import {
  createLocalPresence,
  type LastSeenStore,
  type Presence,
  PresenceTracker,
} from "../domain/presence.ts";
import type { KeepReplica } from "../domain/relay.ts";
import type { Logger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import { createLocalBus } from "./local.ts";
import { createRedisBus } from "./redis.ts";
import type { RedisLink } from "./redis-link.ts";
import { createRedisPresence } from "./redis-presence.ts";
import { connectRedis, type RedisShape } from "./redis-shape.ts";
import { createLocalCopies, createRedisCopies, type RedisCopies } from "./replica.ts";

/**
 * The bus and the presence view: in-process without REDIS_URL; otherwise shared through Redis,
 * with what `accept` decides about frames relayed from other instances, and copies between
 * instances (`keepReplica`, `keeper`; see domain/copies.ts). A single Redis or a Redis
 * Cluster, whichever the server says it is (redis-shape.ts); `redisShape` tells /readyz.
 */
export async function createFanout(
  config: Config,
  deps: {
    deliver: Deliver;
    accept: Accept;
    keepReplica: KeepReplica;
    keeper: CopyKeeper;
    lastSeen: LastSeenStore;
    registry: Registry;
    logger: Logger;
    now: () => number;
  },
): Promise<{
  bus: Bus;
  presence: Presence;
  copies: Copies & { close?(): void };
  redis?: RedisLink;
  redisShape?: () => RedisShape;
}> {
  const tracker = new PresenceTracker();
  if (!config.REDIS_URL) {
    return {
      bus: createLocalBus(deps.deliver),
      presence: createLocalPresence(tracker, deps.lastSeen, deps.now),
      copies: createLocalCopies(config.ACK_COPIES),
    };
  }
  const instanceId = config.INSTANCE_ID ?? `i-${crypto.randomUUID().slice(0, 8)}`;
  let bus: ReturnType<typeof createRedisBus> | undefined;
  let copies: RedisCopies | undefined;
  const conversationChannels = `${config.REDIS_PREFIX}c:`;
  const link = await connectRedis({
    url: config.REDIS_URL,
    logger: deps.logger,
    onMessage: (channel, message) => {
      if (!copies?.receive(channel, message)) bus?.receive(channel, message);
    },
    // On a cluster, a conversation's frames go to the one shard owning its channel; the copies
    // channels stay classic (every instance hears them once).
    sharded: (channel) => channel.startsWith(conversationChannels),
  });
  bus = createRedisBus({
    link,
    prefix: config.REDIS_PREFIX,
    instanceId,
    deliver: deps.deliver,
    accept: deps.accept,
    logger: deps.logger,
    registry: deps.registry,
  });
  copies = createRedisCopies({
    link,
    prefix: config.REDIS_PREFIX,
    instanceId,
    wanted: config.ACK_COPIES,
    timeoutMs: config.ACK_COPY_TIMEOUT_MS,
    keep: deps.keepReplica,
    keeper: deps.keeper,
    logger: deps.logger,
    registry: deps.registry,
    now: deps.now,
  });
  const presence = createRedisPresence({
    link,
    prefix: config.REDIS_PREFIX,
    instanceId,
    tracker,
    store: deps.lastSeen,
    ttlS: config.PRESENCE_TTL_S,
    logger: deps.logger,
    now: deps.now,
  });
  deps.logger.info("redis fan-out", { instance: instanceId, prefix: config.REDIS_PREFIX, up: link.up });
  return { bus, presence, copies, redis: link, redisShape: link.shape };
}
