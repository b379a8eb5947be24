import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTestService, type TestService, UNTHROTTLED } from "../helpers/service.ts";

/**
 * A resume after a long absence is larger than the send buffer: it must be paced, not dropped,
 * and still arrive whole, in order, without duplicates, with live traffic after it.
 */

let svc: TestService;
beforeAll(async () => {
  // 64 KiB of send buffer; the backlog below is about 12 MB.
  svc = await startTestService({ env: { ...UNTHROTTLED, SEND_BUFFER_LIMIT_BYTES: "65536" } });
});
afterAll(async () => {
  await svc.stop();
});

describe("resume larger than the send buffer", () => {
  test("is paced by drain: every message once, in order, then live", async () => {
    const m = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    m.send({ type: "message", text: "start" });
    const since = String((await m.next("ack")).id);
    const sent: string[] = [];
    // About 12 MB: more than loopback's kernel buffers can hide.
    const text = "x".repeat(2000);
    // In rounds whose echoes to the sender fit its own 64 KiB buffer: on a loaded machine a
    // larger round outran this process's reading and the server closed the sender (1006).
    const ROUND = 25;
    for (let i = 0; i < 6000; i += ROUND) {
      for (let j = 0; j < ROUND; j++) m.send({ type: "message", text, client_id: `r${i + j}` });
      for (let j = 0; j < ROUND; j++) sent.push(String((await m.next("ack", 10_000)).id));
    }

    const s = await svc.connect(15, { lesson_id: 5, since });
    // Sent while the backlog is being written: must come after it, once.
    m.send({ type: "message", text: "live" });
    sent.push(String((await m.next("ack")).id));

    const got: string[] = [];
    while (got.length < sent.length) got.push(String((await s.next("message", 10_000)).id));
    expect(s.closed).toBeNull();
    expect(got).toEqual(sent);
    // The presence snapshot waited for the backlog: sent into a full buffer, it closed the socket.
    expect((await s.next("presence")).user_id).toBe(10);
    s.send({ type: "ping" });
    await s.next("pong");
    expect(s.all("message")).toHaveLength(sent.length);
    m.close();
    s.close();
  }, 60_000);
});
