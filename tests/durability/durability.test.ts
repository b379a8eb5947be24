import { afterAll, describe, expect, test } from "bun:test";
import { spawnService, tempDir, UNTHROTTLED } from "../helpers/service.ts";

const FAST = UNTHROTTLED;

/** Durability order and restarts, with the service as a real child process. */

const dirs: Array<{ remove: () => void }> = [];
afterAll(() => {
  for (const d of dirs) d.remove();
});

describe("durability", () => {
  test.each([
    ["on the event loop", FAST],
    ["on a thread (SQLITE_SYNC_THREAD)", { ...FAST, SQLITE_SYNC_THREAD: "true" }],
  ])(
    "every acked message survives kill -9, and a restart keeps all history: sync %s",
    async (_, env) => {
      const dir = tempDir();
      dirs.push(dir);
      const first = await spawnService({ dir: dir.path, env });
      const m = await first.connect(10, { lesson_id: 5, student_id: 15 });
      const conversationId = String((await m.next("ready")).conversation_id);
      const acked: string[] = [];
      // Fire many without waiting, so kill -9 lands while writes are in flight.
      for (let i = 0; i < 400; i++) m.send({ type: "message", text: `n${i}`, client_id: `k${i}` });
      while (acked.length < 200) acked.push(String((await m.next("ack", 10_000)).id));
      expect(await first.kill("SIGKILL")).not.toBe(0);
      for (const f of m.all("ack")) if (!acked.includes(String(f.id))) acked.push(String(f.id));

      const second = await spawnService({ dir: dir.path, env });
      const res = await second.get(`/messages?conversation_id=${conversationId}&limit=200`, 10);
      let stored = (await res.json()) as Array<{ id: string }>;
      const all: string[] = [];
      while (stored.length > 0) {
        all.unshift(...stored.map((s) => s.id));
        const before = stored[0]!.id;
        stored = (await (
          await second.get(`/messages?conversation_id=${conversationId}&limit=200&before=${before}`, 10)
        ).json()) as Array<{
          id: string;
        }>;
      }
      const storedSet = new Set(all);
      const lost = acked.filter((id) => !storedSet.has(id));
      expect(lost).toEqual([]);
      expect(new Set(all).size).toBe(all.length);

      // Resending the unacked ones with their client_id stores each once.
      const m2 = await second.connect(10, { lesson_id: 5, student_id: 15 });
      for (let i = 0; i < 400; i++) m2.send({ type: "message", text: `n${i}`, client_id: `k${i}` });
      const acks = [];
      for (let i = 0; i < 400; i++) acks.push(await m2.next("ack", 10_000));
      expect(acks.filter((a) => a.duplicate === true).length).toBe(all.length);
      m2.close();
      expect(await second.kill("SIGTERM")).toBe(0);
    },
    60_000,
  );

  test("SIGTERM drains: sockets get 1001 with a reconnect hint, exit code 0, logs say so", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const svc = await spawnService({ dir: dir.path });
    const s = await svc.connect(15, { lesson_id: 5 });
    await s.next("ready");
    svc.proc.kill("SIGTERM");
    const closed = await s.closedWith(5000);
    expect(closed.code).toBe(1001);
    expect(closed.reason).toContain("reconnect");
    expect(await svc.proc.exited).toBe(0);
    expect(svc.logs()).toContain('"msg":"stopped"');
  });

  test("a wrong configuration stops the start with a message naming the variable", async () => {
    const proc = Bun.spawn([process.execPath, "src/main.ts"], {
      env: { PATH: process.env.PATH ?? "", PORT: "not-a-port", MAX_MESSAGE_CHARS: "-1" },
      stderr: "pipe",
      stdout: "pipe",
      cwd: `${import.meta.dir}/../..`,
    });
    expect(await proc.exited).toBe(2);
    const err = await new Response(proc.stderr).text();
    expect(err).toContain("PORT:");
    expect(err).toContain("MAX_MESSAGE_CHARS:");
  });
});
