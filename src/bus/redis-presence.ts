import type { LastSeenStore, Presence, PresenceTracker } from "../domain/presence.ts";
import type { Logger } from "../log.ts";
import type { RedisLink } from "./redis-link.ts";

/**
 * Presence shared by every instance. Each instance counts its own connections per user in a
 * hash `u:<user>` (field = instance id) and proves it is alive with a heartbeat key `i:<id>`
 * that expires after PRESENCE_TTL_S. A user is online while some field with a positive count
 * belongs to a live instance, so a crashed instance's users drop offline when its heartbeat
 * expires (and readers clean its fields up). `seen:<user>` keeps last_seen for /presence on
 * any instance. While Redis is away the local tracker answers, and every (re)connect rewrites
 * this instance's fields from it, which also repairs a Redis that restarted empty.
 *
 * The scripts read instance keys they are not given as KEYS: fine for one Redis, not for a
 * Redis Cluster.
 */

const DISCONNECT = `
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
local f = redis.call('HGETALL', KEYS[1])
for i = 1, #f, 2 do
  if tonumber(f[i + 1]) > 0 and redis.call('EXISTS', ARGV[3] .. f[i]) == 1 then return 1 end
end
return 0`;

const STATUS = `
local online = 0
local f = redis.call('HGETALL', KEYS[1])
for i = 1, #f, 2 do
  if redis.call('EXISTS', ARGV[1] .. f[i]) == 1 then
    if tonumber(f[i + 1]) > 0 then online = 1 end
  else
    redis.call('HDEL', KEYS[1], f[i])
  end
end
return {online, redis.call('GET', KEYS[2]) or ''}`;

const SEEN_TTL_S = String(90 * 24 * 3600);

export interface RedisPresenceOptions {
  link: RedisLink;
  prefix: string;
  instanceId: string;
  tracker: PresenceTracker;
  store: LastSeenStore;
  ttlS: number;
  logger: Logger;
  now: () => number;
}

export function createRedisPresence(opts: RedisPresenceOptions): Presence & { resync(): Promise<void> } {
  const { link, prefix, instanceId: inst, tracker, store, logger, now } = opts;
  const instPrefix = `${prefix}i:`;
  const instKey = `${instPrefix}${inst}`;
  const userKey = (u: number) => `${prefix}u:${u}`;
  const seenKey = (u: number) => `${prefix}seen:${u}`;
  const ttl = String(opts.ttlS);
  /** Users whose field this instance believes it has written (to remove stale ones on resync). */
  const written = new Set<number>();
  let dirty = false;

  const touchLocal = (userId: number, at: number) => {
    try {
      store.touchPresence(userId, at);
    } catch {
      // The store may be closed during shutdown.
    }
  };

  const failed = (what: string) => (err: unknown) => {
    dirty = true;
    logger.debug("presence write to redis failed; will resync", { what, error: String(err) });
  };

  const resync = async () => {
    if (!link.up) return;
    dirty = false;
    const ops: Array<Promise<unknown>> = [link.command("SET", [instKey, "1", "EX", ttl])];
    const here = new Set<number>();
    const at = String(now());
    for (const [userId, count] of tracker.entries()) {
      here.add(userId);
      ops.push(link.command("HSET", [userKey(userId), inst, String(count)]));
      ops.push(link.command("SET", [seenKey(userId), at, "EX", SEEN_TTL_S]));
    }
    for (const userId of written) {
      if (!here.has(userId)) ops.push(link.command("HDEL", [userKey(userId), inst]));
    }
    written.clear();
    for (const u of here) written.add(u);
    try {
      await Promise.all(ops);
    } catch (err) {
      failed("resync")(err);
    }
  };

  const heartbeat = async () => {
    if (!link.up) return;
    try {
      // GET tells whether the key was there: if not, Redis forgot us (restart, long stall).
      const prior = await link.command("SET", [instKey, "1", "EX", ttl, "GET"]);
      if (prior === null || dirty) await resync();
    } catch (err) {
      failed("heartbeat")(err);
    }
  };

  link.onUp(() => {
    resync().catch(failed("resync"));
  });
  const timer = setInterval(heartbeat, Math.max(1000, (opts.ttlS * 1000) / 3));
  // The link's first connect happened before this hook existed.
  if (link.up) resync().catch(failed("resync"));

  return {
    resync,

    connected(userId, at) {
      tracker.connected(userId);
      touchLocal(userId, at);
      written.add(userId);
      if (!link.up) {
        dirty = true;
        return;
      }
      link.command("HINCRBY", [userKey(userId), inst, "1"]).catch(failed("connect"));
      link.command("SET", [seenKey(userId), String(at), "EX", SEEN_TTL_S]).catch(failed("seen"));
    },

    async disconnected(userId, at) {
      const { wentOffline: goneHere } = tracker.disconnected(userId);
      touchLocal(userId, at);
      if (!link.up) {
        dirty = true;
        return { wentOffline: goneHere };
      }
      try {
        const elsewhere = await link.command("EVAL", [
          DISCONNECT,
          "2",
          userKey(userId),
          seenKey(userId),
          inst,
          String(at),
          instPrefix,
          SEEN_TTL_S,
        ]);
        if (goneHere) written.delete(userId);
        return { wentOffline: goneHere && Number(elsewhere) === 0 };
      } catch (err) {
        failed("disconnect")(err);
        return { wentOffline: goneHere };
      }
    },

    async status(userId) {
      if (tracker.isOnline(userId)) return { online: true, lastSeen: now() };
      const local = store.lastSeen(userId);
      if (!link.up) return { online: false, lastSeen: local };
      try {
        const reply = (await link.command("EVAL", [
          STATUS,
          "2",
          userKey(userId),
          seenKey(userId),
          instPrefix,
        ])) as [number, string];
        const online = Number(reply[0]) === 1;
        const remote = reply[1] ? Number(reply[1]) : null;
        if (online) return { online, lastSeen: now() };
        const lastSeen = remote === null ? local : local === null ? remote : Math.max(local, remote);
        return { online, lastSeen };
      } catch {
        return { online: false, lastSeen: local };
      }
    },

    connections: (userId) => tracker.connections(userId),

    get localUsers() {
      return tracker.onlineUsers;
    },

    /** A clean stop takes this instance's users out of the shared view at once. */
    async close() {
      clearInterval(timer);
      if (!link.up) return;
      const ops: Array<Promise<unknown>> = [link.command("DEL", [instKey])];
      for (const userId of written) ops.push(link.command("HDEL", [userKey(userId), inst]));
      await Promise.allSettled(ops);
    },
  };
}
