import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import type { NewMessage } from "../../src/model/types.ts";
import { openStore } from "../../src/store/sqlite/index.ts";
import { SCHEMA_VERSION } from "../../src/store/sqlite/schema.ts";
import { tempDir } from "../helpers/service.ts";
import { STORED_MESSAGES } from "../helpers/stored-messages.ts";

/**
 * A client_id is one message per (conversation, sender), checked in memory (client-ids.ts)
 * instead of by a unique index: on a real SQLite file, inside one transaction, after a restart,
 * with a budget so small that sets are dropped and read again, after a rolled-back insert, for
 * relayed messages, across a remap, and on a file migrated from the version with the index.
 */

let dirs: Array<{ remove: () => void }> = [];
afterEach(() => {
  for (const d of dirs) d.remove();
  dirs = [];
});
const newPath = () => {
  const dir = tempDir("client-ids-");
  dirs.push(dir);
  return `${dir.path}/chat.db`;
};

let seq = 0;
const oid = () => (0x65000000 + seq++).toString(16).padStart(24, "0");
const msg = (conversationId: string, senderId: number, clientId?: string): NewMessage => ({
  id: oid(),
  conversationId,
  senderId,
  text: `hello ${seq}`,
  createdAt: 1_700_000_000_000 + seq,
  ...(clientId !== undefined ? { clientId } : {}),
});

type Store = ReturnType<typeof openStore>;
const open = (store: Store, id: string, lessonId = 5) =>
  store.openConversation(id, { lessonId, mentorId: 10, studentId: 15 }, 1);
const send = (store: Store, m: NewMessage) => store.transaction(() => store.insertMessage(m));
const count = (path: string) => {
  const db = new Database(path, { readonly: true });
  const n = (db.query(`SELECT count(*) AS n FROM ${STORED_MESSAGES}`).get() as { n: number }).n;
  db.close();
  return n;
};

describe("client_id idempotency without an index", () => {
  test("a resend is the stored message: in one transaction, after a commit, and after a restart", () => {
    const path = newPath();
    let store = openStore({ path });
    open(store, "c1");
    open(store, "c2", 6);
    const first = send(store, msg("c1", 15, "k1"));
    expect(first.duplicate).toBe(false);
    const again = send(store, msg("c1", 15, "k1"));
    expect(again).toEqual({ message: first.message, duplicate: true });
    // Same client_id, but another sender or another conversation: a new message each.
    expect(send(store, msg("c1", 10, "k1")).duplicate).toBe(false);
    expect(send(store, msg("c2", 15, "k1")).duplicate).toBe(false);
    // Twice in one transaction (one group commit): the second finds the first, uncommitted.
    const both = store.transaction(() => [
      store.insertMessage(msg("c1", 15, "k2")),
      store.insertMessage(msg("c1", 15, "k2")),
    ]);
    expect(both.map((r) => r.duplicate)).toEqual([false, true]);
    expect(both[1]!.message.id).toBe(both[0]!.message.id);
    // Messages without a client_id are never duplicates of each other.
    expect(send(store, msg("c1", 15)).duplicate).toBe(false);
    expect(send(store, msg("c1", 15)).duplicate).toBe(false);
    store.close();
    expect(count(path)).toBe(6);

    store = openStore({ path });
    const resent = send(store, msg("c1", 15, "k1"));
    expect(resent.duplicate).toBe(true);
    expect(resent.message.id).toBe(first.message.id);
    expect(send(store, msg("c1", 15, "k2")).message.id).toBe(both[0]!.message.id);
    expect(send(store, msg("c1", 15, "k3")).duplicate).toBe(false);
    store.close();
    expect(count(path)).toBe(7);
  });

  test("a budget too small for every set drops and rereads them, and misses no resend", () => {
    const path = newPath();
    const store = openStore({ path, clientIdBudgetBytes: 512 });
    const conversations = Array.from({ length: 20 }, (_, i) => `c${i}`);
    for (const [i, id] of conversations.entries()) open(store, id, 100 + i);
    const firsts = new Map<string, string>();
    for (let round = 0; round < 30; round++) {
      for (const c of conversations) {
        const r = send(store, msg(c, 15, `${c}-${round}`));
        expect(r.duplicate).toBe(false);
        firsts.set(`${c}-${round}`, r.message.id);
      }
    }
    for (let round = 29; round >= 0; round--) {
      for (const c of conversations) {
        const r = send(store, msg(c, 15, `${c}-${round}`));
        expect(r.duplicate).toBe(true);
        expect(r.message.id).toBe(firsts.get(`${c}-${round}`)!);
      }
    }
    const stats = store.clientIdStats();
    // Only the set in use may stand above the budget (30 pairs: 64 slots, and its overhead).
    expect(stats.bytes).toBeLessThanOrEqual(64 * 4 + 384);
    expect(stats.loads).toBeGreaterThan(conversations.length);
    store.close();
    expect(count(path)).toBe(600);
  });

  test("an insert that rolls back leaves nothing that turns a later send into a duplicate", () => {
    const path = newPath();
    const store = openStore({ path });
    open(store, "c1");
    expect(() =>
      store.transaction(() => {
        store.insertMessage(msg("c1", 15, "k1"));
        throw new Error("disk full");
      }),
    ).toThrow("disk full");
    expect(count(path)).toBe(0);
    const r = send(store, msg("c1", 15, "k1"));
    expect(r.duplicate).toBe(false);
    expect(send(store, msg("c1", 15, "k1")).message.id).toBe(r.message.id);
    store.close();
    expect(count(path)).toBe(1);
  });

  test("a relayed copy of a pair stored here is not kept twice; a relayed pair makes a resend here a duplicate", () => {
    const path = newPath();
    const store = openStore({ path });
    open(store, "c1");
    const here = send(store, msg("c1", 15, "k1"));
    expect(store.keepRelayedMessage(msg("c1", 15, "k1"))).toBe(false);
    const relayed = msg("c1", 15, "k2");
    expect(store.keepRelayedMessage(relayed)).toBe(true);
    expect(send(store, msg("c1", 15, "k2"))).toMatchObject({ duplicate: true, message: { id: relayed.id } });
    expect(send(store, msg("c1", 15, "k1")).message.id).toBe(here.message.id);
    store.close();
    expect(count(path)).toBe(2);
  });

  test("after a remap, a resend under the adopted id is the stored message", () => {
    const path = newPath();
    const store = openStore({ path });
    open(store, "old");
    const first = send(store, msg("old", 15, "k1"));
    // The adopted id's set is read (empty) before the rows move under it.
    expect(store.messageByClientId("new", 15, "k1")).toBeNull();
    store.remapConversation("old", "new");
    const resent = send(store, msg("new", 15, "k1"));
    expect(resent.duplicate).toBe(true);
    expect(resent.message.id).toBe(first.message.id);
    expect(resent.message.conversationId).toBe("new");
    store.close();
  });

  test("a file with the unique index (schema 6) migrates: the index is dropped, resends still found", () => {
    const path = newPath();
    let store = openStore({ path });
    open(store, "c1");
    const first = send(store, msg("c1", 15, "k1"));
    store.close();
    const v6 = new Database(path);
    v6.exec(`CREATE UNIQUE INDEX messages_by_client_id ON messages (conversation_id, sender_id, client_id)
               WHERE client_id IS NOT NULL;
             UPDATE meta SET value = '6' WHERE key = 'schema_version';`);
    v6.close();

    store = openStore({ path });
    expect(send(store, msg("c1", 15, "k1")).message.id).toBe(first.message.id);
    store.close();
    const check = new Database(path, { readonly: true });
    expect(check.query("SELECT name FROM sqlite_master WHERE name = 'messages_by_client_id'").all()).toEqual(
      [],
    );
    expect(check.query("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({
      value: String(SCHEMA_VERSION),
    });
    check.close();
  });
});
