import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { notificationIdFor } from "../../src/ids.ts";
import {
  type PublishStandIn,
  type ReceivedNotification,
  startPublishStandIn,
  startStreamReader,
  testStream,
} from "../helpers/notification-service.ts";
import { removePrefix, requireRedis, SHARED_REDIS_URL, testPrefix } from "../helpers/redis.ts";
import { spawnService, startTestService, type TestService, tempDir } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";
import type { TestSocket } from "../helpers/ws-client.ts";

/**
 * Offline notifications end to end: the real service (in process, or a child for kill -9) sends
 * to an HTTP stand-in of the platform's `POST /publish` and to a Redis stream read with the
 * platform's consumer group. Student 15 writes to mentor 10 in lesson 5, who is not connected.
 */

const DELAY_S = 0.3;
const DELAY_MS = DELAY_S * 1000;
/** Long enough past the delay that a second notification, if any were coming, would have come. */
const SETTLE_MS = DELAY_MS * 4 + 500;

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

beforeAll(() => requireRedis());

function notifyEnv(standIn: PublishStandIn, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NOTIFY_DELAY_S: String(DELAY_S),
    NOTIFY_URL: standIn.url,
    NOTIFY_TOKEN: "platform-token",
    NOTIFY_RETRY_MAX_MS: "300",
    ...extra,
  };
}

function publishStandIn(): PublishStandIn {
  const s = startPublishStandIn({ token: "platform-token" });
  cleanups.push(() => s.close());
  return s;
}

async function service(env: Record<string, string>): Promise<TestService> {
  const svc = await startTestService({ env });
  cleanups.push(() => svc.stop());
  return svc;
}

const sockets: TestSocket[] = [];
cleanups.push(() => {
  for (const s of sockets) s.close();
});
async function student(svc: TestService): Promise<TestSocket> {
  const s = await svc.connect(15, { lesson_id: 5 });
  sockets.push(s);
  await s.next("ready");
  return s;
}
async function mentor(svc: TestService): Promise<TestSocket> {
  const s = await svc.connect(10, { lesson_id: 5, student_id: 15 });
  sockets.push(s);
  await s.next("ready");
  return s;
}
async function say(s: TestSocket, text: string): Promise<string> {
  s.send({ type: "message", text, client_id: crypto.randomUUID() });
  return String((await s.next("ack")).id);
}

describe("offline notifications", () => {
  test("recipient offline: exactly one notification after the delay, with the platform's fields, on both sinks", async () => {
    const standIn = publishStandIn();
    const stream = testStream();
    const reader = await startStreamReader({ stream });
    cleanups.push(() => reader.close());
    const svc = await service(
      notifyEnv(standIn, { NOTIFY_STREAM: stream, NOTIFY_REDIS_URL: SHARED_REDIS_URL }),
    );
    const s = await student(svc);
    const sentAt = Date.now();
    const messageId = await say(s, "  Is question 3\n due tomorrow? I could not find it in the notes.");
    await Bun.sleep(DELAY_MS / 2);
    expect(standIn.received).toEqual([]);
    await waitUntil(() => standIn.received.length > 0, { message: "the POST", timeoutMs: 5000 });
    const arrivedAfter = Date.now() - sentAt;
    expect(arrivedAfter).toBeGreaterThanOrEqual(DELAY_MS - 50);
    await waitUntil(
      async () => {
        await reader.read(200);
        return reader.received.length > 0;
      },
      { message: "the stream entry", timeoutMs: 5000 },
    );
    await Bun.sleep(SETTLE_MS);
    await reader.read(50);

    expect(standIn.refused).toEqual([]);
    expect(reader.refused).toEqual([]);
    expect(standIn.received).toHaveLength(1);
    expect(reader.received).toHaveLength(1);
    const n = standIn.received[0]!;
    const conversationId = String(n.metadata.conversation_id);
    expect(n).toEqual({
      id: notificationIdFor(messageId),
      rawId: String(notificationIdFor(messageId)),
      user_id: 10,
      type: "chat_message",
      title: "New message from your student",
      message: "Is question 3 due tomorrow? I could not find it in the notes.",
      metadata: {
        conversation_id: conversationId,
        lesson_id: 5,
        sender_id: 15,
        message_id: messageId,
        unread_count: 1,
      },
      action_url: "/lessons/5/chat?student_id=15",
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    } as unknown as ReceivedNotification);
    expect(Number.isSafeInteger(n.id)).toBe(true);
    // The same notification on both sinks: one id for the platform to deduplicate on.
    expect(reader.received[0]).toEqual(n);
    console.log(`payload: ${JSON.stringify({ ...n, rawId: undefined })}`);

    const ready = (await (await svc.get("/readyz")).json()) as {
      checks: { notify: Record<string, unknown> };
    };
    expect(ready.checks.notify).toMatchObject({ ok: true, configured: true, backlog: 0, sent: 2 });
    expect(ready.checks.notify.last_success_at).toEqual(expect.any(String));
    const metrics = await (await svc.get("/metrics")).text();
    expect(metrics).toContain('chat_notify_sent_total{sink="http"} 1');
    expect(metrics).toContain('chat_notify_sent_total{sink="stream"} 1');
    expect(metrics).toContain("chat_notify_backlog 0");
  });

  test("ten messages make one notification with unread_count 10; text off quotes nothing", async () => {
    const standIn = publishStandIn();
    const svc = await service(notifyEnv(standIn, { NOTIFY_INCLUDE_TEXT: "false" }));
    const s = await student(svc);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await say(s, `secret part ${i}`));
    await waitUntil(() => standIn.received.length > 0, { message: "the POST", timeoutMs: 5000 });
    await Bun.sleep(SETTLE_MS);
    expect(standIn.received).toHaveLength(1);
    const n = standIn.received[0]!;
    expect(n.metadata).toMatchObject({ unread_count: 10, message_id: ids[0] });
    expect(n.id).toBe(notificationIdFor(ids[0]!));
    expect(n.title).toBe("10 new messages from your student");
    expect(n.message).not.toContain("secret");
  });

  test("a read before the delay cancels; the next unread message starts a new cycle", async () => {
    const standIn = publishStandIn();
    const svc = await service(notifyEnv(standIn));
    const s = await student(svc);
    const first = await say(s, "hello?");
    const m = await mentor(svc);
    m.send({ type: "viewed", message_id: first });
    await m.next((f) => f.type === "viewed");
    m.close();
    await Bun.sleep(SETTLE_MS);
    expect(standIn.received).toEqual([]);

    const second = await say(s, "are you there?");
    await waitUntil(() => standIn.received.length > 0, {
      message: "the second cycle's POST",
      timeoutMs: 5000,
    });
    await Bun.sleep(SETTLE_MS);
    expect(standIn.received.map((n) => n.metadata.message_id)).toEqual([second]);
  });

  test("while sent and unread, later messages start nothing; a read ends the cycle", async () => {
    const standIn = publishStandIn();
    const svc = await service(notifyEnv(standIn));
    const s = await student(svc);
    await say(s, "one");
    await waitUntil(() => standIn.received.length === 1, { message: "the first POST", timeoutMs: 5000 });
    const later = await say(s, "two");
    await Bun.sleep(SETTLE_MS);
    expect(standIn.received).toHaveLength(1);
    const m = await mentor(svc);
    m.send({ type: "viewed", message_id: later });
    await m.next((f) => f.type === "viewed");
    m.close();
    const third = await say(s, "three");
    await waitUntil(() => standIn.received.length === 2, {
      message: "the next cycle's POST",
      timeoutMs: 5000,
    });
    expect(standIn.received[1]!.metadata).toMatchObject({ message_id: third, unread_count: 1 });
  });

  test("sink down for a while: readiness shows the backlog and failures; delivered once after it returns", async () => {
    const standIn = publishStandIn();
    const svc = await service(notifyEnv(standIn));
    await standIn.down();
    const s = await student(svc);
    const messageId = await say(s, "anyone?");
    await waitUntil(
      async () => {
        const r = (await (await svc.get("/readyz")).json()) as { checks: { notify: Record<string, number> } };
        return r.checks.notify.failures! >= 2 && r.checks.notify.backlog === 1;
      },
      { message: "failures in /readyz", timeoutMs: 5000 },
    );
    const ready = (await (await svc.get("/readyz")).json()) as {
      status?: string;
      checks: { notify: Record<string, unknown> };
    };
    expect((await svc.get("/readyz")).status).toBe(200);
    expect(ready.checks.notify).toMatchObject({ ok: false, backlog: 1, last_success_at: null });
    expect(String(ready.checks.notify.last_error)).toContain("http");
    expect(await (await svc.get("/metrics")).text()).toMatch(
      /chat_notify_failures_total\{sink="http"\} [1-9]/,
    );

    standIn.up();
    await waitUntil(() => standIn.received.length > 0, {
      message: "the POST after the sink returned",
      timeoutMs: 5000,
    });
    await Bun.sleep(SETTLE_MS);
    expect(standIn.received).toHaveLength(1);
    expect(standIn.received[0]!.id).toBe(notificationIdFor(messageId));
  });

  test("kill -9 with one pending: delivered after the restart, once", async () => {
    const standIn = publishStandIn();
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    // A delay the restart fits inside, so the entry is still pending when the process dies.
    const env = notifyEnv(standIn, { NOTIFY_DELAY_S: "1.5" });
    const first = await spawnService({ dir: dir.path, env });
    const s = await first.connect(15, { lesson_id: 5 });
    await s.next("ready");
    s.send({ type: "message", text: "before the crash", client_id: "k1" });
    const messageId = String((await s.next("ack")).id);
    expect(await first.kill("SIGKILL")).not.toBe(0);
    s.close();
    expect(standIn.received).toEqual([]);

    const second = await spawnService({ dir: dir.path, env });
    cleanups.push(() => second.stop());
    await waitUntil(() => standIn.received.length > 0, {
      message: "the POST after restart",
      timeoutMs: 10_000,
    });
    await Bun.sleep(SETTLE_MS);
    expect(standIn.received).toHaveLength(1);
    expect(standIn.received[0]).toMatchObject({ id: notificationIdFor(messageId), user_id: 10 });
  }, 60_000);
});

describe("two instances on one Redis", () => {
  async function pair(standIn: PublishStandIn, stream: string) {
    const prefix = testPrefix();
    cleanups.push(() => removePrefix(prefix));
    const env = (id: string) =>
      notifyEnv(standIn, {
        REDIS_URL: SHARED_REDIS_URL,
        REDIS_PREFIX: prefix,
        INSTANCE_ID: id,
        NOTIFY_STREAM: stream,
      });
    return { a: await service(env("A")), b: await service(env("B")) };
  }

  test("the sender writes through both: the recipient is notified once", async () => {
    const standIn = publishStandIn();
    const stream = testStream();
    const reader = await startStreamReader({ stream });
    cleanups.push(() => reader.close());
    const { a, b } = await pair(standIn, stream);
    const onA = await student(a);
    const onB = await student(b);
    const first = await say(onA, "from the laptop");
    await say(onB, "from the phone");
    await Bun.sleep(DELAY_MS + SETTLE_MS);
    await reader.read(100);
    expect(standIn.received).toHaveLength(1);
    expect(reader.received).toHaveLength(1);
    expect(standIn.received[0]!.id).toBe(notificationIdFor(first));
    expect(reader.received[0]!.id).toBe(standIn.received[0]!.id);
  });

  test("a read on the other instance cancels, even where the accepting instance lost the socket", async () => {
    const standIn = publishStandIn();
    const { a, b } = await pair(standIn, testStream());
    const m = await mentor(b);
    const onA = await student(a);
    const messageId = await say(onA, "please read me on B");
    await m.next((f) => f.type === "message" && f.id === messageId);
    // A no longer listens to the conversation, so the relayed read mark cannot reach it: only
    // the claim key in Redis tells A's notifier that the message was read.
    onA.close();
    await Bun.sleep(100);
    m.send({ type: "viewed", message_id: messageId });
    await m.next((f) => f.type === "viewed");
    await Bun.sleep(DELAY_MS + SETTLE_MS);
    expect(standIn.received).toEqual([]);
    const metrics = await (await a.get("/metrics")).text();
    expect(metrics).toContain('chat_notify_dropped_total{reason="read"} 1');
  });
});
