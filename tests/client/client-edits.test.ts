import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ChatClient, ChatError, type ChatEvents, type Message } from "../../src/client/index.ts";
import { startTestService, type TestService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";

/**
 * The SDK's edit(), delete() and send(text, {replyTo}) against the real service: promises settle
 * on the ack, both sides get events, and a list kept from the events is right after a reconnect.
 */

let svc: TestService;
const clients: ChatClient[] = [];
beforeAll(async () => {
  svc = await startTestService();
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  await svc.stop();
});

function client(userId: number, since?: string): ChatClient {
  const c = new ChatClient({
    url: svc.url,
    token: () => mintToken(userId),
    lessonId: 6,
    studentId: 17,
    since,
  });
  clients.push(c);
  return c;
}

/** What an app keeps: messages by id, patched by the edit and delete events. */
function list(c: ChatClient) {
  const byId = new Map<string, Message>();
  c.on("message", (m) => byId.set(m.id, m));
  c.on("message_edited", (e) => {
    const m = byId.get(e.id);
    if (m) byId.set(e.id, { ...m, text: e.text, edited_at: e.edited_at });
  });
  c.on("message_deleted", (d) => {
    const m = byId.get(d.id);
    if (m) byId.set(d.id, { ...m, text: undefined, deleted: true, deleted_at: d.deleted_at });
  });
  return byId;
}

function next<K extends "message_edited" | "message_deleted">(c: ChatClient, type: K, id: string) {
  return new Promise<ChatEvents[K]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} for ${id} in 10 s`)), 10_000);
    const off = c.on(type, (v) => {
      if ((v as { id: string }).id !== id) return;
      clearTimeout(timer);
      off();
      resolve(v as ChatEvents[K]);
    });
  });
}

describe("SDK edit, delete, reply", () => {
  test("promises settle on the ack; the other side gets events; refusals reject with the code", async () => {
    const mentor = client(11);
    const student = client(17);
    await Promise.all([mentor.connect(), student.connect()]);
    const q = await student.send("question?");
    const a = await mentor.send("answer", { replyTo: q.id });
    const edited = next(student, "message_edited", a.id);
    const ack = await mentor.edit(a.id, "better answer");
    expect(ack).toMatchObject({ id: a.id });
    expect(ack.edited_at).toBeString();
    expect(await edited).toMatchObject({ id: a.id, text: "better answer", edited_at: ack.edited_at });
    const history = await student.history();
    expect(history.find((m) => m.id === a.id)).toMatchObject({ reply_to: q.id, text: "better answer" });

    const err = await student.edit(a.id, "not mine").catch((e) => e);
    expect(err).toBeInstanceOf(ChatError);
    expect((err as ChatError).code).toBe("forbidden");
    const deleted = next(student, "message_deleted", q.id);
    expect((await mentor.delete(q.id)).deleted_at).toBeString();
    expect((await deleted).id).toBe(q.id);
    expect(mentor.unacked).toBe(0);
  });

  test("a list kept from the events is right after a reconnect, old messages included", async () => {
    const mentor = client(11);
    await mentor.connect();
    const ids: string[] = [];
    for (const t of ["one", "two", "three"]) ids.push((await mentor.send(t)).id);
    await Bun.sleep(2_100); // past the catch-up margin, so the replay shows only what was missed

    const student = client(17);
    const view = list(student);
    await student.connect();
    await student.history().then((page) => {
      for (const m of page) view.set(m.id, m);
    });
    const since = student.lastMessageId ?? ids[2]!;
    student.close();

    // While the student is away: one old message edited, one deleted, a new one sent.
    await mentor.edit(ids[0]!, "one, fixed");
    await mentor.delete(ids[1]!);
    const fresh = (await mentor.send("four")).id;

    const back = client(17, since);
    const view2 = list(back);
    for (const [id, m] of view) view2.set(id, m);
    const caughtUp = next(back, "message_deleted", ids[1]!);
    await back.connect();
    await caughtUp;
    await Bun.sleep(100);
    const mine = [...view2.values()].filter((m) => [...ids, fresh].includes(m.id));
    expect(mine.map((m) => [m.id, m.text ?? null, m.deleted ?? false] as unknown[])).toEqual([
      [ids[0], "one, fixed", false],
      [ids[1], null, true],
      [ids[2], "three", false],
      [fresh, "four", false],
    ]);
  }, 20_000);
});
