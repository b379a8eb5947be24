import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

/**
 * The transport's own cost, the bench's `bare` column (issue #13): a bare Bun.serve speaking only
 * what the load generator uses of our wire protocol, so each figure of ours reads as a ratio to
 * what any implementation on Bun must pay. It does what none can skip and nothing else: parse the
 * frame, give it an ObjectId-shaped id and a time, publish the message to its conversation's topic
 * (the peer and the sender's own socket, as ours does), ack the sender. No token check (the
 * user id is read from the JWT's payload), no store, no rate limits, no presence.
 * Frames have our field names, order and JSON encoding, so JSON costs compare fairly.
 *   DIRECTORY_FILE=… PORT=… bun bench/bare-server.ts
 */

interface BareOptions {
  port: number;
  host: string;
  /** lesson id → its mentor, from the bench's DIRECTORY_FILE: a student's URL does not name one. */
  mentorOf: ReadonlyMap<number, number>;
  idleTimeoutS: number;
}

interface SocketData {
  userId: number;
  lessonId: number;
  mentorId: number;
  studentId: number;
  conversationId: string;
  topic: string;
}

/** The token's `user_id`, unverified: verifying is the service's cost, not the transport's. */
function userIdOf(token: string | null): number | undefined {
  const payload = token?.split(".")[1];
  if (!payload) return undefined;
  try {
    const id = JSON.parse(Buffer.from(payload, "base64url").toString()).user_id;
    return Number.isInteger(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");

/** The 24-hex shape of our conversation ids, without our hash: one per (lesson, student). */
const conversationIdOf = (lessonId: number, studentId: number) => hex(lessonId, 12) + hex(studentId, 12);

/** ObjectId-shaped like ours (seconds, process part, counter), so frames are the same length. */
function idGenerator(): (nowMs: number) => string {
  const processPart = randomBytes(5).toString("hex");
  let counter = randomBytes(3).readUIntBE(0, 3);
  return (nowMs) => {
    counter = (counter + 1) & 0xffffff;
    return hex(Math.floor(nowMs / 1000), 8) + processPart + hex(counter, 6);
  };
}

function upgradeData(url: URL, mentorOf: ReadonlyMap<number, number>): SocketData | undefined {
  const userId = userIdOf(url.searchParams.get("token"));
  const lessonId = Number(url.searchParams.get("lesson_id"));
  const mentorId = mentorOf.get(lessonId);
  if (userId === undefined || mentorId === undefined) return undefined;
  const studentId = userId === mentorId ? Number(url.searchParams.get("student_id")) : userId;
  const conversationId = conversationIdOf(lessonId, studentId);
  return { userId, lessonId, mentorId, studentId, conversationId, topic: `c:${conversationId}` };
}

export function serveBare(opts: BareOptions) {
  const nextId = idGenerator();
  const server = Bun.serve<SocketData>({
    port: opts.port,
    hostname: opts.host,
    fetch(req, srv) {
      const url = new URL(req.url);
      if (url.pathname === "/healthz") return new Response("ok");
      if (url.pathname !== "/ws") return new Response("not found", { status: 404 });
      const data = upgradeData(url, opts.mentorOf);
      if (!data) return new Response("forbidden", { status: 403 });
      return srv.upgrade(req, { data }) ? undefined : new Response("expected an upgrade", { status: 400 });
    },
    // The same transport settings as ours (src/server.ts, with the bench's idle timeout).
    websocket: {
      maxPayloadLength: 65_536,
      idleTimeout: opts.idleTimeoutS,
      sendPings: true,
      backpressureLimit: 1 << 20,
      closeOnBackpressureLimit: true,
      open(ws) {
        const d = ws.data;
        ws.subscribe(d.topic);
        ws.send(
          JSON.stringify({
            type: "ready",
            conversation_id: d.conversationId,
            user_id: d.userId,
            lesson_id: d.lessonId,
            mentor_id: d.mentorId,
            student_id: d.studentId,
          }),
        );
      },
      message(ws, raw) {
        let frame: { type?: unknown; text?: unknown; client_id?: unknown };
        try {
          frame = JSON.parse(String(raw));
        } catch {
          frame = {};
        }
        if (frame?.type !== "message" || typeof frame.text !== "string") {
          ws.send('{"type":"error","code":"bad_frame","message":"only message frames here"}');
          return;
        }
        const now = Date.now();
        const id = nextId(now);
        const createdAt = new Date(now).toISOString();
        const clientId = typeof frame.client_id === "string" ? frame.client_id : undefined;
        const d = ws.data;
        // Ours publishes the message, then acks (src/domain/chat.ts, src/ws/session.ts); the key
        // order is toWireMessage's. server.publish, not ws.publish: the sender gets its copy too.
        server.publish(
          d.topic,
          JSON.stringify({
            type: "message",
            id,
            conversation_id: d.conversationId,
            sender_id: d.userId,
            created_at: createdAt,
            text: frame.text,
            client_id: clientId,
          }),
        );
        ws.send(JSON.stringify({ type: "ack", id, created_at: createdAt, client_id: clientId }));
      },
    },
  });
  return server;
}

function mentorsFrom(file: string): Map<number, number> {
  const dir = JSON.parse(readFileSync(file, "utf8")) as {
    lessons: Array<{ id: number; teacher_id: number }>;
  };
  return new Map(dir.lessons.map((l) => [l.id, l.teacher_id]));
}

if (import.meta.main) {
  const file = process.env.DIRECTORY_FILE;
  if (!file) throw new Error("DIRECTORY_FILE is required (the bench writes one)");
  serveBare({
    port: Number(process.env.PORT ?? 8080),
    host: process.env.HOST ?? "127.0.0.1",
    mentorOf: mentorsFrom(file),
    idleTimeoutS: Number(process.env.HEARTBEAT_IDLE_S ?? 120),
  });
}
