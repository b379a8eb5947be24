import { expect, test } from "bun:test";
import { createRedisBus } from "../../src/bus/redis.ts";
import type { RedisLink } from "../../src/bus/redis-link.ts";
import { silentLogger } from "../../src/log.ts";
import { Registry } from "../../src/metrics.ts";

/** The bus's envelope rules, with a stand-in link that records what would go to Redis. */

function fakeLink() {
  const sent: Array<{ channel: string; message: string }> = [];
  const up: Array<() => void> = [];
  const link: RedisLink = {
    up: true,
    reconnects: 0,
    command: async () => null,
    publish: async (channel, message) => {
      sent.push({ channel, message });
    },
    subscribe: async () => {},
    unsubscribe: () => {},
    onUp: (h) => up.push(h),
    onDown: () => {},
    close: async () => {},
  };
  return {
    link,
    sent,
    restore: () => {
      for (const h of up) h();
    },
  };
}

function setup(accept: Parameters<typeof createRedisBus>[0]["accept"] = () => true) {
  const { link, sent, restore } = fakeLink();
  const delivered: Array<[string, string]> = [];
  const bus = createRedisBus({
    link,
    prefix: "p:",
    instanceId: "A",
    deliver: (topic, frame) => delivered.push([topic, frame]),
    accept,
    logger: silentLogger,
    registry: new Registry(),
  });
  return { bus, sent, delivered, restore };
}

const conv = "0123456789abcdef01234567";
const envelope = (o: string, f: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ o, f, ...extra });

test("a publish is delivered here at once and sent to Redis with its origin", () => {
  const { bus, sent, delivered } = setup();
  bus.publish(conv, '{"type":"typing"}', 15);
  expect(delivered).toEqual([[`c:${conv}:u:15`, '{"type":"typing"}']]);
  expect(sent).toEqual([{ channel: `p:c:${conv}`, message: envelope("A", '{"type":"typing"}', { u: 15 }) }]);
});

test("own envelopes, malformed ones and unwatched conversations are not delivered", async () => {
  const { bus, delivered } = setup();
  await bus.watch(conv);
  bus.receive(`p:c:${conv}`, envelope("A", "{}"));
  bus.receive(`p:c:${conv}`, "not json");
  bus.receive(`p:c:${conv}`, JSON.stringify({ o: "B" }));
  bus.receive(`p:c:${"f".repeat(24)}`, envelope("B", "{}"));
  expect(delivered).toEqual([]);
  bus.receive(`p:c:${conv}`, envelope("B", '{"type":"typing"}'));
  expect(delivered).toEqual([[`c:${conv}`, '{"type":"typing"}']]);
  bus.unwatch(conv);
  bus.receive(`p:c:${conv}`, envelope("B", '{"type":"typing"}'));
  expect(delivered).toHaveLength(1);
});

test("a frame waiting for its local commit holds back the ones after it", async () => {
  let release!: (v: boolean) => void;
  const gate = new Promise<boolean>((r) => {
    release = r;
  });
  const { bus, delivered } = setup((_, frame) => (frame === "first" ? gate : true));
  await bus.watch(conv);
  bus.receive(`p:c:${conv}`, envelope("B", "first"));
  bus.receive(`p:c:${conv}`, envelope("B", "second"));
  await Bun.sleep(10);
  expect(delivered).toEqual([]);
  release(true);
  await Bun.sleep(10);
  expect(delivered.map(([, f]) => f)).toEqual(["first", "second"]);
});

test("after the link returns, durable frames are replayed and marked as such", async () => {
  const { bus, sent, restore } = setup();
  bus.publish(conv, '{"type":"message","id":"x"}');
  bus.publish(conv, '{"type":"typing"}');
  sent.length = 0;
  restore();
  const replays = sent.filter((s) => s.channel === `p:c:${conv}`).map((s) => JSON.parse(s.message));
  expect(replays).toEqual([{ o: "A", f: '{"type":"message","id":"x"}', r: 1 }]);
  expect(sent.some((s) => s.channel === "p:ctl")).toBe(true);
  await bus.close();
});
