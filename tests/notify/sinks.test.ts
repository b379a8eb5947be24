import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildNotification } from "../../src/domain/notification.ts";
import { notificationIdFor } from "../../src/ids.ts";
import { createHttpSink, createStreamSink } from "../../src/jobs/notify-sinks.ts";
import { freePort } from "../helpers/net.ts";
import {
  parsePlatformNotification,
  startPublishStandIn,
  startStreamReader,
  testStream,
} from "../helpers/notification-service.ts";
import { ownRedis, requireRedis, SHARED_REDIS_URL } from "../helpers/redis.ts";

/** The two sinks against real servers: the shared Redis with a consumer group, and an HTTP stand-in. */

const sample = () =>
  buildNotification(
    {
      id: notificationIdFor("65a1b2c3d4e5f60718293a4b"),
      conversation: { id: "c0ffee", lessonId: 5, mentorId: 10, studentId: 15 },
      senderId: 15,
      recipientId: 10,
      first: { id: "65a1b2c3d4e5f60718293a4b", text: "Is question 3 due tomorrow?" },
      unreadCount: 2,
      at: Date.parse("2026-12-01T23:00:00Z"),
    },
    { includeText: true, actionUrl: "/lessons/{lesson_id}/chat?student_id={student_id}" },
  );

beforeAll(() => requireRedis());

describe("the stand-in reads like the platform's service", () => {
  const good = JSON.stringify(sample());
  test("accepts the service's own example shape", () => {
    const n = parsePlatformNotification(good);
    expect(n.id).toBe(sample().id);
    expect(n.rawId).toBe(String(sample().id));
  });
  test.each([
    ["a string id", good.replace(/"id":(\d+)/, '"id":"$1"')],
    ["a fractional id", good.replace(/"id":(\d+)/, '"id":$1.5')],
    ["an exponent id", good.replace(/"id":(\d+)/, '"id":1e3')],
    ["an id past 2^63-1", good.replace(/"id":(\d+)/, '"id":9223372036854775808')],
    ["a string user_id", good.replace(/"user_id":(\d+)/, '"user_id":"$1"')],
    ["a numeric title", good.replace(/"title":"[^"]*"/, '"title":5')],
    ["no metadata", good.replace(/,"metadata":\{[^}]*\}/, "")],
  ])("refuses %s", (_, body) => {
    expect(body).not.toBe(good);
    expect(() => parsePlatformNotification(body)).toThrow();
  });
  test("takes the largest int64", () => {
    expect(() =>
      parsePlatformNotification(good.replace(/"id":(\d+)/, '"id":9223372036854775807')),
    ).not.toThrow();
  });
});

describe("HTTP sink", () => {
  const standIn = startPublishStandIn({ token: "s3cret-token" });
  afterAll(() => standIn.close());

  test("POSTs the notification with the bearer token; the stand-in parses it", async () => {
    const sink = createHttpSink({ url: standIn.url, token: "s3cret-token", timeoutMs: 2000 });
    await sink.send(sample());
    expect(standIn.refused).toEqual([]);
    expect(standIn.received.at(-1)).toMatchObject({ id: sample().id, user_id: 10, type: "chat_message" });
  });

  test("a refusal (401, 400) or a closed port is an error, so the caller retries", async () => {
    const wrongToken = createHttpSink({ url: standIn.url, token: "wrong", timeoutMs: 2000 });
    await expect(wrongToken.send(sample())).rejects.toThrow(/401/);
    const bad = createHttpSink({ url: standIn.url, token: "s3cret-token", timeoutMs: 2000 });
    await expect(bad.send({ ...sample(), id: 1.5 })).rejects.toThrow(/400/);
    const nobody = createHttpSink({ url: `http://127.0.0.1:${freePort()}/publish`, timeoutMs: 2000 });
    await expect(nobody.send(sample())).rejects.toThrow();
  });

  test("a server that never answers times out", async () => {
    const hang = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Promise<Response>(() => {}) });
    try {
      const sink = createHttpSink({ url: `http://127.0.0.1:${hang.port}/publish`, timeoutMs: 300 });
      const started = Date.now();
      await expect(sink.send(sample())).rejects.toThrow(/longer than 300 ms/);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await hang.stop(true);
    }
  });
});

describe("Redis stream sink", () => {
  test("XADD data=<json>; a notif_group consumer reads it with the service's types", async () => {
    const stream = testStream();
    const reader = await startStreamReader({ stream });
    const sink = createStreamSink({ url: SHARED_REDIS_URL, stream, timeoutMs: 2000 });
    try {
      await sink.send(sample());
      const got = await reader.read(2000);
      expect(reader.refused).toEqual([]);
      expect(got).toHaveLength(1);
      expect(got[0]).toMatchObject({
        id: sample().id,
        user_id: 10,
        metadata: { unread_count: 2, lesson_id: 5, sender_id: 15 },
      });
    } finally {
      await sink.close();
      await reader.close();
    }
  });

  test("fails while Redis is down and works again, on a fresh connection, once it is back", async () => {
    const redis = await ownRedis();
    const stream = testStream();
    const sink = createStreamSink({ url: redis.url, stream, timeoutMs: 500 });
    try {
      await sink.send(sample());
      await redis.kill();
      await expect(sink.send(sample())).rejects.toThrow();
      await redis.start();
      const reader = await startStreamReader({ stream, url: redis.url });
      await sink.send(sample());
      expect(await reader.read(2000)).toHaveLength(1);
      await reader.close();
    } finally {
      await sink.close();
      await redis.kill();
    }
  });
});
