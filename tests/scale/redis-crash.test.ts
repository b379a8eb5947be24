import { afterAll, beforeAll, expect, test } from "bun:test";
import { removePrefix, requireRedis, SHARED_REDIS_URL, testPrefix } from "../helpers/redis.ts";
import {
  type ChildService,
  spawnService,
  startTestService,
  type TestService,
  tempDir,
} from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * An instance killed with SIGKILL cannot say its users left: their presence must expire with
 * its heartbeat, and the other instance must keep working.
 */

const prefix = testPrefix();
const dir = tempDir();
let a: TestService;
let child: ChildService | undefined;

const env = (id: string) => ({
  REDIS_URL: SHARED_REDIS_URL,
  REDIS_PREFIX: prefix,
  INSTANCE_ID: id,
  PRESENCE_TTL_S: "3",
});

beforeAll(async () => {
  await requireRedis();
  a = await startTestService({ env: env("A") });
  child = await spawnService({ dir: dir.path, env: env("B") });
});

afterAll(async () => {
  if (child && child.proc.exitCode === null) await child.kill(9);
  await a?.stop();
  dir.remove();
  await removePrefix(prefix);
});

test("a crashed instance's users go offline when its heartbeat expires", async () => {
  // Without MongoDB, /presence on A only knows conversations A has seen: open it there once.
  const mentor = await a.connect(10, { lesson_id: 5, student_id: 15 });
  await mentor.next("ready");
  const student = await child!.connect(15, { lesson_id: 5 });
  await student.next("ready");
  await mentor.next((f) => f.type === "presence" && f.user_id === 15 && f.online === true, 5000);
  await waitUntil(
    async () => {
      const res = await a.get("/presence?user_id=15", 10);
      return ((await res.json()) as { online: boolean }).online;
    },
    { message: "A sees the student online" },
  );

  await child!.kill(9);
  const killedAt = Date.now();
  await waitUntil(
    async () => {
      const res = await a.get("/presence?user_id=15", 10);
      const body = (await res.json()) as { online: boolean; last_seen?: string };
      return !body.online && typeof body.last_seen === "string";
    },
    { message: "the student drops offline", timeoutMs: 20_000 },
  );
  // Not before the heartbeat could have expired (3 s TTL, refreshed every second).
  expect(Date.now() - killedAt).toBeGreaterThan(1000);
  mentor.close();
});
