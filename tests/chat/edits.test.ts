import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { changesResponseSchema } from "../../src/http/openapi.ts";
import { startTestService, type TestService, UNTHROTTLED } from "../helpers/service.ts";
import type { Frame, TestSocket } from "../helpers/ws-client.ts";

/** Edit, delete and reply on one instance: live frames, acks, refusals, REST state, catch-up. */

let svc: TestService;
// The service's clock: tests move it past the edit window without waiting a day.
let skewMs = 0;
beforeAll(async () => {
  svc = await startTestService({
    env: { ...UNTHROTTLED, EDIT_WINDOW_S: "3600" },
    overrides: { now: () => Date.now() + skewMs },
  });
});
afterAll(async () => {
  await svc.stop();
});

/** Lesson 5: mentor 10 and student 15. Lesson 5 with student 16 is a second, separate conversation. */
const mentor = (extra: Record<string, string | number> = {}) =>
  svc.connect(10, { lesson_id: 5, student_id: 15, ...extra });
const student = (extra: Record<string, string | number> = {}) => svc.connect(15, { lesson_id: 5, ...extra });

async function say(sock: TestSocket, text: string, extra: Record<string, unknown> = {}): Promise<string> {
  const client_id = `c-${Math.random().toString(36).slice(2)}`;
  sock.send({ type: "message", text, client_id, ...extra });
  const ack = await sock.next((f) => f.type === "ack" && f.client_id === client_id);
  return String(ack.id);
}

const ackFor = (clientId: string) => (f: Frame) => f.type === "ack" && f.client_id === clientId;
const errorFor = (ref: string) => (f: Frame) => f.type === "error" && f.ref === ref;

async function restMessages(userId: number, conversationId: string): Promise<Frame[]> {
  const res = await svc.get(`/messages?conversation_id=${conversationId}&limit=200`, userId);
  expect(res.status).toBe(200);
  return (await res.json()) as Frame[];
}

describe("edit and delete", () => {
  test("an edit reaches both participants and the sender's other socket; REST returns the new text", async () => {
    const m = await mentor();
    const m2 = await mentor();
    const s = await student();
    const { conversation_id } = await m.next("ready");
    const id = await say(m, "helo");
    m.send({ type: "edit", message_id: id, text: "  hello  ", client_id: "e-1" });
    const ack = await m.next(ackFor("e-1"));
    expect(ack).toMatchObject({ id, client_id: "e-1" });
    expect(Date.parse(String(ack.edited_at))).not.toBeNaN();
    for (const sock of [m, m2, s]) {
      const f = await sock.next((x) => x.type === "message_edited" && x.id === id);
      expect(f).toEqual({
        type: "message_edited",
        id,
        conversation_id,
        text: "hello",
        edited_at: ack.edited_at,
      });
    }
    const row = (await restMessages(15, String(conversation_id))).find((x) => x.id === id);
    expect(row).toMatchObject({ id, text: "hello", edited_at: ack.edited_at });
    // A resend of the same edit is acked as a duplicate and tells nobody again.
    m.send({ type: "edit", message_id: id, text: "hello", client_id: "e-1" });
    expect(await m.next(ackFor("e-1"))).toMatchObject({ id, duplicate: true, edited_at: ack.edited_at });
    s.send({ type: "ping" });
    await s.next("pong");
    expect(s.all("message_edited")).toHaveLength(1);
    // An edit without a client_id is acked without one: not with the message's own.
    m.send({ type: "edit", message_id: id, text: "hello there" });
    const bare = await m.next((f) => f.type === "ack" && f.id === id && f.client_id === undefined);
    expect(Object.keys(bare).sort()).toEqual(["created_at", "edited_at", "id", "type"]);
    for (const x of [m, m2, s]) x.close();
  });

  test("a delete leaves a tombstone: no text in frames, REST, last_message or unread_count", async () => {
    const m = await svc.connect(10, { lesson_id: 5, student_id: 16 });
    const s = await svc.connect(16, { lesson_id: 5 });
    const { conversation_id } = await m.next("ready");
    const keep = await say(m, "keep me");
    const gone = await say(m, "wrong student, sorry");
    const before = await (await svc.get(`/conversations/${conversation_id}`, 16)).json();
    expect(before).toMatchObject({ unread_count: 2, last_message: { id: gone } });

    m.send({ type: "delete", message_id: gone, client_id: "d-1" });
    const ack = await m.next(ackFor("d-1"));
    expect(ack).toMatchObject({ id: gone, client_id: "d-1" });
    const f = await s.next("message_deleted");
    expect(f).toEqual({ type: "message_deleted", id: gone, conversation_id, deleted_at: ack.deleted_at });

    const rows = await restMessages(16, String(conversation_id));
    const tomb = rows.find((x) => x.id === gone)!;
    expect(tomb).toMatchObject({ id: gone, sender_id: 10, deleted: true, deleted_at: ack.deleted_at });
    expect(tomb.created_at).toBeString();
    expect("text" in tomb).toBe(false);
    const after = await (await svc.get(`/conversations/${conversation_id}`, 16)).json();
    expect(after).toMatchObject({ unread_count: 1, last_message: { id: keep, text: "keep me" } });

    // Deleting again is idempotent; editing a tombstone is not_found.
    m.send({ type: "delete", message_id: gone, client_id: "d-1" });
    expect(await m.next(ackFor("d-1"))).toMatchObject({ id: gone, duplicate: true });
    m.send({ type: "edit", message_id: gone, text: "back", client_id: "e-gone" });
    expect(await m.next(errorFor("e-gone"))).toMatchObject({ code: "not_found" });
    m.close();
    s.close();
  });

  test("who may change what: forbidden, not_found, edit_window_closed, text rules", async () => {
    const m = await mentor();
    const s = await student();
    await m.next("ready");
    await s.next("ready");
    const mine = await say(m, "mentor's words");
    const theirs = await say(s, "student's words");

    s.send({ type: "edit", message_id: mine, text: "hijack", client_id: "x1" });
    expect(await s.next(errorFor("x1"))).toMatchObject({ code: "forbidden" });
    s.send({ type: "delete", message_id: mine, client_id: "x2" });
    expect(await s.next(errorFor("x2"))).toMatchObject({ code: "forbidden" });
    // The mentor moderates: may delete the student's message but not edit it.
    m.send({ type: "edit", message_id: theirs, text: "rewritten", client_id: "x3" });
    expect(await m.next(errorFor("x3"))).toMatchObject({ code: "forbidden" });

    m.send({ type: "edit", message_id: "0123456789abcdef01234567", text: "x", client_id: "x4" });
    expect(await m.next(errorFor("x4"))).toMatchObject({ code: "not_found" });
    m.send({ type: "delete", message_id: "0123456789abcdef01234567", client_id: "x5" });
    expect(await m.next(errorFor("x5"))).toMatchObject({ code: "not_found" });
    m.send({ type: "edit", message_id: mine, text: "   ", client_id: "x6" });
    expect(await m.next(errorFor("x6"))).toMatchObject({ code: "empty" });
    m.send({ type: "edit", message_id: mine, text: "x".repeat(4001), client_id: "x7" });
    expect(await m.next(errorFor("x7"))).toMatchObject({ code: "too_long" });
    m.send({ type: "edit", message_id: "nope", text: "x", client_id: "x8" });
    expect(await m.next(errorFor("x8"))).toMatchObject({ code: "bad_frame" });
    m.send({ type: "delete", message_id: mine, client_id: "x9", extra: 1 });
    expect(await m.next(errorFor("x9"))).toMatchObject({ code: "bad_frame" });

    skewMs = 3601_000;
    try {
      m.send({ type: "edit", message_id: mine, text: "too late", client_id: "x10" });
      expect(await m.next(errorFor("x10"))).toMatchObject({ code: "edit_window_closed" });
      // Deleting has no window.
      m.send({ type: "delete", message_id: theirs, client_id: "x11" });
      expect(await m.next(ackFor("x11"))).toMatchObject({ id: theirs });
    } finally {
      skewMs = 0;
    }
    expect(m.all("message_edited")).toHaveLength(0);
    m.close();
    s.close();
  });

  test("reply_to names a message of the same conversation; frames and REST carry it", async () => {
    const m = await mentor();
    const s = await student();
    const { conversation_id } = await m.next("ready");
    const question = await say(s, "what is a monad?");
    const answer = await say(m, "a monoid in the category of endofunctors", { reply_to: question });
    expect(await s.next((f) => f.type === "message" && f.id === answer)).toMatchObject({
      reply_to: question,
    });
    const rows = await restMessages(10, String(conversation_id));
    expect(rows.find((x) => x.id === answer)).toMatchObject({ reply_to: question });

    // A message of another conversation (lesson 5 with student 16) is not_found here.
    const other = await svc.connect(16, { lesson_id: 5 });
    const elsewhere = await say(other, "elsewhere");
    m.send({ type: "message", text: "x", client_id: "r1", reply_to: elsewhere });
    expect(await m.next(errorFor("r1"))).toMatchObject({ code: "not_found" });
    m.send({ type: "message", text: "x", client_id: "r2", reply_to: "zz" });
    expect(await m.next(errorFor("r2"))).toMatchObject({ code: "bad_frame" });
    for (const x of [m, s, other]) x.close();
  });
});

describe("catching up", () => {
  test("a client back with since= gets the missed messages, then one frame per change, old messages too", async () => {
    const m = await svc.connect(11, { lesson_id: 6, student_id: 17 });
    const { conversation_id } = await m.next("ready");
    const old1 = await say(m, "old one");
    const old2 = await say(m, "old two");
    const seen = await say(m, "last seen");
    // The catch-up margin reaches back two seconds before `since`: keep the changes made while
    // away clearly after it, and the earlier history clearly before.
    await Bun.sleep(2_100);
    const s = await svc.connect(17, { lesson_id: 6 });
    await s.next("ready");
    s.close();

    // While the student is away: an old message edited, another deleted, new ones sent and changed.
    const fresh1 = await say(m, "new one");
    const fresh2 = await say(m, "new two");
    m.send({ type: "edit", message_id: old1, text: "old one, fixed", client_id: "e1" });
    await m.next(ackFor("e1"));
    m.send({ type: "delete", message_id: old2, client_id: "d1" });
    await m.next(ackFor("d1"));
    m.send({ type: "edit", message_id: fresh1, text: "new one, fixed", client_id: "e2" });
    await m.next(ackFor("e2"));
    m.send({ type: "edit", message_id: fresh2, text: "soon gone", client_id: "e3" });
    await m.next(ackFor("e3"));
    m.send({ type: "delete", message_id: fresh2, client_id: "d2" });
    await m.next(ackFor("d2"));

    const back = await svc.connect(17, { lesson_id: 6, since: seen });
    await back.next("ready");
    const replayed = [await back.next("message"), await back.next("message")];
    expect(replayed.map((f) => f.id)).toEqual([fresh1, fresh2]);
    expect(replayed[0]).toMatchObject({ text: "new one, fixed" });
    expect(replayed[1]).toMatchObject({ deleted: true });
    expect("text" in replayed[1]!).toBe(false);

    // Then the changes, one per message, as its state now, in the order they were last changed.
    const changes: Frame[] = [];
    for (let i = 0; i < 4; i++) changes.push(await back.next((f) => f.type.startsWith("message_")));
    expect(changes.map((f) => [f.type, f.id])).toEqual([
      ["message_edited", old1],
      ["message_deleted", old2],
      ["message_edited", fresh1],
      ["message_deleted", fresh2],
    ]);
    expect(changes[0]).toMatchObject({ text: "old one, fixed", conversation_id });
    // The replay came first, the changes after, and the socket is live after that.
    const indexOf = (f: Frame) => back.frames.indexOf(f);
    expect(indexOf(replayed[1]!)).toBeLessThan(indexOf(changes[0]!));
    m.send({ type: "edit", message_id: old1, text: "live again", client_id: "e4" });
    expect(await back.next("message_edited")).toMatchObject({ id: old1, text: "live again" });

    // REST gives the same feed: from the message id, then from the cursor it answers with.
    const res = await svc.get(`/messages/changes?conversation_id=${conversation_id}&after=${seen}`, 17);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { changes: Frame[]; cursor: string };
    changesResponseSchema.parse(body); // the shape /openapi.json documents
    expect(body.changes.map((f) => [f.type, f.id])).toEqual([
      ["message_deleted", old2],
      ["message_edited", fresh1],
      ["message_deleted", fresh2],
      ["message_edited", old1],
    ]);
    expect(body.changes.at(-1)).toMatchObject({ text: "live again" });
    const next = await svc.get(
      `/messages/changes?conversation_id=${conversation_id}&after=${encodeURIComponent(body.cursor)}`,
      17,
    );
    expect(await next.json()).toEqual({ changes: [], cursor: body.cursor });
    // Paging by limit walks the same list.
    const first = (await (
      await svc.get(`/messages/changes?conversation_id=${conversation_id}&limit=1`, 17)
    ).json()) as { changes: Frame[]; cursor: string };
    expect(first.changes.map((f) => f.id)).toEqual([old2]);
    m.close();
    back.close();
  });

  test("REST changes: bad cursor is 400, someone else's conversation is 404, no token is 401", async () => {
    const m = await mentor();
    const { conversation_id } = await m.next("ready");
    m.close();
    const bad = await svc.get(`/messages/changes?conversation_id=${conversation_id}&after=yesterday`, 10);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain("after");
    const badLimit = await svc.get(`/messages/changes?conversation_id=${conversation_id}&limit=0`, 10);
    expect(badLimit.status).toBe(400);
    expect((await svc.get(`/messages/changes?conversation_id=${conversation_id}`, 16)).status).toBe(404);
    expect((await svc.get(`/messages/changes?conversation_id=${conversation_id}`)).status).toBe(401);
  });
});
