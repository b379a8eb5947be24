import { centrifugoToken, ourToken, type Pair } from "./fixtures.ts";

/**
 * One chat participant's socket, spoken in either server's protocol by the same code path, so
 * the load generator pays the same per message whichever server it drives: one template string
 * per send, one prefix test and one indexOf per received frame, no JSON.parse on the hot path.
 */

export interface Hooks {
  /** A message from someone else reached this socket; `text` is what the sender put in. */
  delivered(text: string): void;
  /** The server acknowledged one of this socket's sends. */
  acked(): void;
}

export interface ChatSocket {
  send(text: string, clientId: string): void;
  close(): void;
}

export type Protocol = "ours" | "centrifugo";

const TEXT_KEY = '"text":"';

/** The text field's value; bench texts never hold quotes or escapes. */
function textOf(frame: string, from: number): string {
  const at = frame.indexOf(TEXT_KEY, from);
  if (at < 0) return "";
  const start = at + TEXT_KEY.length;
  return frame.slice(start, frame.indexOf('"', start));
}

function opened(ws: WebSocket, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    ws.onclose = (e) => reject(new Error(`closed during connect (${e.code} ${e.reason})`));
  });
}

export const channelOf = (p: Pair) => `conv_${p.lessonId}`;

const tokens = new Map<string, Promise<string>>();
function tokenFor(protocol: Protocol, userId: number): Promise<string> {
  const key = `${protocol}:${userId}`;
  let t = tokens.get(key);
  if (!t) {
    t = protocol === "ours" ? ourToken(userId) : centrifugoToken(userId);
    tokens.set(key, t);
  }
  return t;
}

/** Resolves once the socket is authenticated and subscribed to its conversation. */
export async function openChatSocket(
  protocol: Protocol,
  wsUrl: string,
  pair: Pair,
  asMentor: boolean,
  hooks: Hooks,
): Promise<ChatSocket> {
  const userId = asMentor ? pair.mentorId : pair.studentId;
  const token = await tokenFor(protocol, userId);
  return protocol === "ours"
    ? openOurs(wsUrl, pair, asMentor, token, userId, hooks)
    : openCentrifugo(wsUrl, pair, token, hooks);
}

async function openOurs(
  wsUrl: string,
  pair: Pair,
  asMentor: boolean,
  token: string,
  userId: number,
  hooks: Hooks,
): Promise<ChatSocket> {
  const q = asMentor
    ? `lesson_id=${pair.lessonId}&student_id=${pair.studentId}`
    : `lesson_id=${pair.lessonId}`;
  const url = `${wsUrl}?${q}&token=${token}`;
  const ws = new WebSocket(url);
  await opened(ws, url);
  const mine = `"sender_id":${userId},`;
  await new Promise<void>((resolve, reject) => {
    ws.onclose = (e) => reject(new Error(`our server closed the socket (${e.code} ${e.reason})`));
    ws.onmessage = (e) => {
      const s = e.data as string;
      if (s.startsWith('{"type":"ready"')) {
        ws.onmessage = (ev) => {
          const f = ev.data as string;
          if (f.startsWith('{"type":"ack"')) hooks.acked();
          // The conversation topic echoes a sender's own message back (for its other devices).
          else if (f.startsWith('{"type":"message"') && f.indexOf(mine) < 0) hooks.delivered(textOf(f, 0));
          // A refused message is never acked or delivered: the run would wait for it forever.
          else if (f.startsWith('{"type":"error"')) {
            process.stderr.write(`our server refused a frame, the run is void: ${f}\n`);
            process.exit(1);
          }
        };
        resolve();
      }
    };
  });
  ws.onclose = null;
  return {
    send(text, clientId) {
      ws.send(`{"type":"message","text":"${text}","client_id":"${clientId}"}`);
    },
    close: () => ws.close(),
  };
}

async function openCentrifugo(wsUrl: string, pair: Pair, token: string, hooks: Hooks): Promise<ChatSocket> {
  const ws = new WebSocket(wsUrl);
  await opened(ws, wsUrl);
  const channel = channelOf(pair);
  let nextId = 1;
  let myClient = "";
  const reply = (id: number) =>
    new Promise<string>((resolve, reject) => {
      ws.onclose = (e) => reject(new Error(`centrifugo closed the socket (${e.code} ${e.reason})`));
      ws.onmessage = (e) => {
        for (const line of (e.data as string).split("\n")) {
          if (line.startsWith(`{"id":${id},`)) {
            if (line.includes('"error"')) reject(new Error(`centrifugo refused: ${line}`));
            else resolve(line);
          }
        }
      };
    });
  const connected = reply(nextId);
  ws.send(`{"id":${nextId++},"connect":{"token":"${token}"}}`);
  myClient = /"client":"([^"]+)"/.exec(await connected)?.[1] ?? "";
  const subscribed = reply(nextId);
  ws.send(`{"id":${nextId++},"subscribe":{"channel":"${channel}"}}`);
  await subscribed;
  const mine = `"client":"${myClient}"`;
  const onLine = (line: string) => {
    if (line.startsWith('{"push"')) {
      // Publications come back to the publisher too; its client id is in the publication info.
      if (line.indexOf(mine) < 0) hooks.delivered(textOf(line, 0));
    } else if (line.startsWith('{"id":')) hooks.acked();
    else if (line === "{}") ws.send("{}"); // server ping → pong
  };
  ws.onmessage = (e) => {
    const s = e.data as string;
    // Centrifugo writes several replies into one frame, one per line.
    if (s.indexOf("\n") < 0) onLine(s);
    else for (const line of s.split("\n")) onLine(line);
  };
  ws.onclose = null;
  return {
    send(text, clientId) {
      ws.send(
        `{"id":${nextId++},"publish":{"channel":"${channel}","data":{"text":"${text}","client_id":"${clientId}"}}}`,
      );
    },
    close: () => ws.close(),
  };
}
