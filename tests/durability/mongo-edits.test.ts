import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ObjectId } from "mongodb";
import { mongoForFile } from "../helpers/ferretdb.ts";
import { drained, mongoEnv, readyz } from "../helpers/outbox.ts";
import { spawnService, startTestService, type TestService, tempDir } from "../helpers/service.ts";
import { toxiproxyForFile } from "../helpers/toxiproxy.ts";
import type { Frame, TestSocket } from "../helpers/ws-client.ts";

/**
 * Edits and deletes reach MongoDB through the outbox, behind their messages, through an outage
 * and through a kill -9 between the change's commit and its flush; the deleted text is gone
 * from SQLite (table and queued outbox rows) and from MongoDB.
 */

const fx = mongoForFile();
const toxiproxy = toxiproxyForFile();

async function say(sock: TestSocket, text: string, clientId: string): Promise<string> {
  sock.send({ type: "message", text, client_id: clientId });
  return String((await sock.next((f: Frame) => f.type === "ack" && f.client_id === clientId)).id);
}

async function change(sock: TestSocket, frame: Record<string, unknown>): Promise<Frame> {
  sock.send(frame);
  return sock.next((f: Frame) => (f.type === "ack" || f.type === "error") && f.client_id === frame.client_id);
}

async function docs(dbName: string, conversationId: string) {
  const list = await fx.client
    .db(dbName)
    .collection("messages")
    .find({ conversation_id: new ObjectId(conversationId) })
    .sort({ _id: 1 })
    .toArray();
  return new Map(list.map((d) => [d._id.toHexString(), d]));
}

/** Whether any row of the messages table, of its log (moved rows too) or of the queued outbox still holds `needle`. */
function sqliteHolds(dir: string, needle: string): boolean {
  const db = new Database(join(dir, "chat.db"), { readonly: true });
  try {
    const rows = db.query<{ n: number }, [string, string]>(
      `SELECT (SELECT count(*) FROM messages WHERE text LIKE ?1) + (SELECT count(*) FROM message_log WHERE text LIKE ?1)
         + (SELECT count(*) FROM outbox WHERE payload LIKE ?2) AS n`,
    );
    return (rows.get(`%${needle}%`, `%${needle}%`)?.n ?? 0) > 0;
  } finally {
    db.close();
  }
}

describe("edits and deletes in MongoDB", () => {
  test("through an outage: applied in order, each once; the deleted text is erased everywhere", async () => {
    const p = await toxiproxy.proxy({ host: fx.mongo.host, port: fx.mongo.port });
    const dbName = `${fx.mongo.dbName}_outage`;
    const svc: TestService = await startTestService({ env: mongoEnv(fx.mongo, p.uri, { MONGO_DB: dbName }) });
    fx.defer(() => svc.stop());
    const m = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    const conversationId = String((await m.next("ready")).conversation_id);
    const before = await say(m, "flushed before the outage", "b-1");
    const gone = await say(m, "SECRET-before", "b-2");
    await drained(svc);

    await p.resetPeer();
    // While MongoDB is unreachable: edits and deletes of flushed messages, and of messages that
    // were never flushed (their insert is still queued ahead of the change).
    expect(
      await change(m, { type: "edit", message_id: before, text: "edited in the outage", client_id: "e-1" }),
    ).toMatchObject({ type: "ack" });
    expect(await change(m, { type: "delete", message_id: gone, client_id: "d-1" })).toMatchObject({
      type: "ack",
    });
    const during = await say(m, "sent in the outage", "o-1");
    const duringGone = await say(m, "SECRET-during", "o-2");
    const reply = await (async () => {
      m.send({ type: "message", text: "a reply", client_id: "o-3", reply_to: during });
      return String((await m.next((f: Frame) => f.type === "ack" && f.client_id === "o-3")).id);
    })();
    await change(m, {
      type: "edit",
      message_id: during,
      text: "sent, then edited, in the outage",
      client_id: "e-2",
    });
    await change(m, {
      type: "edit",
      message_id: duringGone,
      text: "SECRET-during, edited",
      client_id: "e-3",
    });
    await change(m, { type: "delete", message_id: duringGone, client_id: "d-2" });
    expect((await readyz(svc)).body.checks.outbox.backlog).toBeGreaterThanOrEqual(7);
    // Erased, not hidden: neither the table nor the queued outbox rows hold the deleted text.
    expect(sqliteHolds(svc.dir, "SECRET")).toBe(false);

    await p.pass();
    await drained(svc, 25_000);
    const stored = await docs(dbName, conversationId);
    expect(stored.size).toBe(5);
    expect(stored.get(before)).toMatchObject({ text: "edited in the outage" });
    expect(stored.get(before)?.edited_at).toBeInstanceOf(Date);
    expect(stored.get(during)).toMatchObject({ text: "sent, then edited, in the outage" });
    expect(stored.get(reply)?.reply_to?.toHexString()).toBe(during);
    for (const id of [gone, duringGone]) {
      expect(stored.get(id)).toMatchObject({ text: "", sender_id: 10 });
      expect(stored.get(id)?.deleted_at).toBeInstanceOf(Date);
      expect(stored.get(id)?.created_at).toBeInstanceOf(Date);
    }
    const anywhere = await fx.client
      .db(dbName)
      .collection("messages")
      .countDocuments({ text: /SECRET/ });
    expect(anywhere).toBe(0);
    m.close();
  }, 45_000);

  test("kill -9 between the change's commit and its flush: the restart delivers it once", async () => {
    const p = await toxiproxy.proxy({ host: fx.mongo.host, port: fx.mongo.port });
    const dbName = `${fx.mongo.dbName}_kill`;
    const dir = tempDir();
    fx.defer(() => dir.remove());
    const env = mongoEnv(fx.mongo, p.uri, { MONGO_DB: dbName });
    const first = await spawnService({ dir: dir.path, env });
    fx.defer(() => void first.proc.kill("SIGKILL"));
    const m = await first.connect(10, { lesson_id: 5, student_id: 16 });
    const conversationId = String((await m.next("ready")).conversation_id);
    const keep = await say(m, "will be edited", "k-1");
    const gone = await say(m, "SECRET-killed", "k-2");
    await drained(first);
    // MongoDB unreachable: the changes are acked (durable in SQLite) and cannot be flushed.
    await p.resetPeer();
    expect(
      await change(m, { type: "edit", message_id: keep, text: "edited before the crash", client_id: "e" }),
    ).toMatchObject({ type: "ack" });
    expect(await change(m, { type: "delete", message_id: gone, client_id: "d" })).toMatchObject({
      type: "ack",
    });
    expect(await first.kill("SIGKILL")).not.toBe(0);
    expect((await docs(dbName, conversationId)).get(keep)).toMatchObject({ text: "will be edited" });
    expect(sqliteHolds(dir.path, "SECRET-killed")).toBe(false);

    await p.pass();
    const second = await spawnService({ dir: dir.path, env });
    fx.defer(() => second.stop());
    await drained(second, 25_000);
    const stored = await docs(dbName, conversationId);
    expect(stored.size).toBe(2);
    expect(stored.get(keep)).toMatchObject({ text: "edited before the crash" });
    expect(stored.get(gone)).toMatchObject({ text: "" });
    expect(stored.get(gone)?.deleted_at).toBeInstanceOf(Date);
    // The restarted instance serves the same state.
    const rows = (await (
      await second.get(`/messages?conversation_id=${conversationId}`, 16)
    ).json()) as Frame[];
    expect(rows.map((r) => [r.id, r.text, r.deleted])).toEqual([
      [keep, "edited before the crash", undefined],
      [gone, undefined, true],
    ]);
    m.close();
  }, 45_000);
});
