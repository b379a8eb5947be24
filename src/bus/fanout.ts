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
import { createRedisLink, type RedisLink } from "./redis-link.ts";
import { createRedisPresence } from "./redis-presence.ts";

/**
 * The bus and the presence view: in-process without REDIS_URL; otherwise shared through Redis,
 * with what `accept` decides about frames relayed from other instances.
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
): Promise<{ bus: Bus; presence: Presence; redis?: RedisLink }> {
  const tracker = new PresenceTracker();
  if (!config.REDIS_URL) {
    return {
      bus: createLocalBus(deps.deliver),
      presence: createLocalPresence(tracker, deps.lastSeen, deps.now),
    };
  }
  const instanceId = config.INSTANCE_ID ?? `i-${crypto.randomUUID().slice(0, 8)}`;
  let bus: ReturnType<typeof createRedisBus> | undefined;
  const link = await createRedisLink({
    url: config.REDIS_URL,
    logger: deps.logger,
    onMessage: (channel, message) => bus?.receive(channel, message),
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
  return { bus, presence, redis: link };
}
