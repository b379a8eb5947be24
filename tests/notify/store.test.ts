import { afterAll, describe, expect, test } from "bun:test";
import { createOutboxWorker, register } from "../../src/jobs/outbox-worker.ts";
import { silentLogger } from "../../src/log.ts";
import type { NotifyPayload } from "../../src/model/notification.ts";
import { openStore } from "../../src/store/sqlite/index.ts";
import { tempDir } from "../helpers/service.ts";

/** Notification cycles and the notify kind in a real SQLite file, and the worker's due-time wake. */

const dirs: Array<{ remove: () => void }> = [];
afterAll(() => {
  for (const d of dirs) d.remove();
});
const path = () => {
  const d = tempDir("notify-store-");
  dirs.push(d);
  return `${d.path}/chat.db`;
};

const CONV = "c".repeat(24);
const parties = { lessonId: 5, mentorId: 10, studentId: 15 };
const payload = (over: Partial<NotifyPayload> = {}): NotifyPayload => ({
  notificationId: 7,
  conversationId: CONV,
  recipientId: 10,
  senderId: 15,
  firstMessageId: "00000000000000000000000b",
  dueAt: 1000,
  ...over,
});

describe("notification cycles in the store", () => {
  test("a cycle opens once, with its outbox entry in the same transaction", () => {
    const store = openStore({ path: path(), outboxKinds: ["notify"] });
    expect(store.transaction(() => store.openCycle(payload(), 1))).toBe(true);
    expect(store.transaction(() => store.openCycle(payload({ notificationId: 8 }), 2))).toBe(false);
    // Not handed to anyone before it is due.
    expect(store.outboxBatch(["notify"], 10, 999)).toHaveLength(0);
    expect(store.outboxNextDue("notify", 0)).toBe(1000);
    const entries = store.outboxBatch(["notify"], 10, 1000);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ kind: "notify", payload: payload() });
    // A transaction that fails takes its cycle and entry with it.
    expect(() =>
      store.transaction(() => {
        store.openCycle(payload({ conversationId: "d".repeat(24) }), 3);
        throw new Error("rolled back");
      }),
    ).toThrow("rolled back");
    expect(store.cycle("d".repeat(24), 10)).toBeNull();
    expect(store.outboxStats(["notify"]).backlog).toBe(1);
    store.close();
  });

  test("a read mark ends the cycle only when it covers the first message, and withdraws its entry", () => {
    const store = openStore({ path: path(), outboxKinds: ["notify"] });
    store.openCycle(payload(), 1);
    store.openCycle(payload({ conversationId: "d".repeat(24) }), 1);
    expect(store.endCycle(CONV, 10, "00000000000000000000000a")).toBe(false);
    expect(store.endCycle(CONV, 15, "00000000000000000000000f")).toBe(false);
    expect(store.outboxStats(["notify"]).backlog).toBe(2);
    expect(store.endCycle(CONV, 10, "00000000000000000000000b")).toBe(true);
    expect(store.cycle(CONV, 10)).toBeNull();
    expect(store.outboxBatch(["notify"], 10, 5000).map((e) => e.payload.conversationId)).toEqual([
      "d".repeat(24),
    ]);
    store.close();
  });

  test("kinds are written only when their handler runs; stats count per kind", () => {
    const store = openStore({ path: path(), outboxKinds: ["conversation", "message", "viewed"] });
    store.openConversation(CONV, parties, 1);
    store.openCycle(payload(), 1);
    expect(store.outboxStats(["notify"]).backlog).toBe(0);
    expect(store.outboxStats(["conversation", "message", "viewed"]).backlog).toBe(1);
    store.close();
  });

  test("a remap to MongoDB's id moves the cycles with the conversation", () => {
    const store = openStore({ path: path(), outboxKinds: ["notify"] });
    store.openConversation(CONV, parties, 1);
    store.openCycle(payload(), 1);
    const adopted = "e".repeat(24);
    store.remapConversation(CONV, adopted);
    expect(store.cycle(CONV, 10)).toBeNull();
    expect(store.cycle(adopted, 10)).toMatchObject({ notificationId: 7 });
    expect(store.conversation(CONV)?.id).toBe(adopted);
    store.close();
  });
});

describe("the outbox worker and entries due later", () => {
  test("an idle handler is run again when its earliest entry falls due, not after the poll interval", async () => {
    const store = openStore({ path: path(), outboxKinds: ["notify"] });
    const passes: number[] = [];
    const started = Date.now();
    let due: number | null = started + 150;
    const worker = createOutboxWorker(
      { outbox: store, logger: silentLogger, batchSize: 10, pollMs: 60_000, retryMaxMs: 1000 },
      [
        register({
          name: "due-later",
          kinds: ["notify"],
          commitWakes: false,
          async handle() {
            passes.push(Date.now() - started);
            // Like the notifier: what fell due was handled, so nothing is waiting any more.
            if (due !== null && Date.now() >= due) due = null;
          },
          wakeAt: () => due,
        }),
      ],
    );
    worker.start();
    await Bun.sleep(400);
    expect(passes.length).toBe(2);
    expect(passes[1]!).toBeGreaterThanOrEqual(140);
    // A commit moves the wait's end earlier when something falls due sooner; it does not wake at once.
    due = Date.now() + 100;
    worker.notify();
    const before = passes.length;
    await Bun.sleep(30);
    expect(passes.length).toBe(before);
    await Bun.sleep(200);
    expect(passes.length).toBe(before + 1);
    due = null;
    await worker.stop(100);
    store.close();
  });
});
