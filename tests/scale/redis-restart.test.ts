import { afterAll, beforeAll, expect, test } from "bun:test";
import { busState, isMessage, type OwnRedis, ownRedis, socketPool } from "../helpers/redis.ts";
import { startTestService, type TestService } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";
import type { Frame } from "../helpers/ws-client.ts";

/**
 * Redis dies mid-chat (SIGKILL, no persistence) and comes back empty. A private redis-server
 * on a free port, so the shared one is never touched.
 */

let redis: OwnRedis;
let a: TestService;
let b: TestService;
const pool = socketPool();
const connect = pool.connect;

const env = (id: string) => ({
  REDIS_URL: redis.url,
  REDIS_PREFIX: "restart:",
  INSTANCE_ID: id,
  PRESENCE_TTL_S: "3",
});

beforeAll(async () => {
  redis = await ownRedis();
  a = await startTestService({ env: env("A") });
  b = await startTestService({ env: env("B") });
});

afterAll(async () => {
  pool.closeAll();
  await a?.stop();
  await b?.stop();
  await redis?.kill();
});

test("Redis restarted mid-chat: nothing acked is lost and the bus recovers", async () => {
  const student = await connect(b, 15, { lesson_id: 5 });
  const mentor = await connect(a, 10, { lesson_id: 5, student_id: 15 });
  // A second device of the student on A: it must keep hearing A's traffic during the outage.
  const studentOnA = await connect(a, 15, { lesson_id: 5 });

  mentor.send({ type: "message", text: "before", client_id: "b-1" });
  const before = await mentor.next("ack");
  await student.next(isMessage(before.id), 5000);

  await redis.kill();
  // Acks do not wait for Redis: sent during the outage, each is durable on A and acked.
  const during: Frame[] = [];
  for (let i = 0; i < 3; i++) {
    mentor.send({ type: "message", text: `during ${i}`, client_id: `d-${i}` });
    during.push(await mentor.next("ack", 5000));
  }
  for (const ack of during) await studentOnA.next(isMessage(ack.id), 5000);

  await waitUntil(async () => (await busState(a)).state === "degraded", {
    message: "A reports the bus degraded",
  });
  const metrics = await (await a.get("/metrics")).text();
  expect(metrics).toMatch(/chat_up\{component="bus"[^}]*\} 0/);
  // Readiness stays: the instance still serves its own sockets.
  expect((await a.get("/readyz")).status).toBe(200);

  await redis.start();
  await waitUntil(async () => (await busState(a)).ok && (await busState(b)).ok, {
    message: "both instances reconnect",
  });

  // What B missed live arrives as a replay once both links are back, each message once.
  for (const ack of during) await student.next(isMessage(ack.id), 15_000);
  await Bun.sleep(2500); // the second replay pass must not duplicate anything
  for (const ack of during) expect(student.frames.filter(isMessage(ack.id))).toHaveLength(1);

  // And live traffic flows again, both ways.
  mentor.send({ type: "message", text: "after", client_id: "a-1" });
  const after = await mentor.next("ack");
  await student.next(isMessage(after.id), 5000);
  student.send({ type: "message", text: "back", client_id: "s-1" });
  const back = await student.next("ack");
  await mentor.next(isMessage(back.id), 5000);

  // Presence was rewritten into the empty Redis: B sees the mentor online on A.
  await waitUntil(
    async () => {
      const res = await b.get("/presence?user_id=10", 15);
      return ((await res.json()) as { online: boolean }).online;
    },
    { message: "B sees the mentor online" },
  );

  // B's own history holds everything A acked, the outage included.
  const conversationId = student.frames.find(isMessage(before.id))!.conversation_id;
  const res = await b.get(`/messages?conversation_id=${conversationId}`, 15);
  const ids = ((await res.json()) as Array<{ id: string }>).map((m) => m.id);
  for (const ack of [before, ...during, after, back]) expect(ids).toContain(String(ack.id));
});
