import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { type Ack, ChatClient, type ChatClientOptions, type Message } from "../../src/client/index.ts";
import { startTestService, type TestService, tempDir } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * Reconnect, resume, the offline queue and idempotent resend, against the real service that is
 * stopped and started again on the same port and SQLite file.
 */

const dir = tempDir("chat-sdk-reconnect-");
let svc: TestService | null = null;
let port = "0";
const clients: ChatClient[] = [];

async function start(): Promise<TestService> {
  svc = await startTestService({ dir: dir.path, env: { PORT: port } });
  port = new URL(svc.url).port;
  return svc;
}
async function stop(): Promise<void> {
  await svc?.stop();
  svc = null;
}

beforeAll(start);
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  await stop();
  dir.remove();
});

/** A token source that can be held shut, so a test decides when a reconnect may happen. */
function gatedToken(userId: number) {
  let release: (() => void) | null = null;
  let gate: Promise<void> = Promise.resolve();
  return {
    token: async () => {
      await gate;
      return mintToken(userId);
    },
    hold() {
      gate = new Promise((r) => {
        release = r;
      });
    },
    open() {
      release?.();
    },
  };
}

function client(userId: number, opts: Partial<ChatClientOptions> = {}) {
  const c = new ChatClient({
    url: `http://127.0.0.1:${port}`,
    token: () => mintToken(userId),
    lessonId: 5,
    studentId: 15,
    backoff: { initialMs: 50, maxMs: 400 },
    ...opts,
  });
  const messages: Message[] = [];
  c.on("message", (m) => messages.push(m));
  clients.push(c);
  return { c, messages };
}

const texts = (ms: Message[]) => ms.map((m) => m.text);
const unique = (ms: Message[]) => new Set(ms.map((m) => m.id)).size === ms.length;

describe("ChatClient across server restarts", () => {
  test("both sides reconnect and resume; offline sends are queued and stored once", async () => {
    const mentorGate = gatedToken(10);
    const studentGate = gatedToken(15);
    const mentor = client(10, { token: mentorGate.token });
    const student = client(15, { token: studentGate.token, studentId: undefined });
    await Promise.all([mentor.c.connect(), student.c.connect()]);
    await student.c.send("before the restart");
    await waitUntil(() => mentor.messages.length === 1, {
      message: "mentor got the first message",
      intervalMs: 20,
    });

    mentorGate.hold();
    studentGate.hold();
    await stop(); // closes every socket with 1001
    await waitUntil(() => mentor.c.state !== "open" && student.c.state !== "open", {
      message: "both clients noticed",
      intervalMs: 20,
    });

    const queued: Promise<Ack>[] = [student.c.send("offline one"), student.c.send("offline two")];
    expect(student.c.unacked).toBe(2);

    const restarted = await start();
    // Sent while both clients are still held offline: only resume can deliver it.
    const otherDevice = await restarted.connect(10, { lesson_id: 5, student_id: 15 });
    otherDevice.send({ type: "message", text: "while you were away", client_id: "other-device-1" });
    await otherDevice.next("ack", 5000);
    otherDevice.close();

    mentorGate.open();
    studentGate.open();
    const acks = await Promise.all(queued);
    expect(acks.every((a) => !a.duplicate)).toBe(true);

    const all = ["before the restart", "while you were away", "offline one", "offline two"];
    await waitUntil(() => mentor.messages.length >= 4, { message: "mentor has everything", intervalMs: 20 });
    await waitUntil(() => student.messages.length >= 4, {
      message: "student has everything",
      intervalMs: 20,
    });
    await Bun.sleep(200); // room for a duplicate to show up, if there were one
    expect(texts(mentor.messages)).toEqual(all);
    expect(texts(student.messages)).toEqual(all);
    expect(unique(mentor.messages) && unique(student.messages)).toBe(true);

    const history = await mentor.c.history({ limit: 200 });
    expect(texts(history)).toEqual(all);
  });

  test("a message sent before the server is up is queued and sent once it is", async () => {
    await stop();
    const student = client(16, { studentId: undefined, lessonId: 5 });
    const ready = student.c.connect();
    const ack = student.c.send("queued before the first connect");
    await waitUntil(() => student.c.state === "reconnecting", {
      message: "client is retrying",
      intervalMs: 20,
    });
    await start();
    await ready;
    const a = await ack;
    await waitUntil(() => student.messages.length === 1, { message: "own message echoed", intervalMs: 20 });
    expect(student.messages[0]).toMatchObject({ id: a.id, text: "queued before the first connect" });
  });

  test("a connection lost after the server stored a message: resend with the same client_id is acked as a duplicate, resume delivers it once", async () => {
    // Drops every frame after the first `message` frame goes out, then closes: the server stored
    // the message, but the client saw neither its echo nor its ack.
    let armed = true;
    class LossyWebSocket {
      onmessage: ((e: MessageEvent) => void) | null = null;
      onclose: ((e: CloseEvent) => void) | null = null;
      private readonly ws: WebSocket;
      private sentMessage = false;
      constructor(url: string, protocols?: string[]) {
        this.ws = new WebSocket(url, protocols);
        this.ws.onmessage = (e) => {
          if (armed && this.sentMessage) {
            armed = false;
            this.ws.close();
            return;
          }
          this.onmessage?.(e);
        };
        this.ws.onclose = (e) => this.onclose?.(e);
      }
      get readyState() {
        return this.ws.readyState;
      }
      send(data: string) {
        if ((JSON.parse(data) as { type: string }).type === "message") this.sentMessage = true;
        this.ws.send(data);
      }
      close(code?: number, reason?: string) {
        this.ws.close(code, reason);
      }
    }

    const mentor = client(10, { studentId: 16 });
    const student = client(16, {
      studentId: undefined,
      WebSocket: LossyWebSocket as unknown as typeof WebSocket,
    });
    await Promise.all([mentor.c.connect(), student.c.connect()]);
    const before = (await mentor.c.history({ limit: 200 })).length;

    const ack = await student.c.send("exactly once", { clientId: "lossy-1" });
    expect(armed).toBe(false); // the loss did happen
    expect(ack.duplicate).toBe(true);
    expect(ack.client_id).toBe("lossy-1");

    await waitUntil(() => student.messages.some((m) => m.id === ack.id), {
      message: "student got its message by resume",
      intervalMs: 20,
    });
    await waitUntil(() => mentor.messages.some((m) => m.id === ack.id), {
      message: "mentor got it",
      intervalMs: 20,
    });
    await Bun.sleep(200);
    expect(student.messages.filter((m) => m.client_id === "lossy-1")).toHaveLength(1);
    expect(mentor.messages.filter((m) => m.client_id === "lossy-1")).toHaveLength(1);
    const history = await mentor.c.history({ limit: 200 });
    expect(history).toHaveLength(before + 1);
    expect(history.filter((m) => m.client_id === "lossy-1")).toHaveLength(1);
  });

  test("a server going away mid-chat emits reconnecting with the close code, then open again", async () => {
    const mentor = client(10);
    const states: Array<{ state: string; code?: number }> = [];
    mentor.c.on("state", (s) => states.push({ state: s.state, code: s.code }));
    await mentor.c.connect();
    await stop();
    await waitUntil(() => mentor.c.state === "reconnecting", { message: "reconnecting", intervalMs: 20 });
    await start();
    await waitUntil(() => mentor.c.state === "open", { message: "open again", intervalMs: 20 });
    expect(states.find((s) => s.state === "reconnecting" && s.code !== undefined)?.code).toBe(1001);
  });
});
