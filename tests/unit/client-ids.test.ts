import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createClientIdWindow } from "../../src/store/sqlite/client-ids.ts";
import { openStore } from "../../src/store/sqlite/index.ts";
import { SCHEMA_VERSION } from "../../src/store/sqlite/schema.ts";
import { tempDir } from "../helpers/service.ts";

/** client_id idempotency without a unique index: an in-memory window rebuilt from the newest rows. */

const dir = tempDir();
afterAll(() => dir.remove());
let n = 0;
const newPath = () => join(dir.path, `ids-${n++}.db`);
const parties = { lessonId: 1, mentorId: 2, studentId: 3 };
const msg = (id: string, clientId: string, senderId = 2) => ({
  id,
  conversationId: "c1",
  senderId,
  text: `text ${id}`,
  createdAt: 1000 + n,
  clientId,
});

describe("client_id window", () => {
  test("a resend is a duplicate, also after a restart, and only for the same sender", () => {
    const path = newPath();
    let store = openStore({ path });
    store.openConversation("c1", parties, 1);
    expect(store.insertMessage(msg("a1", "k1")).duplicate).toBe(false);
    const again = store.insertMessage(msg("a2", "k1"));
    expect(again).toMatchObject({ duplicate: true, message: { id: "a1", text: "text a1" } });
    // The other participant may use the same client_id: it is theirs.
    expect(store.insertMessage(msg("a3", "k1", 3)).duplicate).toBe(false);
    store.close();
    store = openStore({ path });
    expect(store.insertMessage(msg("a4", "k1")).message.id).toBe("a1");
    expect(store.insertMessage(msg("a5", "k1", 3)).message.id).toBe("a3");
    expect(store.messageByClientId("c1", 2, "k1")?.id).toBe("a1");
    store.close();
  });

  test("a relayed copy under a client_id already stored here is not kept twice", () => {
    const store = openStore({ path: newPath() });
    store.openConversation("c1", parties, 1);
    store.insertMessage(msg("b1", "k9"));
    expect(store.keepRelayedMessage(msg("b2", "k9"))).toBe(false);
    expect(store.message("c1", "b2")).toBeNull();
    store.close();
  });

  test("a window entry whose row is gone (a rolled-back commit) does not swallow the resend", () => {
    const store = openStore({ path: newPath() });
    store.openConversation("c1", parties, 1);
    expect(() =>
      store.transaction(() => {
        store.insertMessage(msg("d1", "k5"));
        throw new Error("disk full");
      }),
    ).toThrow("disk full");
    const r = store.insertMessage(msg("d2", "k5"));
    expect(r).toMatchObject({ duplicate: false, message: { id: "d2" } });
    store.close();
  });

  test("the window keeps each conversation's newest client_ids, loaded from its newest rows", () => {
    const path = newPath();
    const store = openStore({ path });
    store.openConversation("c1", parties, 1);
    for (let i = 0; i < 10; i++) store.insertMessage(msg(`e${i}`, `w${i}`));
    store.close();
    const db = new Database(path);
    const window = createClientIdWindow(db, { perConversation: 4 });
    expect(window.find("c1", 2, "w9")).toBe("e9");
    expect(window.find("c1", 2, "w6")).toBe("e6");
    expect(window.find("c1", 2, "w5")).toBeUndefined();
    window.remember("c1", 2, "w10", "e10");
    expect(window.find("c1", 2, "w6")).toBeUndefined();
    db.close();
  });

  test("the unique index is dropped by the migration and stays dropped", () => {
    const path = newPath();
    openStore({ path }).close();
    const db = new Database(path);
    db.run(
      "CREATE UNIQUE INDEX messages_by_client_id ON messages (conversation_id, sender_id, client_id) WHERE client_id IS NOT NULL",
    );
    db.run("UPDATE meta SET value = ? WHERE key = 'schema_version'", [String(SCHEMA_VERSION - 1)]);
    db.close();
    for (let i = 0; i < 2; i++) {
      openStore({ path }).close();
      const check = new Database(path, { readonly: true });
      expect(
        check.query("SELECT name FROM sqlite_master WHERE name = 'messages_by_client_id'").get(),
      ).toBeNull();
      expect(check.query("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({
        value: String(SCHEMA_VERSION),
      });
      check.close();
    }
  });
});
