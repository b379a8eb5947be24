import net from "node:net";
import { mintToken, TEST_SECRET } from "./tokens.ts";

/**
 * Hostile-client helpers: every kind of bad token, and a raw WebSocket handshake over TCP so a
 * test sees the exact status and body of a refused upgrade (a WebSocket client hides both).
 */

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** An unsigned token (`alg: none`) with otherwise valid claims for `userId`. */
export function algNoneToken(userId: number): string {
  const now = Math.floor(Date.now() / 1000);
  const payload = { token_type: "access", user_id: userId, jti: "x", iat: now, exp: now + 900 };
  return `${b64url({ alg: "none", typ: "JWT" })}.${b64url(payload)}.`;
}

export type CallerName =
  | "mentor"
  | "student"
  | "otherStudent"
  | "otherMentor"
  | "noToken"
  | "badSignature"
  | "expired"
  | "refreshType"
  | "algNone"
  | "wrongAlg"
  | "notAJwt";

/** Lesson 5 is taught by mentor 10 to students 15 and 16; lesson 6 by mentor 11 (TEST_DIRECTORY). */
export const CALLER_USER: Record<CallerName, number | undefined> = {
  mentor: 10,
  student: 15,
  otherStudent: 16,
  otherMentor: 11,
  noToken: undefined,
  badSignature: 15,
  expired: 15,
  refreshType: 15,
  algNone: 15,
  wrongAlg: 15,
  notAJwt: undefined,
};

export const ALL_CALLERS = Object.keys(CALLER_USER) as CallerName[];
export const BAD_CALLERS: CallerName[] = [
  "noToken",
  "badSignature",
  "expired",
  "refreshType",
  "algNone",
  "wrongAlg",
  "notAJwt",
];

/** A fresh token for the caller, or undefined for "no token". */
export async function tokenFor(caller: CallerName): Promise<string | undefined> {
  switch (caller) {
    case "mentor":
      return mintToken(10);
    case "student":
      return mintToken(15);
    case "otherStudent":
      return mintToken(16);
    case "otherMentor":
      return mintToken(11);
    case "noToken":
      return undefined;
    case "badSignature":
      return mintToken(15, { secret: `${TEST_SECRET}-but-not-quite` });
    case "expired":
      return mintToken(15, { expiresInS: -3600 });
    case "refreshType":
      return mintToken(15, { tokenType: "refresh" });
    case "algNone":
      return algNoneToken(15);
    case "wrongAlg":
      return mintToken(15, { alg: "HS512" });
    case "notAJwt":
      return "not-a-jwt-but-a-secret-string-0123456789";
  }
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends a WebSocket handshake by hand and returns the HTTP answer. A 101 is closed at once.
 */
export function rawUpgrade(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  timeoutMs = 5000,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer to the upgrade of ${path.replace(/token=[^&]+/, "token=…")}`));
    }, timeoutMs);
    const finish = () => {
      const text = buf.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return false;
      const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? "")?.[1]);
      const h: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(":");
        h[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const body = buf.subarray(Buffer.byteLength(text.slice(0, end + 4), "latin1"));
      if (status !== 101) {
        const len = Number(h["content-length"] ?? "0");
        if (body.length < len) return false;
      }
      clearTimeout(timer);
      sock.destroy();
      resolve({ status, headers: h, body: status === 101 ? "" : body.toString("utf8") });
      return true;
    };
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      finish();
    });
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on("close", () => {
      if (!finish()) {
        clearTimeout(timer);
        reject(new Error(`connection closed before an answer: ${buf.toString("latin1").slice(0, 200)}`));
      }
    });
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    sock.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    );
  });
}
