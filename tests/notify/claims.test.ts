import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRedisClaims } from "../../src/bus/notify-claims.ts";
import { createRedisLink } from "../../src/bus/redis-link.ts";
import { silentLogger } from "../../src/log.ts";
import { removePrefix, requireRedis, SHARED_REDIS_URL, testPrefix } from "../helpers/redis.ts";

/** The claim and read scripts on the shared Redis, as two instances would call them. */

const prefix = testPrefix();
let link: Awaited<ReturnType<typeof createRedisLink>>;
beforeAll(async () => {
  await requireRedis();
  link = await createRedisLink({ url: SHARED_REDIS_URL, logger: silentLogger, onMessage: () => {} });
});
afterAll(async () => {
  await link.close();
  await removePrefix(prefix);
});

const T1 = "6900000000000000000000a1";
const T2 = "6900000000000000000000b2";
const T3 = "6900000000000000000000c3";

describe("notification claims", () => {
  test("the first claim wins; a retry of it still wins; another cycle's claim coalesces", async () => {
    const a = createRedisClaims({ redis: link, prefix });
    const b = createRedisClaims({ redis: link, prefix });
    const results = await Promise.all([a.claim("c1", 10, 111, T1), b.claim("c1", 10, 222, T2)]);
    const winner = results[0] === "ours" ? 111 : 222;
    expect([...results].sort()).toEqual(["other", "ours"]);
    expect(await a.claim("c1", 10, winner, winner === 111 ? T1 : T2)).toBe("ours");
  });

  test("a read covering the first message ends the cycle; the next unread message claims anew", async () => {
    const c = createRedisClaims({ redis: link, prefix });
    expect(await c.claim("c2", 10, 1, T1)).toBe("ours");
    await c.read("c2", 10, T2);
    expect(await c.claim("c2", 10, 2, T2)).toBe("read");
    expect(await c.claim("c2", 10, 3, T3)).toBe("ours");
    expect(await c.claim("c2", 10, 4, T3)).toBe("other");
  });

  test("a read short of a sent cycle's first message leaves it open; an older read never wins", async () => {
    const c = createRedisClaims({ redis: link, prefix });
    expect(await c.claim("c3", 10, 1, T2)).toBe("ours");
    await c.read("c3", 10, T1);
    expect(await c.claim("c3", 10, 9, T3)).toBe("other");
    await c.read("c3", 10, T3);
    await c.read("c3", 10, T1);
    expect(await c.claim("c3", 10, 9, T3)).toBe("read");
  });

  test("keys are per recipient and expire", async () => {
    const c = createRedisClaims({ redis: link, prefix, ttlS: 60 });
    expect(await c.claim("c4", 10, 1, T1)).toBe("ours");
    expect(await c.claim("c4", 15, 2, T1)).toBe("ours");
    const ttl = Number(await link.command("TTL", [`${prefix}notify:c4:10`]));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);
  });
});
