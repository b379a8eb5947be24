import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { startTestService, type TestService, UNTHROTTLED } from "../helpers/service.ts";
import { STORED_MESSAGES } from "../helpers/stored-messages.ts";
import { waitUntil } from "../helpers/wait.ts";
import type { TestSocket } from "../helpers/ws-client.ts";

/**
 * The sync of the WAL runs off the event loop, so a message is committed (visible in SQLite)
 * a while before it is durable. With every sync made slow on purpose, nothing may be acked,
 * published or shown by a resume before the sync that covers it has returned.
 *
 * How "covered" is known from outside: when a sync starts, a second connection lists the
 * message ids committed so far; when it returns, those ids are durable. Each frame is checked
 * the moment it arrives, against what was durable then.
 */

const SYNC_DELAY_MS = 40;

let svc: TestService;
let reader: Database;
const durable = new Set<string>();
let syncs = 0;
let early: string[] = [];
/**
 * While set, a sync that covers the message with this client_id waits for `until`: a test holds
 * that commit between its COMMIT and its sync. Only that one: a sync held for other writes (a
 * last-seen commit, once a second) would keep the held message from being committed at all.
 */
let block: { clientId: string; until: Promise<void> } | undefined;

beforeAll(async () => {
  svc = await startTestService({
    env: { ...UNTHROTTLED, SQLITE_SYNC_THREAD: "true" },
    overrides: {
      wrapSync: (sync) => async () => {
        const covered = reader
          .query<{ id: string; client_id: string | null }, []>(`SELECT id, client_id FROM ${STORED_MESSAGES}`)
          .all();
        await Bun.sleep(SYNC_DELAY_MS);
        const held = block;
        if (held && covered.some((c) => c.client_id === held.clientId)) await held.until;
        await sync();
        syncs++;
        for (const { id } of covered) durable.add(id);
      },
    },
  });
  reader = new Database(join(svc.dir, "chat.db"), { readonly: true });
});
afterAll(async () => {
  reader.close();
  await svc.stop();
});

/** Records every ack or message frame whose id was not yet durable when it arrived. */
function watch(sock: TestSocket, who: string): void {
  const check = (f: { type: string; id?: unknown }) => {
    if ((f.type === "ack" || f.type === "message") && typeof f.id === "string" && !durable.has(f.id)) {
      early.push(`${who} got ${f.type} ${f.id} before its sync returned`);
    }
  };
  // What arrived between the open and now was durable then if it is durable now at the latest;
  // an id missing here would have been early.
  for (const f of sock.frames) check(f);
  const ws = sock.ws;
  const deliver = ws.onmessage!;
  ws.onmessage = (e: MessageEvent) => {
    check(JSON.parse(String(e.data)) as { type: string; id?: unknown });
    deliver.call(ws, e);
  };
}

describe("pipelined sync", () => {
  test("the database the test reads is the service's", async () => {
    const m = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    m.send({ type: "message", text: "hello" });
    const ack = await m.next("ack");
    expect(reader.query(`SELECT id FROM ${STORED_MESSAGES} WHERE id = ?`).get(String(ack.id))).not.toBeNull();
    expect(syncs).toBeGreaterThan(0);
    m.close();
  });

  test("no ack and no publish before the sync that covers the message", async () => {
    early = [];
    const m = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    const s = await svc.connect(15, { lesson_id: 5 });
    watch(m, "sender");
    watch(s, "recipient");
    const syncsBefore = syncs;
    // Bursts from both sides while syncs are slow: batches gather behind the sync in flight.
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 20; i++) {
        m.send({ type: "message", text: `m ${round}.${i}`, client_id: `pm-${round}-${i}` });
        s.send({ type: "message", text: `s ${round}.${i}`, client_id: `ps-${round}-${i}` });
      }
      await Bun.sleep(5);
    }
    for (let i = 0; i < 200; i++) {
      await m.next("ack", 10_000);
      await s.next("ack", 10_000);
    }
    for (let i = 0; i < 400; i++) await s.next("message", 10_000);
    expect(early).toEqual([]);
    // 400 messages in far fewer syncs: the batches grew while a sync was in flight.
    expect(syncs - syncsBefore).toBeLessThan(100);
    m.close();
    s.close();
  }, 60_000);

  test("a resend of a message still waiting for its sync is acked only once that sync returns", async () => {
    early = [];
    const m = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    watch(m, "sender");
    m.send({ type: "message", text: "twice", client_id: "resend-1" });
    m.send({ type: "message", text: "twice", client_id: "resend-1" });
    const first = await m.next("ack", 5000);
    const second = await m.next("ack", 5000);
    expect(second.id).toBe(first.id);
    expect(second.duplicate).toBe(true);
    expect(early).toEqual([]);
    m.close();
  });

  test("resume with since= during slow syncs: no gap, no duplicate, nothing early", async () => {
    early = [];
    const m = await svc.connect(11, { lesson_id: 6, student_id: 17 });
    watch(m, "sender");
    let s = await svc.connect(17, { lesson_id: 6 });
    watch(s, "resumer");
    m.send({ type: "message", text: "first" });
    const sent: string[] = [String((await m.next("ack")).id)];
    await s.next("message");
    const sockets = [s];
    const sender = (async () => {
      for (let i = 0; i < 150; i++) {
        m.send({ type: "message", text: `r${i}`, client_id: `resume-${i}` });
        if (i % 10 === 9) {
          for (let j = 0; j < 10; j++) sent.push(String((await m.next("ack", 10_000)).id));
        }
      }
    })();
    // Reconnects mid-stream, each time from the last message it holds.
    for (let k = 0; k < 6; k++) {
      await Bun.sleep(SYNC_DELAY_MS * 2);
      const last = String(s.all("message").at(-1)!.id);
      s.close();
      s = await svc.connect(17, { lesson_id: 6, since: last });
      watch(s, "resumer");
      sockets.push(s);
    }
    await sender;
    await s.next((f) => f.type === "message" && f.id === sent.at(-1), 10_000);
    const order = new Map(sent.map((id, i) => [id, i]));
    const got = new Set<string>();
    for (const sock of sockets) {
      const ids = sock.all("message").map((f) => String(f.id));
      const positions = ids.map((id) => order.get(id) ?? -1);
      // On each socket: only what was sent, in the order it was committed, each once.
      expect(positions).not.toContain(-1);
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
      expect(new Set(ids).size).toBe(ids.length);
      for (const id of ids) got.add(id);
    }
    // And together, with each resume starting where its predecessor stopped, nothing is missing.
    expect([...got].sort()).toEqual([...sent].sort());
    expect(early).toEqual([]);
    m.close();
    s.close();
  }, 60_000);

  test("REST pages do not show a committed message before its sync, and a cursor does not skip it", async () => {
    const m = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    const conversation = String((await m.next("ready")).conversation_id);
    const ids = async (query: string) => {
      const res = await svc.get(`/messages?conversation_id=${conversation}${query}`, 15);
      return ((await res.json()) as Array<{ id: string }>).map((x) => x.id);
    };
    m.send({ type: "message", text: "before the hold", client_id: "rest-0" });
    const first = String((await m.next("ack", 5000)).id);
    let release!: () => void;
    block = {
      clientId: "rest-1",
      until: new Promise<void>((r) => {
        release = r;
      }),
    };
    let held = "";
    try {
      m.send({ type: "message", text: "held", client_id: "rest-1" });
      // Committed: the row is in SQLite, its sync is held.
      const byClientId = reader.query<{ id: string }, [string]>(
        `SELECT id FROM ${STORED_MESSAGES} WHERE client_id = ?`,
      );
      held = await waitUntil(() => byClientId.get("rest-1")?.id, {
        timeoutMs: 5000,
        intervalMs: 5,
        message: "the held message's commit",
      });
      expect(await ids("")).toContain(first);
      expect(await ids("")).not.toContain(held);
      expect(await ids(`&after=${first}`)).toEqual([]);
    } finally {
      // A failing check must not leave every later sync (and the shutdown's) waiting.
      release();
      block = undefined;
    }
    expect(String((await m.next("ack", 5000)).id)).toBe(held);
    expect(await ids("")).toContain(held);
    expect(await ids(`&after=${first}`)).toEqual([held]);
    m.close();
  });
});
