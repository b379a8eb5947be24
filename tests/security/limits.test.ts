import { afterEach, describe, expect, test } from "bun:test";
import net from "node:net";
import { conversationIdFor } from "../../src/ids.ts";
import { rawUpgrade } from "../helpers/hostile.ts";
import { createLogger, type InProcessService, startTestService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";
import { waitUntil } from "../helpers/wait.ts";
import type { TestSocket } from "../helpers/ws-client.ts";

/** Every limit of the service, each set low through its variable and then pushed past. */

let svc: InProcessService | undefined;
afterEach(async () => {
  await svc?.stop();
  svc = undefined;
});

const portOf = (s: InProcessService) => Number(new URL(s.url).port);
const CONV = conversationIdFor(5, 10, 15);

async function storedIds(s: InProcessService): Promise<string[]> {
  const res = await s.get(`/messages?conversation_id=${CONV}&limit=200`, 10);
  expect(res.status).toBe(200);
  return ((await res.json()) as Array<{ id: string }>).map((m) => m.id);
}

describe("MAX_FRAME_BYTES", () => {
  test("a frame over the limit closes with 1009; one under it is fine", async () => {
    svc = await startTestService({ env: { MAX_FRAME_BYTES: "2048" } });
    const sock = await svc.connect(15, { lesson_id: 5 });
    sock.send({ type: "message", text: "a".repeat(1900) });
    await sock.next("ack");
    sock.send({ type: "message", text: "b".repeat(3000) });
    const closed = await sock.closedWith(5000);
    expect(closed.code).toBe(1009);
    // The oversized frame was never stored.
    expect((await storedIds(svc)).length).toBe(1);
  });
});

describe("MAX_MESSAGE_CHARS", () => {
  test("text over the limit gets too_long, counted in characters after trimming", async () => {
    svc = await startTestService({ env: { MAX_MESSAGE_CHARS: "10" } });
    const sock = await svc.connect(15, { lesson_id: 5 });
    sock.send({ type: "message", text: "0123456789", client_id: "ok-1" });
    expect((await sock.next("ack")).client_id).toBe("ok-1");
    sock.send({ type: "message", text: "   😀😀😀😀😀😀😀😀😀😀   ", client_id: "ok-2" }); // 10 code points
    expect((await sock.next("ack")).client_id).toBe("ok-2");
    sock.send({ type: "message", text: "0123456789A", client_id: "long-1" });
    const err = await sock.next("error");
    expect(err).toMatchObject({ code: "too_long", ref: "long-1" });
    expect((await storedIds(svc)).length).toBe(2);
  });
});

describe("RATE_MESSAGES_PER_S / RATE_MESSAGES_BURST (per connection)", () => {
  test("a flood is answered frame by frame: pong or rate_limited, never silence", async () => {
    svc = await startTestService({ env: { RATE_MESSAGES_PER_S: "1", RATE_MESSAGES_BURST: "5" } });
    const sock = await svc.connect(15, { lesson_id: 5 });
    await sock.next("ready");
    const N = 30;
    for (let i = 0; i < N; i++) sock.send({ type: "ping" });
    const answered = () => sock.all("pong").length + sock.all("error").length;
    await waitUntil(() => answered() >= N, { message: `an answer to each of ${N} pings`, intervalMs: 20 });
    const pongs = sock.all("pong").length;
    const limited = sock.all("error").filter((e) => e.code === "rate_limited");
    expect(answered()).toBe(N);
    expect(limited.length).toBe(sock.all("error").length);
    expect(pongs).toBeGreaterThanOrEqual(5);
    expect(limited.length).toBeGreaterThanOrEqual(N - 10);
    expect(sock.closed).toBeNull();
  });
});

describe("RATE_MESSAGES_PER_S / RATE_MESSAGES_BURST charge a frame before it is parsed", () => {
  test("a flood of malformed 60 KB frames gets bad_json only up to the burst, rate_limited after", async () => {
    svc = await startTestService({ env: { RATE_MESSAGES_PER_S: "1", RATE_MESSAGES_BURST: "10" } });
    const sock = await svc.connect(15, { lesson_id: 5 });
    await sock.next("ready");
    const N = 200;
    const junk = `{${"x".repeat(60_000)}`;
    for (let i = 0; i < N; i++) sock.send(junk);
    await waitUntil(() => sock.all("error").length >= N, { message: `an answer to each of ${N} frames` });
    const codes = sock.all("error").map((e) => e.code);
    // Before: N bad_json answers, every frame parsed.
    expect(codes.filter((c) => c === "bad_json").length).toBeLessThanOrEqual(12);
    expect(codes.filter((c) => c === "rate_limited").length).toBeGreaterThanOrEqual(N - 12);
    expect(sock.closed).toBeNull();
  });

  test("a message refused before parsing still names its client_id", async () => {
    svc = await startTestService({ env: { RATE_MESSAGES_PER_S: "1", RATE_MESSAGES_BURST: "2" } });
    const sock = await svc.connect(15, { lesson_id: 5 });
    await sock.next("ready");
    for (let i = 0; i < 6; i++) sock.send({ type: "message", text: `m${i}`, client_id: `cid-${i}` });
    await waitUntil(() => sock.all("ack").length + sock.all("error").length >= 6, { message: "six answers" });
    const refs = sock.all("error").map((e) => [e.code, e.ref]);
    expect(refs.length).toBeGreaterThanOrEqual(3);
    for (const [code, ref] of refs) {
      expect(code).toBe("rate_limited");
      expect(ref).toMatch(/^cid-\d$/);
    }
  });
});

describe("RATE_USER_MESSAGES_PER_S / RATE_USER_MESSAGES_BURST (per user, all connections)", () => {
  test("two tabs of one user share one budget; refused messages are not stored", async () => {
    svc = await startTestService({
      env: { RATE_USER_MESSAGES_PER_S: "1", RATE_USER_MESSAGES_BURST: "4", RATE_MESSAGES_BURST: "100" },
    });
    const a = await svc.connect(15, { lesson_id: 5 });
    const b = await svc.connect(15, { lesson_id: 5 });
    for (let i = 0; i < 6; i++) {
      a.send({ type: "message", text: `a${i}`, client_id: `a-${i}` });
      b.send({ type: "message", text: `b${i}`, client_id: `b-${i}` });
    }
    const answers = (s: TestSocket) =>
      s.frames.filter((f) => f.type === "ack" || (f.type === "error" && f.code === "rate_limited"));
    await waitUntil(() => answers(a).length + answers(b).length >= 12, {
      message: "an ack or rate_limited for each of 12 messages",
      intervalMs: 20,
    });
    const acks = [...a.all("ack"), ...b.all("ack")];
    const refused = [...a.all("error"), ...b.all("error")];
    expect(acks.length + refused.length).toBe(12);
    expect(acks.length).toBeGreaterThanOrEqual(4);
    expect(acks.length).toBeLessThanOrEqual(6);
    for (const e of refused) expect(e).toMatchObject({ code: "rate_limited", ref: expect.any(String) });
    expect((await storedIds(svc)).sort()).toEqual(acks.map((x) => String(x.id)).sort());
  });
});

describe("MAX_CONNECTIONS_PER_USER", () => {
  test("parallel connects cannot slip past the limit; the next one gets 429", async () => {
    svc = await startTestService({ env: { MAX_CONNECTIONS_PER_USER: "3" } });
    const s = svc;
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => s.connect(15, { lesson_id: 5 })),
    );
    const open = results.filter((r) => r.status === "fulfilled").map((r) => r.value);
    expect(open.length).toBe(3);
    const token = await mintToken(15);
    const refused = await rawUpgrade(portOf(s), `/ws?lesson_id=5&token=${token}`);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
    expect(JSON.parse(refused.body).error.code).toBe("rate_limited");
    // Other users are not affected.
    await (await s.connect(10, { lesson_id: 5, student_id: 15 })).next("ready");
    // Closing one frees its slot.
    open[0]!.close();
    await waitUntil(
      async () => (await rawUpgrade(portOf(s), `/ws?lesson_id=5&token=${token}`)).status === 101,
      {
        message: "an upgrade to succeed (101) once a slot was freed",
        intervalMs: 20,
      },
    );
  });
});

describe("RATE_REST_PER_MIN", () => {
  test("past the budget: 429 with Retry-After and the error shape; other users unaffected", async () => {
    svc = await startTestService({ env: { RATE_REST_PER_MIN: "5" } });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await svc.get("/conversations", 15)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    const res = await svc.get("/conversations", 15);
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await res.json()).toEqual({ error: { code: "rate_limited", message: expect.any(String) } });
    expect((await svc.get("/conversations", 10)).status).toBe(200);
  });
});

describe("AUTH_FAILURES_PER_MIN (failed logins per client address)", () => {
  test("an address that keeps failing gets 429 on REST and on upgrade, until its budget refills", async () => {
    svc = await startTestService({ env: { AUTH_FAILURES_PER_MIN: "5" } });
    const bad = await mintToken(15, { expiresInS: -60 });
    const call = (token: string) =>
      fetch(`${svc!.url}/conversations`, { headers: { Authorization: `Bearer ${token}` } });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await call(bad)).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401]);
    const blocked = await call(bad);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await blocked.json()).error.code).toBe("rate_limited");
    // The upgrade shares the budget, and a missing token counts as a failure too.
    const up = await rawUpgrade(portOf(svc), "/ws?lesson_id=5");
    expect(up.status).toBe(429);
    // 5 a minute refills one every 12 s; successes never spend it, so waiting is the way back.
    expect((await call(await mintToken(15))).status).toBe(429);
  });

  test("successful logins never spend the budget", async () => {
    svc = await startTestService({ env: { AUTH_FAILURES_PER_MIN: "2" } });
    for (let i = 0; i < 10; i++) expect((await svc.get("/conversations", 15)).status).toBe(200);
    expect((await fetch(`${svc.url}/conversations`)).status).toBe(401);
  });
});

describe("SEND_BUFFER_LIMIT_BYTES (backpressure)", () => {
  test("a client that stops reading is dropped once its send buffer passes the limit", async () => {
    const lines: string[] = [];
    svc = await startTestService({
      logger: createLogger({ level: "debug", write: (l) => lines.push(l) }),
      env: {
        SEND_BUFFER_LIMIT_BYTES: "65536",
        RATE_MESSAGES_PER_S: "100000",
        RATE_MESSAGES_BURST: "100000",
        RATE_USER_MESSAGES_PER_S: "100000",
        RATE_USER_MESSAGES_BURST: "100000",
      },
    });
    // A raw TCP client does the handshake by hand, then never reads again.
    const token = await mintToken(10);
    let received = 0;
    let sawClose = false;
    const slow = net.connect({ host: "127.0.0.1", port: portOf(svc) });
    slow.on("data", (d: Buffer) => {
      received += d.length;
    });
    slow.on("close", () => {
      sawClose = true;
    });
    slow.on("error", () => {});
    slow.write(
      `GET /ws?lesson_id=5&student_id=15&token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    await waitUntil(() => received > 0, { message: "the slow reader's upgrade answer", intervalMs: 20 });
    expect(received).toBeGreaterThan(0);
    slow.pause();

    // The other participant sends 1 KB messages; each is published to the slow reader too.
    const sender = await svc.connect(15, { lesson_id: 5 });
    await sender.next("ready");
    const dropped = () => lines.some((l) => l.includes('"msg":"connection closed"') && l.includes("1006"));
    let sent = 0;
    const text = "y".repeat(1000);
    while (!dropped() && sent < 60_000) {
      for (let i = 0; i < 200; i++) sender.send({ type: "message", text });
      sent += 200;
      await waitUntil(() => sender.all("ack").length >= sent, {
        message: `acks for all ${sent} messages sent`,
        timeoutMs: 20_000,
        intervalMs: 5,
      });
    }
    expect(dropped()).toBe(true);
    const publishedBytes = sent * 1000;
    // Without closeOnBackpressureLimit the loop above would run to its end (60 MB) with the
    // server holding whatever the kernel could not take. Reading again shows the drop: the
    // socket ends without a close frame (the client sees 1006).
    slow.resume();
    await waitUntil(() => sawClose, {
      message: "the slow reader's socket to close",
      timeoutMs: 5_000,
      intervalMs: 20,
    });
    expect(sawClose).toBe(true);
    // The sender is unaffected and every one of its messages was acked.
    expect(sender.closed).toBeNull();
    expect(sender.all("ack").length).toBe(sent);
    console.log(
      `backpressure: slow reader dropped after ${sent} messages of 1 KB (${(publishedBytes / 1e6).toFixed(1)} MB published, ${(received / 1e6).toFixed(1)} MB reached it)`,
    );
  }, 60_000);
});
