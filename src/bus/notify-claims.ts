/**
 * Cross-instance "once" for offline notifications. Each instance schedules notifications for the
 * messages it accepted, so two instances can each have one pending for the same conversation (the
 * sender wrote through both). Before sending, an instance claims the (conversation, recipient)
 * cycle in Redis; a read mark accepted anywhere is written to the same key. One key holds either
 *
 *   "sent <notification id> <first message id>"  a notification went out and the cycle is open
 *   "read <message id>"                           the recipient read up to that message
 *
 * and one script decides a claim atomically: a read covering our first message means drop; a
 * sent by another notification means the recipient was told already (coalesce, drop); ours (a
 * retry) or nothing means send. Message ids are ObjectIds, compared as strings like the store's
 * read-up-to rule. Keys expire after `ttlS`, bounding how long an unread cycle holds later ones.
 */

export type ClaimResult = "ours" | "other" | "read";

export interface NotifyClaims {
  claim(
    conversationId: string,
    recipientId: number,
    notificationId: number,
    firstMessageId: string,
  ): Promise<ClaimResult>;
  /** The recipient read up to `upToId` (accepted on this instance). */
  read(conversationId: string, recipientId: number, upToId: string): Promise<void>;
}

const CLAIM = `
local v = redis.call('GET', KEYS[1])
if v then
  local kind, a = string.match(v, '^(%a+) (%S+)')
  if kind == 'read' and a >= ARGV[2] then return 'read' end
  if kind == 'sent' then
    if a == ARGV[1] then return 'ours' end
    return 'other'
  end
end
redis.call('SET', KEYS[1], 'sent ' .. ARGV[1] .. ' ' .. ARGV[2], 'EX', ARGV[3])
return 'ours'`;

// A read that does not reach a sent cycle's first message leaves the cycle open; an older read
// never replaces a newer one.
const READ = `
local v = redis.call('GET', KEYS[1])
if v then
  local kind, a, first = string.match(v, '^(%a+) (%S+) ?(%S*)')
  if kind == 'sent' and ARGV[1] < first then return 0 end
  if kind == 'read' and ARGV[1] <= a then return 0 end
end
redis.call('SET', KEYS[1], 'read ' .. ARGV[1], 'EX', ARGV[2])
return 1`;

export interface RedisCommand {
  command(name: string, args: string[]): Promise<unknown>;
}

export function createRedisClaims(opts: {
  redis: RedisCommand;
  prefix: string;
  ttlS?: number;
}): NotifyClaims {
  const ttl = String(opts.ttlS ?? 7 * 24 * 3600);
  const key = (conversationId: string, recipientId: number) =>
    `${opts.prefix}notify:${conversationId}:${recipientId}`;
  return {
    async claim(conversationId, recipientId, notificationId, firstMessageId) {
      const r = await opts.redis.command("EVAL", [
        CLAIM,
        "1",
        key(conversationId, recipientId),
        String(notificationId),
        firstMessageId,
        ttl,
      ]);
      if (r !== "ours" && r !== "other" && r !== "read")
        throw new Error(`claim script answered ${String(r)}`);
      return r;
    },
    async read(conversationId, recipientId, upToId) {
      await opts.redis.command("EVAL", [READ, "1", key(conversationId, recipientId), upToId, ttl]);
    },
  };
}

/** One instance: its own SQLite sees every read, so the local cycle is the whole truth. */
export const localClaims: NotifyClaims = {
  claim: async () => "ours",
  read: async () => {},
};

/** The claims after the fan-out closed at shutdown: due notifications wait for the next start. */
export class ClaimsClosed extends Error {
  override name = "ClaimsClosed";
}

export const closedClaims: NotifyClaims = {
  claim: async () => {
    throw new ClaimsClosed("shutting down: the notification waits for the next start");
  },
  read: async () => {},
};
