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
 * Every command and script touches one key, so the same code runs on a Redis Cluster, where
 * each key may live on another node: the disconnect script answers which instances still
 * count the user, and their heartbeats are asked one by one. A reader that finds a dead
 * instance's field removes it; if that instance was just coming back, it may remove a field
 * the instance had rewritten a moment before, so every resync is followed by one more on the
 * next heartbeat.
 */

/** Takes one connection off the count; answers the instances that still count the user. */
const DISCONNECT = `
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
local out = {}
local f = redis.call('HGETALL', KEYS[1])
for i = 1, #f, 2 do
  if tonumber(f[i + 1]) > 0 then out[#out + 1] = f[i] end
end
return out`;

/** HGETALL answers a map over RESP3 (Bun's client) and a flat list over RESP2 (ioredis). */
function fieldsOf(reply: unknown): Array<[string, string]> {
  if (Array.isArray(reply)) {
    const out: Array<[string, string]> = [];
    for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), String(reply[i + 1])]);
    return out;
  }
  if (reply && typeof reply === "object") return Object.entries(reply).map(([k, v]) => [k, String(v)]);
  return [];
}

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

export function createRedisPresence(
  opts: RedisPresenceOptions,
): Presence & { resync(again?: boolean): Promise<void> } {
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

  const alive = async (instance: string) =>
    instance === inst || Number(await link.command("EXISTS", [`${instPrefix}${instance}`])) === 1;

  const failed = (what: string) => (err: unknown) => {
    dirty = true;
    logger.debug("presence write to redis failed; will resync", { what, error: String(err) });
  };

  /** `again`: schedule one more pass for the next heartbeat (see the race above). */
  const resync = async (again = true) => {
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
      if (again) dirty = true;
    } catch (err) {
      failed("resync")(err);
    }
  };

  const heartbeat = async () => {
    if (!link.up) return;
    try {
      // GET tells whether the key was there: if not, Redis forgot us (restart, long stall).
      const prior = await link.command("SET", [instKey, "1", "EX", ttl, "GET"]);
      if (prior === null) await resync();
      else if (dirty) await resync(false);
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
        link.command("SET", [seenKey(userId), String(at), "EX", SEEN_TTL_S]).catch(failed("seen"));
        const counting = (await link.command("EVAL", [DISCONNECT, "1", userKey(userId), inst])) as string[];
        const elsewhere = (await Promise.all(counting.map(alive))).some(Boolean);
        if (goneHere) written.delete(userId);
        return { wentOffline: goneHere && !elsewhere };
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
        const [hash, seen] = await Promise.all([
          link.command("HGETALL", [userKey(userId)]),
          link.command("GET", [seenKey(userId)]),
        ]);
        const fields = fieldsOf(hash);
        const live = await Promise.all(fields.map(([instance]) => alive(instance)));
        let online = false;
        fields.forEach(([instance, count], i) => {
          if (!live[i]) {
            // Tidying only: a reader racing a returning instance is repaired by its next resync.
            link.command("HDEL", [userKey(userId), instance]).catch(() => undefined);
          } else if (Number(count) > 0) online = true;
        });
        const remote = seen ? Number(seen) : null;
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
