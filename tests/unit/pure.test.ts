import { describe, expect, test } from "bun:test";
import { bearerFromHeader, bearerFromSubprotocol, parseCookies } from "../../src/auth/credentials.ts";
import { compileOrigins } from "../../src/auth/origin.ts";
import { validateText } from "../../src/domain/chat.ts";
import { PresenceTracker } from "../../src/domain/presence.ts";
import { KeyedBuckets, SharedRate } from "../../src/domain/rate.ts";
import { AppError } from "../../src/errors.ts";
import { SingleFlightCache } from "../../src/identity/cache.ts";
import { conversationIdFor, createObjectIdGenerator, OBJECT_ID_RE } from "../../src/ids.ts";
import { createLogger, redactText } from "../../src/log.ts";
import { Counter } from "../../src/metrics.ts";
import { isoTime } from "../../src/protocol/wire.ts";

describe("object ids", () => {
  test("strictly increase, even when the clock stands still or goes back", () => {
    let t = 1_700_000_000_000;
    const next = createObjectIdGenerator(() => t);
    const ids: string[] = [];
    for (let i = 0; i < 50_000; i++) {
      if (i === 20_000) t -= 5_000; // clock stepped back
      ids.push(next());
    }
    for (const id of ids) expect(OBJECT_ID_RE.test(id)).toBe(true);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
  });

  test("conversation ids are derived from the triple alone", () => {
    expect(conversationIdFor(5, 10, 15)).toBe(conversationIdFor(5, 10, 15));
    expect(conversationIdFor(5, 10, 15)).not.toBe(conversationIdFor(5, 15, 10));
    expect(OBJECT_ID_RE.test(conversationIdFor(1, 2, 3))).toBe(true);
  });
});

describe("isoTime", () => {
  test("is toISOString for every millisecond of a second, across seconds, and before 1970", () => {
    const base = Date.UTC(2026, 11, 1, 23, 59, 58);
    const times = [
      ...Array.from({ length: 2_500 }, (_, i) => base + i),
      0,
      -1,
      -1_001,
      base,
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
    ];
    for (const ms of times) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });
});

describe("counter labels", () => {
  test("each value keeps its own count, past the memo of keys too, and unsafe characters are escaped", () => {
    const c = new Counter("t_total", "test");
    for (let i = 0; i < 600; i++) c.inc({ code: `v${i % 300}` });
    c.inc({ code: 'a"b' });
    c.inc({ code: 'a"b' }, 2);
    c.inc();
    expect(c.get({ code: "v0" })).toBe(2);
    expect(c.get({ code: "v299" })).toBe(2);
    expect(c.get({ code: 'a"b' })).toBe(3);
    expect(c.get()).toBe(1);
    const text = c.render();
    expect(text).toContain('t_total{code="v299"} 2');
    expect(text).toContain('t_total{code="a_b"} 3');
    expect(text).toContain("t_total 1");
  });

  test("two labels are keyed in name order, whatever order they come in", () => {
    const c = new Counter("t2_total", "test");
    c.inc({ b: "2", a: "1" });
    c.inc({ a: "1", b: "2" });
    expect(c.get({ a: "1", b: "2" })).toBe(2);
    expect(c.render()).toContain('t2_total{a="1",b="2"} 2');
  });
});

describe("validateText", () => {
  test.each([
    ["  hi  ", 10, "hi"],
    ["😀😀", 2, "😀😀"],
  ])("%p (max %d) → %p", (raw, max, want) => {
    expect(validateText(raw, max)).toBe(want);
  });
  test.each([
    ["   ", 10, "empty"],
    ["abc", 2, "too_long"],
    ["😀😀😀", 2, "too_long"],
  ])("%p (max %d) is refused with %s", (raw, max, code) => {
    expect(() => validateText(raw, max)).toThrow(AppError);
    try {
      validateText(raw, max);
    } catch (e) {
      expect((e as AppError).code).toBe(code);
    }
  });
});

describe("token buckets", () => {
  test("a shared rate fills and drains each level on its own", () => {
    let t = 0;
    const rate = new SharedRate(2, 3, () => t);
    const a = rate.full();
    const b = rate.full();
    expect([rate.take(a), rate.take(a), rate.take(a), rate.take(a)]).toEqual([true, true, true, false]);
    expect(rate.take(b)).toBe(true);
    t += 500;
    expect(rate.take(a)).toBe(true);
    expect(rate.take(a)).toBe(false);
    t += 10_000;
    expect([rate.take(b), rate.take(b), rate.take(b), rate.take(b)]).toEqual([true, true, true, false]);
  });
  test("keyed buckets are independent and say when to retry", () => {
    let t = 0;
    const k = new KeyedBuckets(1, 1, () => t);
    expect(k.take("a").ok).toBe(true);
    const refused = k.take("a");
    expect(refused.ok).toBe(false);
    expect(refused.retryAfterS).toBeGreaterThanOrEqual(1);
    expect(k.take("b").ok).toBe(true);
    t += 1000;
    expect(k.take("a").ok).toBe(true);
  });
  test("a sweep forgets the refilled buckets and keeps a drained one", () => {
    let t = 0;
    const k = new KeyedBuckets<number>(1, 2, () => t);
    expect([k.take(0).ok, k.take(0).ok, k.take(0).ok]).toEqual([true, true, false]);
    t = 1500;
    for (let key = 1; key <= 50_001; key++) k.take(key);
    expect(k.take(1).ok).toBe(true); // key 1 is empty now
    t = 2500; // 2.5 s after key 0's last use (a full refill takes 2 s), 1 s after the others'.
    k.take(50_002); // over 50,000 keys: sweeps
    expect(k.size).toBe(50_002); // key 0 forgotten, 50,002 added
    expect(k.take(1).ok).toBe(true);
    expect(k.take(1).ok).toBe(false); // kept: 1 s refilled one token
  });
});

describe("presence tracker", () => {
  test("several connections count once", () => {
    const p = new PresenceTracker();
    expect(p.connected(1).cameOnline).toBe(true);
    expect(p.connected(1).cameOnline).toBe(false);
    expect(p.disconnected(1).wentOffline).toBe(false);
    expect(p.isOnline(1)).toBe(true);
    expect(p.disconnected(1).wentOffline).toBe(true);
    expect(p.isOnline(1)).toBe(false);
    expect(p.disconnected(1).wentOffline).toBe(false);
  });
});

describe("credentials", () => {
  test.each([
    ["Bearer abc.def.ghi", "abc.def.ghi"],
    ["bearer   tok", "tok"],
    ["Basic xyz", undefined],
    ["Bearer", undefined],
  ])("Authorization %p → %p", (h, want) => {
    expect(bearerFromHeader(h)).toBe(want);
  });
  test.each([
    ["bearer, abc", "abc"],
    ["chat, bearer, abc", "abc"],
    ["bearer", undefined],
    ["abc", undefined],
  ])("Sec-WebSocket-Protocol %p → %p", (h, want) => {
    expect(bearerFromSubprotocol(h)).toBe(want);
  });
  test("cookies: first value wins, quotes removed, junk ignored", () => {
    expect(parseCookies('device_id="d1"; a=1; device_id=d2; junk; =x')).toEqual({ device_id: "d1", a: "1" });
  });
});

describe("origin allow-list", () => {
  const allowed = compileOrigins(["https://school.example", "https://*.edu.example"]);
  test.each([
    [null, true],
    ["https://school.example", true],
    ["HTTPS://SCHOOL.EXAMPLE", true],
    ["https://a.edu.example", true],
    ["https://edu.example", false],
    ["http://a.edu.example", false],
    ["https://school.example.evil", false],
    ["https://evil.example", false],
  ])("%p → %p", (origin, want) => {
    expect(allowed(origin)).toBe(want);
  });
  test("unset allows any", () => {
    expect(compileOrigins(undefined)("https://anything.test")).toBe(true);
  });
});

describe("single-flight cache", () => {
  test("concurrent misses make one call; failures are not cached", async () => {
    let calls = 0;
    const cache = new SingleFlightCache<number>(1000);
    const load = async () => {
      calls++;
      await Bun.sleep(5);
      return 42;
    };
    const results = await Promise.all(Array.from({ length: 20 }, () => cache.get("k", load)));
    expect(results.every((r) => r === 42)).toBe(true);
    expect(calls).toBe(1);
    await expect(cache.get("bad", async () => Promise.reject(new Error("down")))).rejects.toThrow("down");
    expect(await cache.get("bad", async () => 7)).toBe(7);
  });
  test("entries expire", async () => {
    let t = 0;
    let calls = 0;
    const cache = new SingleFlightCache<number>(100, 10, () => t);
    await cache.get("k", async () => ++calls);
    await cache.get("k", async () => ++calls);
    t = 101;
    await cache.get("k", async () => ++calls);
    expect(calls).toBe(2);
  });
});

describe("log redaction", () => {
  const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxMH0.c2lnbmF0dXJl";
  test("tokens never reach a line", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "debug", write: (l) => lines.push(l) });
    log.info("upgrade", {
      url: `/ws?lesson_id=5&token=${jwt}`,
      token: jwt,
      headers: { authorization: `Bearer ${jwt}` },
    });
    log.error("failed", { error: new Error(`bad token ${jwt}`) });
    for (const line of lines) expect(line).not.toContain(jwt);
    expect(lines[0]).toContain("lesson_id=5");
  });
  test("redactText keeps the rest", () => {
    expect(redactText("a=1&token=secret&b=2")).toBe("a=1&token=[redacted]&b=2");
  });
});
