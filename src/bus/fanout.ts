import type { Config } from "../config.ts";
import type { Accept, Bus, Deliver } from "../domain/bus.ts";
import {
  createLocalPresence,
  type LastSeenStore,
  type Presence,
  PresenceTracker,
} from "../domain/presence.ts";
import type { Logger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import { createLocalBus } from "./local.ts";
import { createRedisBus } from "./redis.ts";
import type { RedisLink } from "./redis-link.ts";
import { createRedisPresence } from "./redis-presence.ts";
import { connectRedis, type RedisShape } from "./redis-shape.ts";

/**
 * The bus and the presence view: in-process without REDIS_URL; otherwise shared through Redis,
 * with what `accept` decides about frames relayed from other instances. A single Redis or a Redis
 * Cluster, whichever the server says it is (redis-shape.ts); `redisShape` tells /readyz.
 */
export async function createFanout(
  config: Config,
  deps: {
    deliver: Deliver;
    accept: Accept;
    lastSeen: LastSeenStore;
    registry: Registry;
    logger: Logger;
    now: () => number;
  },
): Promise<{ bus: Bus; presence: Presence; redis?: RedisLink; redisShape?: () => RedisShape }> {
  const tracker = new PresenceTracker();
  if (!config.REDIS_URL) {
    return {
      bus: createLocalBus(deps.deliver),
      presence: createLocalPresence(tracker, deps.lastSeen, deps.now),
    };
  }
  const instanceId = config.INSTANCE_ID ?? `i-${crypto.randomUUID().slice(0, 8)}`;
  let bus: ReturnType<typeof createRedisBus> | undefined;
  const conversationChannels = `${config.REDIS_PREFIX}c:`;
  const link = await connectRedis({
    url: config.REDIS_URL,
    logger: deps.logger,
    onMessage: (channel, message) => bus?.receive(channel, message),
    // On a cluster, a conversation's frames go to the one shard owning its channel.
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
  return { bus, presence, redis: link, redisShape: link.shape };
}
