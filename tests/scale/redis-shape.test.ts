import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { shapeFromInfo } from "../../src/bus/redis-shape.ts";
import { busState, type OwnRedis, ownRedis } from "../helpers/redis.ts";
import { startTestService, type TestService } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * What the service makes of the server it finds. Old servers cannot run here, so their INFO
 * text is given to the decision directly; the "not there yet at start" case runs for real on a
 * private redis-server that is started only after the instance.
 */

const info = (version: string, cluster: 0 | 1) =>
  `# Server\r\nredis_version:${version}\r\nredis_mode:x\r\n\n# Cluster\r\ncluster_enabled:${cluster}\r\n`;

describe("the shape of the server decides the link", () => {
  test("a single Redis 7 uses classic channels", () => {
    expect(shapeFromInfo(info("7.0.15", 0))).toEqual({
      mode: "single",
      version: "7.0.15",
      pubsub: "classic",
      notes: [],
    });
  });
  test("a cluster on 7.0 uses sharded pub/sub", () => {
    expect(shapeFromInfo(info("7.0.15", 1))).toMatchObject({ mode: "cluster", pubsub: "sharded", notes: [] });
  });
  test("a cluster on 6.2 works with classic channels and says that fan-out does not scale", () => {
    const shape = shapeFromInfo(info("6.2.14", 1));
    expect(shape).toMatchObject({ mode: "cluster", pubsub: "classic" });
    expect(shape.notes.join()).toContain("no sharded pub/sub");
  });
  test("anything older than 6.2 is refused, with the reason", () => {
    expect(shapeFromInfo(info("6.0.20", 0)).unsupported).toContain("older than 6.2");
    expect(shapeFromInfo(info("5.0.14", 1)).unsupported).toContain("older than 6.2");
  });
});

let redis: OwnRedis;
let a: TestService;

beforeAll(async () => {
  redis = await ownRedis();
  await redis.kill();
  a = await startTestService({ env: { REDIS_URL: redis.url, REDIS_PREFIX: "shape:", INSTANCE_ID: "A" } });
});

afterAll(async () => {
  await a?.stop();
  await redis?.kill();
});

test("Redis not there at start: the instance runs on its own, then finds a single Redis and joins", async () => {
  const bus = () => busState(a);
  expect(await bus()).toMatchObject({ ok: false, state: "degraded", redis: { mode: "unknown" } });

  await redis.start();
  await waitUntil(async () => (await bus()).ok, { message: "the bus is up" });
  expect(await bus()).toMatchObject({ state: "up", redis: { mode: "single", pubsub: "classic" } });

  // What was set up before the shape was known took effect: the control channel is
  // subscribed and the presence heartbeat written.
  const c = new RedisClient(redis.url, { autoReconnect: false });
  try {
    await c.connect();
    await waitUntil(
      async () => ((await c.send("PUBSUB", ["CHANNELS", "shape:ctl"])) as string[]).includes("shape:ctl"),
      { message: "control channel subscribed" },
    );
    expect(await c.send("EXISTS", ["shape:i:A"])).toBe(1);
  } finally {
    c.close();
  }
});
