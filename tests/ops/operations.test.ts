import { afterEach, describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { checkHealth, healthcheckUrl } from "../../src/healthcheck.ts";
import { spawnService, startTestService, type TestService, tempDir } from "../helpers/service.ts";

/** What an operator relies on: draining order on shutdown, metric series, the health check. */

const started: TestService[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) await s.stop().catch(() => {});
});

async function service(env: Record<string, string> = {}) {
  const s = await startTestService({ env });
  started.push(s);
  return s;
}

describe("shutdown", () => {
  test("/readyz goes unready while connections stay open, then they get 1001 with a reconnect hint", async () => {
    const s = await service({ SHUTDOWN_DRAIN_DELAY_MS: "3000" });
    const mentor = await s.connect(10, { lesson_id: 5, student_id: 15 });
    const student = await s.connect(15, { lesson_id: 5 });
    await mentor.next("ready");
    await student.next("ready");
    expect((await s.get("/readyz")).status).toBe(200);

    const stopping = s.stop();
    const ready = await s.get("/readyz");
    expect(ready.status).toBe(503);
    const body = await ready.json();
    expect(body.checks.shutdown).toEqual({ ok: false });
    expect((await s.get("/metrics")).ok).toBe(true);
    expect(await (await s.get("/metrics")).text()).toContain("chat_draining 1");
    // Unready is not closed: an open chat still delivers during the drain delay.
    expect(mentor.closed).toBeNull();
    mentor.send({ type: "message", text: "still here", client_id: "drain-1" });
    await mentor.next("ack", 10_000);
    expect((await student.next("message", 10_000)).text).toBe("still here");
    // New connections are sent elsewhere.
    await expect(s.connect(16, { lesson_id: 5 })).rejects.toThrow("failed to open");

    for (const sock of [mentor, student]) {
      const closed = await sock.closedWith(10_000);
      expect(closed.code).toBe(1001);
      expect(closed.reason).toContain("reconnect with since=");
    }
    await stopping;
  });

  test("SIGTERM acks what was sent just before it, closes with 1001 and exits 0", async () => {
    const dir = tempDir();
    try {
      const child = await spawnService({ dir: dir.path });
      const mentor = await child.connect(10, { lesson_id: 5, student_id: 15 });
      const ready = await mentor.next("ready");
      for (let i = 0; i < 20; i++) mentor.send({ type: "message", text: `m${i}`, client_id: `c${i}` });
      await mentor.next((f) => f.type === "ack" && f.client_id === "c0", 10_000);
      expect(await child.kill("SIGTERM")).toBe(0);
      expect((await mentor.closedWith(10_000)).code).toBe(1001);
      const acked = mentor.all("ack").map((f) => f.id);
      expect(acked.length).toBeGreaterThan(0);

      const again = await spawnService({ dir: dir.path });
      try {
        const res = await again.get(`/messages?conversation_id=${ready.conversation_id}&limit=200`, 10);
        const ids = (await res.json()).map((m: { id: string }) => m.id);
        // Nothing acked is lost across the stop.
        for (const id of acked) expect(ids).toContain(id);
      } finally {
        await again.stop();
      }
    } finally {
      dir.remove();
    }
  });

  test("a drain delay as long as the grace time is refused at start", () => {
    expect(() => loadConfig({ SHUTDOWN_DRAIN_DELAY_MS: "10000", SHUTDOWN_GRACE_MS: "10000" })).toThrow(
      ConfigError,
    );
    expect(() => loadConfig({ SHUTDOWN_DRAIN_DELAY_MS: "x" })).toThrow("SHUTDOWN_DRAIN_DELAY_MS");
    expect(loadConfig({}).SHUTDOWN_DRAIN_DELAY_MS).toBe(0);
  });
});

describe("/metrics", () => {
  test("has the series an operator needs, present before any traffic", async () => {
    const s = await service();
    const text = await (await s.get("/metrics")).text();
    for (const series of [
      "chat_ws_connections ",
      "chat_ws_connections_opened_total",
      "chat_ws_connections_refused_total",
      "chat_messages_in_total",
      "chat_frames_out_total",
      "chat_ack_latency_seconds_bucket",
      "chat_sqlite_commit_seconds_bucket",
      "chat_outbox_backlog ",
      "chat_outbox_oldest_age_seconds ",
      "chat_outbox_flushed_total",
      "chat_outbox_flush_errors_total",
      'chat_up{component="sqlite"} 1',
      'chat_up{backend="directory",component="identity"} 1',
      'chat_up{component="bus",kind="local"} 1',
      "chat_draining 0",
    ]) {
      expect(text).toContain(series);
    }
  });

  test("counts a message in, its fan-out and its ack latency", async () => {
    const s = await service();
    const mentor = await s.connect(10, { lesson_id: 5, student_id: 15 });
    await mentor.next("ready");
    mentor.send({ type: "message", text: "count me", client_id: "m-1" });
    await mentor.next("ack");
    const text = await (await s.get("/metrics")).text();
    expect(text).toContain("chat_ws_connections 1");
    expect(text).toContain("chat_messages_in_total 1");
    expect(text).toMatch(/chat_frames_out_total\{type="message"\} 1/);
    expect(text).toContain("chat_ack_latency_seconds_count 1");
    expect(text).toMatch(/chat_sqlite_commit_seconds_count [1-9]/);
  });
});

describe("--healthcheck", () => {
  test("targets loopback when the service listens on every address", () => {
    expect(healthcheckUrl({ HOST: "0.0.0.0", PORT: 8080 })).toBe("http://127.0.0.1:8080/healthz");
    expect(healthcheckUrl({ HOST: "::", PORT: 9 })).toBe("http://127.0.0.1:9/healthz");
    expect(healthcheckUrl({ HOST: "::1", PORT: 9 })).toBe("http://[::1]:9/healthz");
    expect(healthcheckUrl({ HOST: "10.1.2.3", PORT: 9 })).toBe("http://10.1.2.3:9/healthz");
  });

  test("exits 0 against a live service and 1 against nothing", async () => {
    const s = await service();
    const port = new URL(s.url).port;
    const run = (p: string) =>
      Bun.spawn([process.execPath, "src/main.ts", "--healthcheck"], {
        cwd: `${import.meta.dir}/../..`,
        env: { PATH: process.env.PATH ?? "", PORT: p, HOST: "127.0.0.1" },
        stdout: "pipe",
        stderr: "pipe",
      }).exited;
    expect(await run(port)).toBe(0);
    await s.stop();
    expect(await run(port)).toBe(1);
    expect((await checkHealth(`http://127.0.0.1:${port}/healthz`, 2000)).ok).toBe(false);
  });

  test("an invalid configuration is unhealthy (1), not Docker's reserved 2", async () => {
    const code = await Bun.spawn([process.execPath, "src/main.ts", "--healthcheck"], {
      cwd: `${import.meta.dir}/../..`,
      env: { PATH: process.env.PATH ?? "", PORT: "not-a-port" },
      stdout: "pipe",
      stderr: "pipe",
    }).exited;
    expect(code).toBe(1);
  });
});
