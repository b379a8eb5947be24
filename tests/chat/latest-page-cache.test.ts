import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { toWireMessage } from "../../src/protocol/wire.ts";
import { type ChatStore, openStore } from "../../src/store/sqlite/index.ts";
import { startTestService, type TestService, tempDir, UNTHROTTLED } from "../helpers/service.ts";

/**
 * The newest page is kept as encoded JSON; every write to `messages` must drop it. Each test
 * warms the cache, writes one way, and compares the cached answer with a fresh query.
 */

const fresh = (store: ChatStore, id: string, limit: number) =>
  JSON.stringify(store.page(id, { limit }).map(toWireMessage));

describe("the store's latest-page cache", () => {
  const dir = tempDir("latest-page-");
  let store: ChatStore;
  const A = "a".repeat(24);
  const B = "b".repeat(24);
  let seq = 0;
  const id = () => (0x100000 + seq++).toString(16).padStart(24, "0");
  const send = (conversationId: string, senderId: number, text: string) =>
    store.transaction(() =>
      store.insertMessage({ id: id(), conversationId, senderId, text, createdAt: 1_700_000_000_000 + seq }),
    ).message;
  /** Warms the cache for `conv`, runs `write`, and checks the next answer is the fresh one. */
  const changes = (conv: string, write: () => void) => {
    const before = store.latestPageJson(conv, 3);
    expect(store.latestPageJson(conv, 3)).toBe(before); // served from the cache
    write();
    const after = store.latestPageJson(conv, 3);
    expect(after).toBe(fresh(store, conv, 3));
    expect(after).not.toBe(before);
  };

  beforeAll(() => {
    store = openStore({ path: `${dir.path}/chat.db` });
    store.openConversation(A, { lessonId: 1, mentorId: 10, studentId: 15 }, 1);
    for (let i = 0; i < 5; i++) send(A, 10, `m${i}`);
  });
  afterAll(() => {
    store.close();
    dir.remove();
  });

  test("is the same JSON as a fresh page, per limit", () => {
    for (const limit of [1, 3, 50]) expect(store.latestPageJson(A, limit)).toBe(fresh(store, A, limit));
  });

  test("a sent message", () => {
    changes(A, () => send(A, 15, "new"));
  });

  test("a read mark made here, and one relayed from another instance", () => {
    const mine = send(A, 10, "to be read");
    changes(A, () => store.markViewed(A, 10, 15, mine.id, 1_800_000_000_000));
    const next = send(A, 10, "read elsewhere");
    changes(A, () => store.markViewed(A, 10, 15, next.id, 1_800_000_000_001, "relayed"));
  });

  test("a message relayed from another instance", () => {
    changes(A, () =>
      store.keepRelayedMessage({ id: id(), conversationId: A, senderId: 15, text: "relayed", createdAt: 5 }),
    );
  });

  test("history imported from MongoDB: a new message, and a read mark filled in", () => {
    const m = { ...store.page(A, { limit: 1 })[0]!, id: id(), text: "imported" };
    changes(A, () => store.importHistory(null, [m]));
    changes(A, () => store.importHistory(null, [{ ...m, viewedBy: 15, viewedAt: 1_900_000_000_000 }]));
  });

  test("a remapped conversation: the new id serves the moved messages, the old one none", () => {
    const old = store.latestPageJson(A, 3);
    expect(store.latestPageJson(B, 3)).toBe("[]");
    expect(store.conversation(A)?.id).toBe(A); // now remembered by id
    expect(store.conversation(B)).toBeNull();
    store.remapConversation(A, B);
    expect(store.conversation(A)?.id).toBe(B);
    expect(store.conversation(B)?.id).toBe(B);
    expect(store.latestPageJson(B, 3)).toBe(fresh(store, B, 3));
    expect(store.latestPageJson(B, 3)).not.toBe("[]");
    expect(store.latestPageJson(A, 3)).toBe("[]");
    expect(old).not.toBe("[]");
  });
});

describe("GET /messages after writes over the WebSocket", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ env: UNTHROTTLED });
  });
  afterAll(async () => {
    await svc.stop();
  });

  type Msg = { id: string; text: string; viewed_by?: number };
  const latest = async (conv: string, user: number) => {
    const res = await svc.get(`/messages?conversation_id=${conv}`, user);
    expect(res.status).toBe(200);
    return (await res.json()) as Msg[];
  };

  test("a sent message and a read mark show on the next latest page", async () => {
    const m = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    const conv = String((await m.next("ready")).conversation_id);
    m.send({ type: "message", text: "first" });
    const first = String((await m.next("ack")).id);
    expect((await latest(conv, 15)).map((x) => x.text)).toEqual(["first"]);

    m.send({ type: "message", text: "second" });
    await m.next("ack");
    expect((await latest(conv, 15)).map((x) => x.text)).toEqual(["first", "second"]);

    const s = await svc.connect(15, { lesson_id: 5 });
    await s.next("ready");
    s.send({ type: "viewed", message_id: first });
    await s.next("viewed");
    const page = await latest(conv, 10);
    expect(page[0]).toMatchObject({ id: first, viewed_by: 15 });
    expect(page[1]!.viewed_by).toBeUndefined();
    m.close();
    s.close();
  });
});
