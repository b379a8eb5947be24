import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { NewMessage } from "../../src/model/types.ts";
import { createClientIdFilter } from "../../src/store/sqlite/client-ids.ts";
import { openStore } from "../../src/store/sqlite/index.ts";
import { openDatabase } from "../../src/store/sqlite/open.ts";
import { tempDir } from "../helpers/service.ts";

/**
 * The client_id dedupe without a unique index (store/sqlite/client-ids.ts): exact across
 * restarts, bounded in memory, and a hit is only a hint that the rows confirm.
 */

let seq = 0;
const msg = (conversationId: string, senderId: number, clientId?: string): NewMessage => ({
  id: (1e12 + seq++).toString(16).padStart(24, "0"),
  conversationId,
  senderId,
  text: "hi",
  createdAt: Date.now(),
  ...(clientId === undefined ? {} : { clientId }),
});

function withFile(fn: (path: string) => void) {
  const dir = tempDir();
  try {
    fn(join(dir.path, "chat.db"));
  } finally {
    dir.remove();
  }
}

const indexes = (path: string) => {
  const db = new Database(path, { readonly: true });
  try {
    return (
      db.query("SELECT name FROM sqlite_master WHERE type = 'index'").all() as Array<{ name: string }>
    ).map((r) => r.name);
  } finally {
    db.close();
  }
};

describe("client_id dedupe", () => {
  test("a resend is the stored message, in the same run and after a restart; other senders and conversations are not", () =>
    withFile((path) => {
      let store = openStore({ path });
      const first = store.insertMessage(msg("c1", 10, "a"));
      expect(first.duplicate).toBe(false);
      expect(store.insertMessage(msg("c1", 10, "a"))).toEqual({ message: first.message, duplicate: true });
      expect(store.insertMessage(msg("c1", 15, "a")).duplicate).toBe(false);
      expect(store.insertMessage(msg("c2", 10, "a")).duplicate).toBe(false);
      expect(store.insertMessage(msg("c1", 10)).duplicate).toBe(false);
      store.close();

      store = openStore({ path });
      const again = store.insertMessage(msg("c1", 10, "a"));
      expect(again.duplicate).toBe(true);
      expect(again.message.id).toBe(first.message.id);
      expect(store.messageByClientId("c1", 10, "a")?.id).toBe(first.message.id);
      expect(store.messageByClientId("c1", 10, "b")).toBeNull();
      expect(store.page("c1", { limit: 10 }).length).toBe(3);
      store.close();
      expect(indexes(path)).not.toContain("messages_by_client_id");
    }));

  test("a file with the old unique index loses it on open, and its rows still dedupe", () =>
    withFile((path) => {
      const db = openDatabase(path);
      db.run(
        "CREATE UNIQUE INDEX messages_by_client_id ON messages (conversation_id, sender_id, client_id) WHERE client_id IS NOT NULL",
      );
      db.run("UPDATE meta SET value = '6' WHERE key = 'schema_version'");
      db.run(
        "INSERT INTO messages (conversation_id, id, sender_id, text, created_at, client_id) VALUES ('c1', 'x1', 10, 'old', 1, 'k')",
      );
      db.close();
      expect(indexes(path)).toContain("messages_by_client_id");
      const store = openStore({ path });
      expect(indexes(path)).not.toContain("messages_by_client_id");
      const r = store.insertMessage(msg("c1", 10, "k"));
      expect(r).toMatchObject({ duplicate: true, message: { id: "x1", text: "old" } });
      store.close();
    }));

  test("bounded: least recently used conversations are dropped and read again from their rows", () =>
    withFile((path) => {
      const store = openStore({ path });
      for (let c = 0; c < 10; c++) for (let i = 0; i < 5; i++) store.insertMessage(msg(`c${c}`, 10, `k${i}`));
      store.close();
      const db = new Database(path);
      const filter = createClientIdFilter(db, 12);
      for (let c = 0; c < 10; c++) {
        expect(filter.mayHave(`c${c}`, 10, "k0")).toBe(true);
        expect(filter.entries).toBeLessThanOrEqual(12);
      }
      expect(filter.entries).toBeGreaterThanOrEqual(5);
      // c0 was dropped long ago; it is read again, whole.
      for (let i = 0; i < 5; i++) expect(filter.mayHave("c0", 10, `k${i}`)).toBe(true);
      expect(filter.mayHave("c0", 10, "never")).toBe(false);
      expect(filter.mayHave("c0", 15, "k0")).toBe(false);
      filter.add("c0", 10, "new");
      expect(filter.mayHave("c0", 10, "new")).toBe(true);
      filter.forget("c0");
      // Forgotten, it is read from the rows, where "new" was never written.
      expect(filter.mayHave("c0", 10, "new")).toBe(false);
      db.close();
    }));

  test("the same client_id twice in one transaction is stored once", () =>
    withFile((path) => {
      const store = openStore({ path });
      const [a, b] = store.transaction(() => [
        store.insertMessage(msg("c1", 10, "twice")),
        store.insertMessage(msg("c1", 10, "twice")),
      ]);
      expect(a!.duplicate).toBe(false);
      expect(b).toEqual({ message: a!.message, duplicate: true });
      expect(store.page("c1", { limit: 10 }).length).toBe(1);
      store.close();
    }));
});
