import { afterAll, beforeAll, expect, test } from "bun:test";
import { startTestService, type TestService, tempDir } from "../helpers/service.ts";

/** Without REDIS_URL the presence view is the in-process one, with last_seen from SQLite. */

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService();
});
afterAll(async () => {
  await svc?.stop();
});

test("one instance: presence frames and /presence without Redis", async () => {
  const r = (await (await svc.get("/readyz")).json()) as { checks: { bus: Record<string, unknown> } };
  expect(r.checks.bus).toMatchObject({ ok: true, kind: "local" });
  const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
  await mentor.next("ready");
  expect(await mentor.next("presence")).toMatchObject({ user_id: 15, online: false });
  const student = await svc.connect(15, { lesson_id: 5 });
  await student.next("ready");
  expect(await student.next("presence")).toMatchObject({ user_id: 10, online: true });
  await mentor.next((f) => f.type === "presence" && f.user_id === 15 && f.online === true);
  const online = (await (await svc.get("/presence?user_id=15", 10)).json()) as { online: boolean };
  expect(online.online).toBe(true);
  student.close();
  await mentor.next((f) => f.type === "presence" && f.user_id === 15 && f.online === false);
  const gone = (await (await svc.get("/presence?user_id=15", 10)).json()) as {
    online: boolean;
    last_seen?: string;
  };
  expect(gone.online).toBe(false);
  expect(typeof gone.last_seen).toBe("string");
  mentor.close();
});

test("a graceful stop writes the last-seen times still waiting for their commit", async () => {
  const dir = tempDir();
  try {
    const first = await startTestService({ dir: dir.path });
    const mentor = await first.connect(10, { lesson_id: 5, student_id: 15 });
    await mentor.next("ready");
    expect(await mentor.next("presence")).toMatchObject({ user_id: 15, online: false });
    const student = await first.connect(15, { lesson_id: 5 });
    await student.next("ready");
    await mentor.next((f) => f.type === "presence" && f.user_id === 15 && f.online === true);
    student.close();
    const offline = await mentor.next((f) => f.type === "presence" && f.user_id === 15 && f.online === false);
    // Stopped at once: the close's time waits for its commit a second, and the stop writes it.
    await first.stop();
    const second = await startTestService({ dir: dir.path });
    const seen = (await (await second.get("/presence?user_id=15", 10)).json()) as { last_seen?: string };
    expect(seen.last_seen).toBe(offline.last_seen as string);
    await second.stop();
  } finally {
    dir.remove();
  }
});
