import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { startCheckpointer } from "../src/checkpoint.ts";
import { silentLogger } from "../src/log.ts";
import { AUTOCHECKPOINT_PAGES, openStore } from "../src/store/sqlite.ts";
import { tempDir } from "./helpers/service.ts";

const work = tempDir("chat-checkpoint-");
afterAll(() => work.remove());

const walBytes = (path: string) => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);

describe("the checkpoint worker", () => {
  test("checkpoints the WAL off the main thread, truncates a big one, and hands back on stop", async () => {
    const path = join(work.path, "unit.db");
    const store = openStore({ path, outbox: false });
    const autocheckpoint: number[] = [];
    const results: Array<{ mode: string; busy: number; log: number; checkpointed: number }> = [];
    const checkpointer = startCheckpointer({
      path,
      logger: silentLogger,
      setAutocheckpoint: (pages) => {
        autocheckpoint.push(pages);
        store.setAutocheckpoint(pages);
      },
      fallbackPages: AUTOCHECKPOINT_PAGES,
      intervalMs: 50,
      truncateBytes: 1024 * 1024,
      onCheckpoint: (r) => {
        results.push(r);
      },
    });
    expect(autocheckpoint).toEqual([0]);

    const conv = store.openConversation("c1", { lessonId: 1, mentorId: 1, studentId: 2 }, Date.now());
    const text = "x".repeat(2000);
    // Many small commits, as group commit makes them, with autocheckpoint off; the last ones
    // leave the WAL past the TRUNCATE threshold (the worker may have truncated it meanwhile).
    let i = 0;
    const write = () =>
      store.transaction(() =>
        store.insertMessage({
          id: `m${String(i++).padStart(6, "0")}`,
          conversationId: conv.id,
          senderId: 1,
          text,
          createdAt: Date.now(),
        }),
      );
    for (let n = 0; n < 1500; n++) {
      write();
      if (n % 100 === 0) await Bun.sleep(1);
    }
    while (walBytes(path) <= 1.2 * 1024 * 1024) write();
    // The main connection never checkpoints now, so only the worker's TRUNCATE can empty the WAL.
    const deadline = Date.now() + 20_000;
    const truncated = () => results.some((r) => r.mode === "TRUNCATE" && r.busy === 0);
    while (walBytes(path) > 0 || !truncated()) {
      if (Date.now() > deadline) {
        throw new Error(
          `WAL still ${walBytes(path)} bytes; last results: ${JSON.stringify(results.slice(-5))}`,
        );
      }
      await Bun.sleep(25);
    }
    expect(truncated()).toBe(true);
    expect(store.page(conv.id, { limit: 1 }).length).toBe(1);

    await checkpointer.stop();
    expect(autocheckpoint.at(-1)).toBe(AUTOCHECKPOINT_PAGES);
    store.close();
  }, 30_000);
});
