/**
 * Presence churn (issue #20, item 2): the other side hears transitions only, "offline" after
 * PRESENCE_OFFLINE_DELAY_MS without a reconnect, and a reconnect loop spends the churner's own
 * upgrade budget. Real service, real sockets.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { type InProcessService, startTestService } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";
import type { Frame, TestSocket } from "../helpers/ws-client.ts";

let svc: InProcessService | undefined;
afterEach(async () => {
  await svc?.stop();
  svc = undefined;
});

const presenceOf15 = (f: Frame) => f.type === "presence" && f.user_id === 15;

async function mentorWatching(s: InProcessService): Promise<{ mentor: TestSocket; seen: () => Frame[] }> {
  const mentor = await s.connect(10, { lesson_id: 5, student_id: 15 });
  // The snapshot of the student's presence comes first; only what follows is an announcement.
  await mentor.next(presenceOf15);
  const from = mentor.frames.length;
  return { mentor, seen: () => mentor.frames.slice(from).filter(presenceOf15) };
}

/** Connects and closes as the student until `ms` have passed; counts what the server let through. */
async function churn(s: InProcessService, ms: number): Promise<{ opened: number; refused: number }> {
  let opened = 0;
  let refused = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const sock = await s.connect(15, { lesson_id: 5 });
      await sock.next("ready");
      opened++;
      sock.close();
      await sock.closedWith(3000).catch(() => {});
    } catch {
      refused++;
      await Bun.sleep(5);
    }
  }
  return { opened, refused };
}

describe("presence churn", () => {
  test("3 s of connect/close: the mentor hears one online and, after the delay, one offline", async () => {
    svc = await startTestService({
      env: { PRESENCE_OFFLINE_DELAY_MS: "1500", UPGRADES_PER_MIN_PER_USER: "0" },
    });
    const { mentor, seen } = await mentorWatching(svc);
    const { opened } = await churn(svc, 3000);
    expect(opened).toBeGreaterThan(20);
    // Before: two frames per cycle, hundreds in all.
    expect(seen().map((f) => f.online)).toEqual([true]);
    await waitUntil(() => seen().length === 2, { message: "the offline after the delay", timeoutMs: 10_000 });
    const [, offline] = seen();
    expect(offline).toMatchObject({ online: false, last_seen: expect.any(String) });
    await Bun.sleep(500);
    expect(seen()).toHaveLength(2);
    expect(mentor.closed).toBeNull();
  });

  test("the churner pays: past UPGRADES_PER_MIN_PER_USER its upgrades get 429", async () => {
    svc = await startTestService({
      env: { PRESENCE_OFFLINE_DELAY_MS: "1000", UPGRADES_PER_MIN_PER_USER: "20" },
    });
    const { seen } = await mentorWatching(svc);
    const { opened, refused } = await churn(svc, 1500);
    expect(opened).toBeLessThanOrEqual(21);
    expect(refused).toBeGreaterThan(0);
    // Refused for longer than the delay, the student did go offline: one of each, no more.
    expect(seen().map((f) => f.online)).toEqual(seen().length === 1 ? [true] : [true, false]);
    const res = await svc.get("/presence?user_id=15", 10);
    expect(res.status).toBe(200);
  });

  test("a reconnect within the delay is not offline; staying away is", async () => {
    svc = await startTestService({ env: { PRESENCE_OFFLINE_DELAY_MS: "800" } });
    const { seen } = await mentorWatching(svc);
    const first = await svc.connect(15, { lesson_id: 5 });
    await first.next("ready");
    await waitUntil(() => seen().length === 1, { message: "online" });
    first.close();
    await Bun.sleep(300);
    const second = await svc.connect(15, { lesson_id: 5 });
    await second.next("ready");
    await Bun.sleep(1200);
    expect(seen().map((f) => f.online)).toEqual([true]);
    // A second tab is not a transition either.
    const tab = await svc.connect(15, { lesson_id: 5 });
    await tab.next("ready");
    tab.close();
    await Bun.sleep(1200);
    expect(seen().map((f) => f.online)).toEqual([true]);
    const closedAt = Date.now();
    second.close();
    await waitUntil(() => seen().length === 2, { message: "offline", timeoutMs: 5000 });
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(700);
    expect(seen()[1]).toMatchObject({ online: false });
    // REST agrees once the delay has passed.
    const rest = (await (await svc.get("/presence?user_id=15", 10)).json()) as { online: boolean };
    expect(rest.online).toBe(false);
  });
});
