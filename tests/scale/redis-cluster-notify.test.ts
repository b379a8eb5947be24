import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Cluster } from "ioredis";
import { notificationIdFor } from "../../src/ids.ts";
import { type StreamReader, startStreamReader, testStream } from "../helpers/notification-service.ts";
import { startCluster, type TestCluster } from "../helpers/redis-cluster.ts";
import { startTestService, type TestService } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";
import type { TestSocket } from "../helpers/ws-client.ts";

/**
 * Offline notifications on a three-master Redis Cluster started by this file, with every
 * instance given the address of a node that does NOT own the stream key's slot, so each XADD
 * must be routed by the cluster client (a plain client gets MOVED). The stream is read as the
 * platform's service reads it (XREADGROUP GROUP notif_group), through a cluster client.
 * Student 15 writes to mentor 10 in lesson 5, who is not connected.
 */

const DELAY_MS = 300;
/** Long enough past the delay that a second notification, if any were coming, would have come. */
const SETTLE_MS = DELAY_MS * 4 + 500;

let cluster: TestCluster;
let clusterClient: Cluster;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  const seed = cluster.nodes[0]!;
  clusterClient = new Cluster([{ host: "127.0.0.1", port: seed.port }], { lazyConnect: true });
  await clusterClient.connect();
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  clusterClient?.disconnect();
  await cluster?.stop();
});

/** The masters that do not own `key`'s slot, asked of the cluster itself. */
async function nodesNotOwning(key: string) {
  const node = cluster.nodes[0]!;
  const slot = Number(await cluster.command(node, "CLUSTER", ["KEYSLOT", key]));
  const ranges = (await cluster.command(node, "CLUSTER", ["SLOTS"])) as Array<
    [number, number, [string, number]]
  >;
  const owner = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2][1];
  expect(owner).toEqual(expect.any(Number));
  const others = cluster.masters.filter((n) => n.port !== owner);
  expect(others).toHaveLength(2);
  return others;
}

async function clusterReader(stream: string): Promise<StreamReader> {
  const reader = await startStreamReader({
    stream,
    client: {
      send: (name, args) => clusterClient.call(name, ...args),
      // The shared client closes in afterAll.
      close: () => undefined,
    },
  });
  cleanups.push(() => reader.close());
  return reader;
}

async function service(url: string | undefined, stream: string, extra: Record<string, string> = {}) {
  const svc = await startTestService({
    env: {
      ...(url ? { REDIS_URL: url } : {}),
      NOTIFY_STREAM: stream,
      NOTIFY_DELAY_S: String(DELAY_MS / 1000),
      NOTIFY_RETRY_MAX_MS: "300",
      ...extra,
    },
  });
  cleanups.push(() => svc.stop());
  return svc;
}

async function student(svc: TestService): Promise<TestSocket> {
  const s = await svc.connect(15, { lesson_id: 5 });
  cleanups.push(() => s.close());
  await s.next("ready");
  return s;
}

async function say(s: TestSocket, text: string): Promise<string> {
  s.send({ type: "message", text, client_id: crypto.randomUUID() });
  return String((await s.next("ack")).id);
}

async function readUntilOne(reader: StreamReader) {
  await waitUntil(
    async () => {
      await reader.read(200);
      return reader.received.length > 0;
    },
    { message: "the notification on the cluster's stream", timeoutMs: 10_000 },
  );
  await Bun.sleep(SETTLE_MS);
  await reader.read(50);
}

const metricsOf = async (svc: TestService) => (await svc.get("/metrics")).text();

describe("offline notifications on a Redis Cluster", () => {
  test("instance on a node not owning the stream's slot: exactly one notification, with the platform's fields", async () => {
    const stream = testStream();
    const [elsewhere] = await nodesNotOwning(stream);
    const reader = await clusterReader(stream);
    const svc = await service(elsewhere!.url, stream, { REDIS_PREFIX: "cn1:" });
    const s = await student(svc);
    const messageId = await say(s, "Is question 3 due tomorrow?");
    await readUntilOne(reader);

    expect(reader.refused).toEqual([]);
    expect(reader.received).toHaveLength(1);
    expect(reader.received[0]).toMatchObject({
      id: notificationIdFor(messageId),
      user_id: 10,
      type: "chat_message",
      title: "New message from your student",
      message: "Is question 3 due tomorrow?",
      metadata: { lesson_id: 5, sender_id: 15, message_id: messageId, unread_count: 1 },
      action_url: "/lessons/5/chat?student_id=15",
    });
    const ready = (await (await svc.get("/readyz")).json()) as {
      checks: { notify: Record<string, unknown>; bus: { redis: { mode: string } } };
    };
    expect(ready.checks.bus.redis.mode).toBe("cluster");
    expect(ready.checks.notify).toMatchObject({ ok: true, backlog: 0, sent: 1, failures: 0 });
    const metrics = await metricsOf(svc);
    expect(metrics).toContain('chat_notify_sent_total{sink="stream"} 1');
    expect(metrics).toContain("chat_notify_unclaimed_total 0");
  }, 60_000);

  test("two instances on different nodes, the sender writing through both: one notification, claimed on the cluster", async () => {
    const stream = testStream();
    const [one, two] = await nodesNotOwning(stream);
    const reader = await clusterReader(stream);
    const prefix = "cn2:";
    const a = await service(one!.url, stream, { REDIS_PREFIX: prefix, INSTANCE_ID: "A" });
    const b = await service(two!.url, stream, { REDIS_PREFIX: prefix, INSTANCE_ID: "B" });
    const onA = await student(a);
    const onB = await student(b);
    const first = await say(onA, "from the laptop");
    await say(onB, "from the phone");
    await readUntilOne(reader);

    expect(reader.refused).toEqual([]);
    expect(reader.received).toHaveLength(1);
    expect(reader.received[0]!.id).toBe(notificationIdFor(first));
    const conversationId = String(reader.received[0]!.metadata.conversation_id);
    // The claim script ran on the cluster (had it failed, each instance would send unclaimed).
    const claim = await clusterClient.get(`${prefix}notify:${conversationId}:10`);
    expect(claim).toStartWith(`sent ${notificationIdFor(first)} `);
    const [ma, mb] = await Promise.all([metricsOf(a), metricsOf(b)]);
    for (const m of [ma, mb]) expect(m).toContain("chat_notify_unclaimed_total 0");
    expect(`${ma}\n${mb}`).toContain('chat_notify_dropped_total{reason="coalesced"} 1');
  }, 60_000);

  test("NOTIFY_REDIS_URL naming a cluster node, without a bus: the sink's own link finds the slot's owner", async () => {
    const stream = testStream();
    const [elsewhere] = await nodesNotOwning(stream);
    const reader = await clusterReader(stream);
    const svc = await service(undefined, stream, { NOTIFY_REDIS_URL: elsewhere!.url });
    const messageId = await say(await student(svc), "one instance, stream on a cluster");
    await readUntilOne(reader);
    expect(reader.refused).toEqual([]);
    expect(reader.received).toHaveLength(1);
    expect(reader.received[0]).toMatchObject({ id: notificationIdFor(messageId), user_id: 10 });
    expect(await metricsOf(svc)).toContain('chat_notify_sent_total{sink="stream"} 1');
  }, 60_000);
});
