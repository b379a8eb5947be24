import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import type { Conversation } from "../../src/model/types.ts";
import { openStore } from "../../src/store/sqlite/index.ts";
import { SCHEMA_VERSION } from "../../src/store/sqlite/schema.ts";
import { tempDir } from "../helpers/service.ts";

/**
 * The outbox's one shape for every kind of durable work, on a real SQLite file: only kinds some
 * handler reads are written, each handler reads its own kinds in order, an entry is not handed
 * out before it is due, a keyed entry can be withdrawn, and a file written before the kind
 * column existed still drains with its rows in order.
 */

const conversation: Conversation = { id: "c1", lessonId: 5, mentorId: 10, studentId: 15, createdAt: 1 };
const mark = (upToId: string, viewedAt: number) => ({
  conversationId: "c1",
  senderId: 15,
  viewerId: 10,
  upToId,
  viewedAt,
});

let dirs: Array<{ remove: () => void }> = [];
afterEach(() => {
  for (const d of dirs) d.remove();
  dirs = [];
});
const newPath = () => {
  const dir = tempDir("outbox-store-");
  dirs.push(dir);
  return `${dir.path}/chat.db`;
};

describe("outbox store", () => {
  test("writes only the kinds some handler reads", () => {
    const store = openStore({ path: newPath(), outboxKinds: ["viewed"] });
    store.enqueue("conversation", { conversation }, 1);
    store.enqueue("viewed", mark("m1", 2), 2);
    expect(store.outboxWants("viewed")).toBe(true);
    expect(store.outboxWants("conversation")).toBe(false);
    expect(store.outboxStats().backlog).toBe(1);
    expect(store.outboxBatch(["conversation", "viewed"], 10, 10).map((e) => e.kind)).toEqual(["viewed"]);
    store.close();
  });

  test("a handler reads its own kinds in seq order, and stats count by kind", () => {
    const store = openStore({ path: newPath(), outboxKinds: ["conversation", "viewed"] });
    store.enqueue("viewed", mark("m1", 1), 1);
    store.enqueue("conversation", { conversation }, 2);
    store.enqueue("viewed", mark("m2", 3), 3);
    const views = store.outboxBatch(["viewed"], 10, 10);
    expect(views.map((e) => e.kind === "viewed" && e.payload.upToId)).toEqual(["m1", "m2"]);
    expect(views[0]!.seq).toBeLessThan(views[1]!.seq);
    expect(store.outboxStats(["viewed"]).backlog).toBe(2);
    expect(store.outboxStats(["conversation"])).toEqual({ backlog: 1, oldestAt: 2 });
    store.outboxConfirm(views);
    expect(store.outboxStats()).toEqual({ backlog: 1, oldestAt: 2 });
    store.close();
  });

  test("an entry is not handed out before it is due", () => {
    const store = openStore({ path: newPath(), outboxKinds: ["viewed"] });
    store.enqueue("viewed", mark("later", 1), 1, { dueAt: 1_000 });
    store.enqueue("viewed", mark("now", 2), 2);
    expect(
      store.outboxBatch(["viewed"], 10, 999).map((e) => e.kind === "viewed" && e.payload.upToId),
    ).toEqual(["now"]);
    expect(store.outboxBatch(["viewed"], 10, 1_000)).toHaveLength(2);
    store.close();
  });

  test("a keyed entry is withdrawn by cancel, other keys and kinds stay", () => {
    const store = openStore({ path: newPath(), outboxKinds: ["conversation", "viewed"] });
    store.enqueue("viewed", mark("a", 1), 1, { key: "k1", dueAt: 50 });
    store.enqueue("viewed", mark("b", 2), 2, { key: "k2", dueAt: 50 });
    store.enqueue("conversation", { conversation }, 3, { key: "k1" });
    store.outboxCancel("viewed", "k1");
    const left = store.outboxBatch(["conversation", "viewed"], 10, 100);
    expect(left.map((e) => e.kind)).toEqual(["viewed", "conversation"]);
    expect(left[0]!.kind === "viewed" && left[0]!.payload.upToId).toBe("b");
    store.close();
  });

  test("a version 1 file migrates: old rows keep their order and read back typed", () => {
    const path = newPath();
    // Version 1 as released: the kind lived only inside the payload.
    const v1 = new Database(path, { create: true });
    v1.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      INSERT INTO meta VALUES ('schema_version', '1');
      CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL, created_at INTEGER NOT NULL);`);
    v1.run("INSERT INTO outbox (payload, created_at) VALUES (?, 5)", [
      JSON.stringify({ kind: "conversation", conversation }),
    ]);
    v1.run("INSERT INTO outbox (payload, created_at) VALUES (?, 6)", [
      JSON.stringify({ kind: "viewed", ...mark("m9", 6) }),
    ]);
    v1.close();

    const store = openStore({ path, outboxKinds: ["conversation", "viewed"] });
    const rows = store.outboxBatch(["conversation", "viewed"], 10, 10);
    expect(rows.map((e) => e.kind)).toEqual(["conversation", "viewed"]);
    expect(rows[0]!.payload).toEqual({ conversation });
    expect(rows[1]!.payload).toEqual(mark("m9", 6));
    store.enqueue("viewed", mark("m10", 7), 7);
    expect(store.outboxBatch(["viewed"], 10, 10)).toHaveLength(2);
    store.close();

    const check = new Database(path);
    expect(check.query("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({
      value: String(SCHEMA_VERSION),
    });
    check.close();
  });

  test("a file from a newer release is refused with the variable named", () => {
    const path = newPath();
    openStore({ path }).close();
    const db = new Database(path);
    db.run("UPDATE meta SET value = ? WHERE key = 'schema_version'", [String(SCHEMA_VERSION + 1)]);
    db.close();
    expect(() => openStore({ path })).toThrow(/SQLITE_PATH: .* newer version/);
  });
});
