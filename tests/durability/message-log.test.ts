import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import type { NewMessage } from "../../src/model/types.ts";
import { openStore } from "../../src/store/sqlite/index.ts";
import {
  createMessageLog,
  LOG_BATCH,
  LOG_BUSY_MESSAGES,
  LOG_MAX_AGE_MS,
} from "../../src/store/sqlite/message-log.ts";
import { openDatabase } from "../../src/store/sqlite/open.ts";
import { tempDir } from "../helpers/service.ts";

/**
 * New messages of a busy conversation wait in `message_log` before they move to `messages` in
 * batches (message-log.ts). On a real SQLite file: every read sees them, they move by count and
 * by age, a restart after a crash moves what was left, a rolled-back move is not taken as done,
 * and a delete or a remap leaves nothing of the old state in the log.
 */

let dirs: Array<{ remove: () => void }> = [];
afterEach(() => {
  for (const d of dirs) d.remove();
  dirs = [];
});
const newPath = () => {
  const dir = tempDir("message-log-");
  dirs.push(dir);
  return `${dir.path}/chat.db`;
};

let seq = 0;
const oid = () => (0x66000000 + seq++).toString(16).padStart(24, "0");
const msg = (conversationId: string, text = `hello ${seq}`): NewMessage => ({
  id: oid(),
  conversationId,
  senderId: 10,
  text,
  createdAt: 1_700_000_000_000 + seq,
  clientId: `c-${seq}`,
});
const C1 = "c1".padStart(24, "0");
const C2 = "c2".padStart(24, "0");

type Store = ReturnType<typeof openStore>;
/** With the log's clock held still: batching windows do not turn over on a slow machine. */
const open = (path: string): Store => {
  const store = openStore({ path, now: () => 1_000_000 });
  for (const [id, lessonId] of [
    [C1, 5],
    [C2, 6],
  ] as const)
    store.openConversation(id, { lessonId, mentorId: 10, studentId: 15 }, 1);
  return store;
};
const send = (store: Store, m: NewMessage) => store.transaction(() => store.insertMessage(m));
/** Sends `n` messages to the conversation, one transaction each. */
const sendMany = (store: Store, conversationId: string, n: number): NewMessage[] =>
  Array.from({ length: n }, () => {
    const m = msg(conversationId);
    send(store, m);
    return m;
  });
/** The messages a conversation needs before it counts as busy: they go straight in. */
const warm = (store: Store, conversationId: string) => sendMany(store, conversationId, LOG_BUSY_MESSAGES);
/** Rows of each table, read through a connection of its own, as after a crash. */
const rows = (path: string) => {
  const db = new Database(path, { readonly: true });
  try {
    const n = (t: string) => (db.query(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    return { messages: n("messages"), log: n("message_log") };
  } finally {
    db.close();
  }
};

describe("the message log", () => {
  test("a quiet conversation's first messages go straight in; the next ones are logged and read back", () => {
    const path = newPath();
    const store = open(path);
    const first = warm(store, C1);
    expect(store.messageLogStats()).toEqual({ rows: 0, conversations: 0 });
    const more = [msg(C1), msg(C1), msg(C1)];
    for (const m of more) send(store, m);
    expect(store.messageLogStats()).toEqual({ rows: 3, conversations: 1 });
    expect(rows(path)).toEqual({ messages: LOG_BUSY_MESSAGES, log: 3 });
    // A read of the conversation moves its rows first, and sees every message in order.
    expect(store.page(C1, { limit: 10 }).map((m) => m.id)).toEqual([...first, ...more].map((m) => m.id));
    expect(store.messageLogStats().rows).toBe(0);
    expect(rows(path)).toEqual({ messages: LOG_BUSY_MESSAGES + 3, log: 0 });
    store.close();
  });

  test("every reader sees a logged message: by id, by client_id, read marks, summaries, edits", () => {
    const store = open(newPath());
    warm(store, C1);
    const probes: Array<(m: NewMessage) => unknown> = [
      (m) => store.message(C1, m.id)?.text,
      (m) => store.messageByClientId(C1, 10, m.clientId!)?.id === m.id,
      (m) => store.markViewed(C1, 10, 15, m.id, 2) > 0 && store.message(C1, m.id)?.viewedBy,
      (m) => store.summarise(store.conversation(C1)!, 15).lastMessage?.id === m.id,
      (m) => store.transaction(() => store.editMessage(C1, m.id, "edited", 3))?.text,
      (m) => store.messageText(C1, m.id),
    ];
    const expected = [
      (m: NewMessage) => m.text,
      () => true,
      () => 15,
      () => true,
      () => "edited",
      (m: NewMessage) => m.text,
    ];
    probes.forEach((probe, i) => {
      const m = msg(C1);
      send(store, m);
      expect(store.messageLogStats().rows).toBe(1);
      expect(probe(m)).toEqual(expected[i]!(m));
    });
    // And a resend of a logged message is the same message, not a second one.
    const m = msg(C1);
    send(store, m);
    const again = send(store, { ...m, id: oid() });
    expect(again).toMatchObject({ duplicate: true, message: { id: m.id } });
    store.close();
  });

  /** The log alone on a real file, with its clock in the test's hands. */
  const bareLog = (maxRows?: number) => {
    const db = openDatabase(newPath());
    const clock = { now: 1_000_000 };
    const log = createMessageLog(db, { now: () => clock.now, maxRows });
    const count = (t: string) => (db.query(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    const append = (c: string) => db.transaction(() => log.append(msg(c), null))();
    for (let i = 0; i < LOG_BUSY_MESSAGES; i++) {
      expect(append(C1)).toBe(false); // quiet: the caller inserts it
      expect(append(C2)).toBe(false);
    }
    return { db, log, clock, count, append };
  };

  test(`rows move by count (${LOG_BATCH}) and by age, and the log is trimmed behind them`, () => {
    const { db, log, clock, count, append } = bareLog();
    for (let i = 0; i < LOG_BATCH - 1; i++) expect(append(C1)).toBe(true);
    expect(append(C2)).toBe(true);
    expect(log.stats()).toEqual({ rows: LOG_BATCH, conversations: 2 });
    // The batch: C1's rows move. C2's row, the oldest left, is where the trim stops: C1's rows
    // before it go, the one after it stays (moved) until C2's row moves.
    expect(append(C1)).toBe(true);
    expect(log.stats()).toEqual({ rows: 1, conversations: 1 });
    expect(count("messages")).toBe(LOG_BATCH);
    expect(count("message_log")).toBe(2);
    // Age: C2's row moves with the next append after LOG_MAX_AGE_MS, even one that goes straight
    // in (C1 is quiet by then), and the log is empty.
    clock.now += LOG_MAX_AGE_MS;
    expect(append(C1)).toBe(false);
    expect(log.stats()).toEqual({ rows: 0, conversations: 0 });
    expect(count("messages")).toBe(LOG_BATCH + 1);
    expect(count("message_log")).toBe(0);
    db.close();
  });

  test("past its row budget the log moves its oldest conversation, whatever its age", () => {
    const { db, log, count, append } = bareLog(4);
    for (let i = 0; i < 3; i++) append(C1);
    append(C2);
    expect(log.stats()).toEqual({ rows: 4, conversations: 2 });
    append(C2); // five waiting: C1, the oldest, moves
    expect(log.stats()).toEqual({ rows: 2, conversations: 1 });
    expect(count("messages")).toBe(3);
    db.close();
  });

  test("after a crash, the next open moves what the log held", () => {
    const path = newPath();
    const store = open(path);
    const sent = [...warm(store, C1), ...sendMany(store, C1, 3)];
    expect(rows(path)).toEqual({ messages: LOG_BUSY_MESSAGES, log: 3 });
    // No close: the first connection is abandoned as a kill -9 would leave it.
    const again = openStore({ path });
    expect(rows(path)).toEqual({ messages: LOG_BUSY_MESSAGES + 3, log: 0 });
    expect(again.page(C1, { limit: 10 }).map((m) => m.id)).toEqual(sent.map((m) => m.id));
    again.close();
  });

  test("a move undone by a rollback is moved again, not lost from reads", () => {
    const path = newPath();
    const store = open(path);
    const sent = [...warm(store, C1), ...sendMany(store, C1, 3)];
    expect(store.messageLogStats().rows).toBe(3);
    // The move happens inside this transaction, which then fails as a full disk would make it.
    expect(() =>
      store.transaction(() => {
        store.markViewed(C1, 10, 15, sent.at(-1)!.id, 2);
        throw new Error("disk full");
      }),
    ).toThrow("disk full");
    expect(rows(path)).toEqual({ messages: LOG_BUSY_MESSAGES, log: 3 });
    expect(store.messageLogStats().rows).toBe(3);
    expect(store.page(C1, { limit: 10 }).map((m) => [m.id, m.viewedBy])).toEqual(
      sent.map((m) => [m.id, null]),
    );
    store.close();
  });

  test("a delete leaves no text in the log, and a remap leaves no row under the old id", () => {
    const path = newPath();
    const store = open(path);
    warm(store, C1);
    warm(store, C2);
    send(store, msg(C2)); // logged before the secret: the trim stops at it, so the secret's moved row stays
    const secret = msg(C1, "the secret text");
    send(store, secret);
    store.transaction(() => store.deleteMessage(C1, secret.id, 5));
    const db = new Database(path, { readonly: true });
    expect(db.query("SELECT count(*) AS n FROM message_log WHERE text LIKE '%secret%'").get()).toEqual({
      n: 0,
    });
    db.close();

    const moved = msg(C2);
    send(store, moved);
    const C3 = "c3".padStart(24, "0");
    store.remapConversation(C2, C3);
    store.close();
    const again = openStore({ path });
    expect(again.page(C2, { limit: 10 })).toEqual([]);
    expect(again.page(C3, { limit: 10 }).map((m) => m.id)).toContain(moved.id);
    again.close();
  });
});
