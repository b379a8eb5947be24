import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkQueue } from "../helpers/queue-checker.ts";
import {
  createLogger,
  startTestService,
  type TestService,
  tempDir,
  UNTHROTTLED,
} from "../helpers/service.ts";
import { STORED_MESSAGES } from "../helpers/stored-messages.ts";
import { waitUntil } from "../helpers/wait.ts";
import type { Frame, TestSocket } from "../helpers/ws-client.ts";

/**
 * A full disk on a real small volume (tmpfs; CI runs as root): new messages are refused as
 * `unavailable` (never `internal`), the log says so once per condition per 10 s with a count,
 * /readyz is 503 naming the disk, nothing acked is lost, and it all recovers without a restart.
 */

const root = tempDir("chat-disk-");
const mounts: string[] = [];

function mountTmpfs(name: string, size: string): string {
  const dir = join(root.path, name);
  mkdirSync(dir);
  const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  if (r.exitCode !== 0) {
    throw new Error(
      `mount -t tmpfs failed (${r.stderr.toString().trim()}): these tests need root (CI runs as root) to make a small real volume`,
    );
  }
  mounts.push(dir);
  return dir;
}

beforeAll(() => {
  mkdirSync(root.path, { recursive: true });
});

afterAll(() => {
  for (const dir of mounts.reverse()) Bun.spawnSync(["umount", "-l", dir]);
  root.remove();
});

const freeBytes = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Leaves about `leave` bytes free on the volume; returns the filler's path. */
function fill(dir: string, leave: number, name = "filler"): string {
  const path = join(dir, name);
  const n = Math.max(0, freeBytes(dir) - leave);
  writeFileSync(path, Buffer.alloc(n, 1));
  return path;
}

interface Run {
  svc: TestService;
  lines: string[];
}

async function start(volume: string, env: Record<string, string>, existingDir?: string): Promise<Run> {
  const lines: string[] = [];
  const logger = createLogger({ level: "info", write: (l) => lines.push(l) });
  const svc = await startTestService({
    env: { ...UNTHROTTLED, SQLITE_PATH: join(volume, "chat.db"), ...env },
    logger,
    dir: existingDir ?? tempDir().path,
  });
  return { svc, lines };
}

async function readyz(svc: TestService) {
  const res = await svc.get("/readyz");
  return {
    status: res.status,
    body: (await res.json()) as { checks: Record<string, Record<string, unknown>> },
  };
}

function localIds(volume: string): string[] {
  const db = new Database(join(volume, "chat.db"), { readonly: true });
  try {
    return (db.query(`SELECT id FROM ${STORED_MESSAGES}`).all() as Array<{ id: string }>).map((r) => r.id);
  } finally {
    db.close();
  }
}

/** Sends one message and waits for its ack or error. */
async function attempt(sock: TestSocket, clientId: string, text = "hello"): Promise<Frame> {
  sock.send({ type: "message", text, client_id: clientId });
  return sock.next(
    (f) => (f.type === "ack" || f.type === "error") && (f.client_id ?? f.ref) === clientId,
    10_000,
  );
}

describe("disk short of space (DISK_MIN_FREE_MB)", () => {
  test("below the threshold: unavailable, 503, metrics; typing goes on; back without a restart", async () => {
    const volume = mountTmpfs("threshold", "4m");
    const { svc, lines } = await start(volume, { DISK_MIN_FREE_MB: "1" });
    try {
      const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
      const student = await svc.connect(15, { lesson_id: 5 });
      await mentor.next("ready");
      await student.next("ready");
      expect((await attempt(mentor, "before")).type).toBe("ack");

      const wal = join(volume, "chat.db-wal");
      expect(statSync(wal).size).toBeGreaterThan(0);
      const filler = fill(volume, 300 * 1024);
      const down = await waitUntil(
        async () => {
          const r = await readyz(svc);
          return r.status === 503 ? r : undefined;
        },
        { message: "/readyz to turn 503 with the disk short", timeoutMs: 5000 },
      );
      expect(down.body.checks.disk!.ok).toBe(false);
      expect(String(down.body.checks.disk!.problem)).toContain("DISK_MIN_FREE_MB");
      // While the disk is short the WAL is checkpointed and cut to nothing.
      await waitUntil(() => (statSync(wal).size === 0 ? true : undefined), {
        message: "the WAL to be truncated while the disk is short",
        timeoutMs: 5000,
      });

      const refused: Frame[] = [];
      for (let i = 0; i < 50; i++) refused.push(await attempt(mentor, `low-${i}`));
      expect(new Set(refused.map((f) => f.code))).toEqual(new Set(["unavailable"]));
      mentor.send({ type: "typing", is_typing: true });
      expect((await student.next("typing")).is_typing).toBe(true);

      const metrics = await (await svc.get("/metrics")).text();
      expect(metrics).toMatch(/chat_disk_free_bytes \d+/);
      expect(metrics).toContain('chat_disk_refusals_total{reason="low_space"} 50');
      const logged = lines.filter((l) => l.includes('"condition":"low_space"'));
      expect(logged.length).toBe(1);

      rmSync(filler);
      const back = performance.now();
      let ack: Frame | undefined;
      while (!ack) {
        const f = await attempt(mentor, "low-0");
        if (f.type === "ack") ack = f;
        else await Bun.sleep(20);
      }
      const ms = Math.round(performance.now() - back);
      console.log(`disk threshold: first ack ${ms} ms after space returned`);
      expect(ms).toBeLessThan(5000);
      expect((await readyz(svc)).status).toBe(200);
      mentor.close();
      student.close();
    } finally {
      await svc.stop();
    }
  });

  test("a commit that fails for lack of space: unavailable for the batch, few log lines, nothing acked lost", async () => {
    const volume = mountTmpfs("full", "3m");
    const { svc, lines } = await start(volume, { DISK_MIN_FREE_MB: "0" });
    try {
      const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
      await mentor.next("ready");
      const filler = fill(volume, 1200 * 1024, "reserve");
      const text = "z".repeat(3000);
      const sent: string[] = [];
      const acked = new Map<string, string>();
      const codes = new Map<string, number>();
      const N = 3000;
      for (let i = 0; i < N; i++) {
        sent.push(`f-${i}`);
        mentor.send({ type: "message", text, client_id: `f-${i}` });
      }
      for (let i = 0; i < N; i++) {
        const f = await mentor.next((x) => x.type === "ack" || x.type === "error", 30_000);
        if (f.type === "ack") acked.set(String(f.client_id), String(f.id));
        else codes.set(String(f.code), (codes.get(String(f.code)) ?? 0) + 1);
      }
      console.log(
        `disk-full flood: ${N} frames, ${acked.size} acked, error codes ${JSON.stringify(Object.fromEntries(codes))}, ` +
          `${lines.filter((l) => l.includes('"level":"error"')).length} error log lines`,
      );
      expect([...codes.keys()]).toEqual(["unavailable"]);
      expect(lines.filter((l) => l.includes('"level":"error"')).length).toBeLessThanOrEqual(3);
      // A commit that succeeds (the guard's truncating checkpoint can free room) rightly makes the
      // service ready again, so readiness is read right after a refusal, with nothing in between.
      let r: Awaited<ReturnType<typeof readyz>> | undefined;
      for (let i = 0; i < 50 && !r; i++) {
        mentor.send({ type: "message", text, client_id: `probe-${i}` });
        const f = await mentor.next((x) => x.type === "ack" || x.type === "error", 30_000);
        if (f.type === "error") r = await readyz(svc);
        else acked.set(String(f.client_id), String(f.id));
      }
      expect(r?.status).toBe(503);
      expect(String(r!.body.checks.disk!.problem)).toContain("SQLITE_FULL");
      const wal = join(volume, "chat.db-wal");
      const walWhileFull = statSync(wal).size;
      expect((await svc.get("/healthz")).status).toBe(200);

      rmSync(filler);
      const back = performance.now();
      const retry = sent.filter((c) => !acked.has(c)).slice(0, 20);
      let first: number | undefined;
      for (const clientId of retry) {
        for (;;) {
          const f = await attempt(mentor, clientId, text);
          if (f.type === "ack") {
            acked.set(clientId, String(f.id));
            break;
          }
          expect(f.code).toBe("unavailable");
          await Bun.sleep(20);
        }
        if (first !== undefined) continue;
        first = Math.round(performance.now() - back);
        // The first successful commit gives the WAL's space back. Checked before the next
        // write: each later commit adds ~20 KB, and the truncation may come in between.
        await waitUntil(() => (statSync(wal).size < walWhileFull / 4 ? true : undefined), {
          message: `the WAL (${walWhileFull} bytes while full) to be truncated once writes succeed`,
          timeoutMs: 5000,
        });
      }
      console.log(
        `disk-full: first ack ${first} ms after space returned; WAL ${walWhileFull} bytes while full`,
      );
      await waitUntil(async () => ((await readyz(svc)).status === 200 ? true : undefined), {
        message: "/readyz back to 200 after a successful write",
        timeoutMs: 5000,
      });
      const stored = localIds(volume);
      const result = checkQueue({ sent: [...acked.values()], acked: [...acked.values()], stored });
      expect({ lost: result.lost, duplicated: result.duplicated, unexpected: result.unexpected }).toEqual({
        lost: [],
        duplicated: [],
        unexpected: [],
      });
      mentor.close();
    } finally {
      await svc.stop();
    }
  }, 120_000);

  test("start-up on a nearly full disk: reads work, messages are refused as unavailable", async () => {
    const volume = mountTmpfs("nearly", "4m");
    const dir = tempDir();
    const first = await start(volume, { DISK_MIN_FREE_MB: "1" }, dir.path);
    const mentor = await first.svc.connect(10, { lesson_id: 5, student_id: 15 });
    const conversationId = String((await mentor.next("ready")).conversation_id);
    expect((await attempt(mentor, "kept")).type).toBe("ack");
    mentor.close();
    await first.svc.stop();

    fill(volume, 200 * 1024);
    const { svc } = await start(volume, { DISK_MIN_FREE_MB: "1" }, dir.path);
    try {
      expect((await readyz(svc)).status).toBe(503);
      const page = await svc.get(`/messages?conversation_id=${conversationId}`, 10);
      expect(page.status).toBe(200);
      expect(((await page.json()) as unknown[]).length).toBe(1);
      const again = await svc.connect(10, { lesson_id: 5, student_id: 15 });
      await again.next("ready");
      expect((await attempt(again, "refused")).code).toBe("unavailable");
      again.close();
    } finally {
      await svc.stop();
      dir.remove();
    }
  });
});
